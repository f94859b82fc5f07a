"""Run folders: atomic writes, config and metadata records, safetensors checkpoints.

Every artifact is written to a temporary file in the same folder, flushed, fsynced and renamed into place,
so a reader (or a resumed run) never sees a half-written file, even after SIGKILL. Temporary files and folders
are created with modes 0666 / 0777 masked by the process umask (as ``open`` and ``mkdir`` do, unlike
``tempfile.mkstemp``'s 0600), so published results are as readable as any other file the user creates; their
hidden names carry the writer's host and pid (``.NAME.HOST-PID-RANDOM.tmp``), which is how
:func:`clean_stale_temps` tells a killed writer's leftovers from a live writer's files.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import re
import secrets
import shutil
import stat
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

from .errors import BadInput, ForgetlabError

TEMP_RE = re.compile(r"^\.(?P<name>.+)\.(?P<host>[0-9a-f]{6})-(?P<pid>\d+)-(?P<rand>[0-9a-f]{8})\.(?P<kind>tmp|old)$")
"""Names of the hidden temporary files and folders this module creates: ``.NAME.HOST-PID-RANDOM.tmp|old``
(HOST: 6 hex digits of the SHA-256 of the host name)."""


def host_tag() -> str:
    """6 hex digits naming this host in temporary names (a hash: host names may hold any character)."""
    return hashlib.sha256(platform.node().encode("utf-8")).hexdigest()[:6]


def make_temp(parent: str | os.PathLike, name: str, *, folder: bool = False, kind: str = "tmp") -> Path:
    """Create a hidden temporary file (or folder) in ``parent`` for a future ``parent/name``.

    Mode 0666 (0777 for a folder) masked by the umask, exclusive creation, a name carrying this pid.
    """
    parent = Path(parent)
    for _ in range(100):
        tmp = parent / f".{name}.{host_tag()}-{os.getpid()}-{secrets.token_hex(4)}.{kind}"
        try:
            if folder:
                os.mkdir(tmp, 0o777)
            else:
                os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
            return tmp
        except FileExistsError:
            continue
    raise ForgetlabError(f"{parent}: could not create a temporary {'folder' if folder else 'file'}")


def final_path(path: str | os.PathLike) -> Path:
    """The path a temporary name of :func:`make_temp` stands for, in every component (``dir/.run.<tag>.tmp/f``
    -> ``dir/run/f``); any other path unchanged. Error messages name what the user asked for, not our hidden
    files."""
    parts = [(m["name"] if (m := TEMP_RE.match(part)) else part) for part in Path(path).parts]
    return Path(*parts) if parts else Path(path)


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


STALE_TEMP_S = 3600.0  # a temporary of another host (or of a live pid) untouched this long is a leftover


def clean_stale_temps(folder: str | os.PathLike, name: str | None = None, *, max_age_s: float = STALE_TEMP_S) -> int:
    """Delete leftover temporaries (``.NAME.HOST-PID-RANDOM.tmp|old``, of ``name`` only when given) in ``folder``.

    A temporary is a leftover when its writer, on this host, is dead, or when it was not modified for
    ``max_age_s`` (a writer on another host, whose pid cannot be checked). Never one of a live writer here:
    a concurrent process's file in flight is left alone. Returns how many were deleted.
    """
    folder, n, me, now = Path(folder), 0, host_tag(), time.time()
    try:
        entries = list(folder.iterdir())
    except OSError:
        return 0
    for p in entries:
        m = TEMP_RE.match(p.name)
        legacy = m is None and name is None and p.name.startswith(".") and p.name.endswith(".tmp")  # no pid
        if not legacy and (m is None or (name is not None and m["name"] != name) or int(m["pid"]) == os.getpid()):
            continue
        try:
            age = now - p.lstat().st_mtime
        except FileNotFoundError:
            continue
        dead = not legacy and m["host"] == me and not pid_alive(int(m["pid"]))
        if dead or age > max_age_s:
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
            n += 1
    return n


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it over ``path``, on error delete it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = make_temp(path.parent, path.name)
    try:
        yield tmp_path
        with open(tmp_path, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def to_jsonable(obj: Any) -> Any:
    """Convert dataclasses, paths, tuples, numpy and torch scalars into plain JSON values.

    Non-finite floats (NaN, inf: "not measured" or a diverged run) become ``null``: JSON has no NaN, and a file
    with one fails strict parsers (browsers, jq).
    """
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if is_dataclass(obj) and not isinstance(obj, type):
        return to_jsonable(asdict(obj))
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist"):  # numpy / torch scalars and arrays
        return to_jsonable(obj.tolist())
    return obj


def dumps_json(obj: Any, indent: int | None = None) -> str:
    """Strict JSON text of ``obj`` (see :func:`to_jsonable`): never NaN or Infinity."""
    return json.dumps(to_jsonable(obj), indent=indent, allow_nan=False)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON atomically."""
    atomic_write_text(path, dumps_json(obj, indent=2) + "\n")


def loads_json(text: str, where: str) -> Any:
    """Parse JSON text; broken or too deeply nested JSON is a :class:`ForgetlabError` naming ``where``."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ForgetlabError(f"{where}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
    except RecursionError:
        raise ForgetlabError(f"{where}: not valid JSON (nested too deeply)") from None


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file, raising :class:`ForgetlabError` naming the file when it is missing, not UTF-8 or broken."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ForgetlabError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise ForgetlabError(f"{path}: a folder, not a JSON file") from None
    except UnicodeDecodeError as exc:
        raise ForgetlabError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    return loads_json(text, str(path))


def read_record(folder: str | os.PathLike, name: str, fmt: str, version: int, field: str = "path") -> dict[str, Any]:
    """The JSON record ``folder/name`` of a saved artifact, checked to be of format ``fmt`` at a version this
    code reads (``format_version <= version``); a missing folder is :class:`BadInput` naming ``field``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise BadInput(field, str(folder), "a folder written by save_pretrained")
    meta = read_json(folder / name)
    if not isinstance(meta, dict) or meta.get("format") != fmt:
        raise ForgetlabError(f"{folder / name}: not a {fmt} record")
    got = meta.get("format_version", 0)
    if not isinstance(got, int) or got > version:
        raise ForgetlabError(f"{folder / name}: format_version {got!r} is newer than this forgetlab reads "
                             f"({version})")
    return meta


def iter_jsonl(path: str | os.PathLike, field: str = "path") -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line number, object)`` for each non-blank line of a JSONL file.

    One reader for every JSONL input: a missing file is :class:`BadInput` naming ``field``; non-UTF-8 bytes, a
    malformed line or a line that is not a JSON object is a :class:`ForgetlabError` naming the file and line.
    """
    path = Path(path)
    if not path.is_file():
        raise BadInput(field, str(path), "an existing JSONL file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ForgetlabError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        obj = loads_json(line, f"{path}: line {lineno}")
        if not isinstance(obj, dict):
            raise ForgetlabError(f"{path}: line {lineno}: expected a JSON object, got {type(obj).__name__}")
        yield lineno, obj


def save_tensors(path: str | os.PathLike, tensors: Mapping[str, Any],
                 metadata: Mapping[str, str] | None = None) -> None:
    """Save a dict of tensors as safetensors, atomically (never pickle)."""
    from safetensors.torch import save_file

    clean = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    with atomic_path(path) as tmp:
        mode = stat.S_IMODE(tmp.stat().st_mode)  # per the umask; safetensors writes a file of its own (0600)
        save_file(clean, str(tmp), metadata=dict(metadata or {}))
        os.chmod(tmp, mode)


def load_tensors(path: str | os.PathLike) -> dict[str, Any]:
    """Load a safetensors file; a missing or corrupted file is a :class:`ForgetlabError` naming it."""
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise ForgetlabError(f"{path}: file not found")
    try:
        return load_file(str(path))
    except Exception as exc:  # safetensors raises several types for a damaged header
        raise ForgetlabError(f"{path}: not a valid safetensors file ({type(exc).__name__})") from None


def sha256_file(path: str | os.PathLike) -> str:
    """SHA-256 hex digest of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def folder_checksums(root: Path, exclude: Iterable[str] = ()) -> dict[str, str]:
    """``{relative path: sha256}`` of every regular file under ``root`` outside hidden files and folders."""
    skip = set(exclude)
    return {p.relative_to(root).as_posix(): sha256_file(p) for p in sorted(root.rglob("*"))
            if p.is_file() and p.relative_to(root).as_posix() not in skip
            and not any(part.startswith(".") for part in p.relative_to(root).parts)}


def confined(root: Path, rel: Any, what: str, record: str) -> Path:
    """``root / rel`` for a relative path ``rel`` that stays inside ``root`` (no ``..``, not absolute, no
    symbolic link out); anything else is a :class:`ForgetlabError` naming ``record``."""
    p = Path(rel) if isinstance(rel, str) else None
    if p is None or not rel or p.is_absolute() or ".." in p.parts:
        raise ForgetlabError(f"{what}: {record} lists {rel!r}, not a path inside the folder")
    full = root / p
    try:
        inside = full.resolve().is_relative_to(root.resolve())
    except OSError:
        inside = False
    if not inside:
        raise ForgetlabError(f"{what}: {record} lists {rel!r}, which leads outside the folder")
    return full


def verify_checksums(root: Path, files: Mapping[str, str], what: str, record: str) -> None:
    """Raise :class:`ForgetlabError` naming the first file of ``files`` (listed in ``record``) that is missing,
    changed or outside ``root``; ``what`` names the folder for the message."""
    if not isinstance(files, Mapping) or not all(isinstance(d, str) for d in files.values()):
        raise ForgetlabError(f"{what}: broken record {record} (its file list is not {{path: sha256}})")
    for rel, digest in files.items():
        p = confined(root, rel, what, record)
        if not p.is_file():
            raise ForgetlabError(f"{what}: {p} is missing (listed in {record})")
        if sha256_file(p) != digest:
            raise ForgetlabError(f"{what}: {p} does not match its record: checksum does not match the SHA-256 in "
                                 f"{record} (changed or damaged)")


LOCK_NAME = ".forgetlab.lock"
"""The lock file a process writing a folder holds (:func:`forgetlab.folders.claim_out_dir`); not content."""


def is_empty_folder(path: Path) -> bool:
    """True when ``path`` is a folder holding nothing but a writer's lock file."""
    return all(p.name == LOCK_NAME for p in path.iterdir())


def prepare_out_dir(path: str | os.PathLike, overwrite: bool = False, field: str = "out") -> Path:
    """Create an empty output folder, refusing a non-empty or unwritable one unless ``overwrite``."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise BadInput(field, str(path), "a folder path (this is a file)")
    if path.is_dir() and not is_empty_folder(path) and not overwrite:
        raise BadInput(field, str(path), "an empty or new folder (pass --overwrite to reuse it)")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-probe"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise BadInput(field, str(path), f"a writable folder ({exc.strerror})") from None
    return path


def write_folder_atomically(final: str | os.PathLike, write: Callable[[Path], None], *,
                            replace: Callable[[Path], bool] | None = None, field: str = "out") -> bool:
    """Write a whole folder with ``write(tmp)`` into a hidden sibling, then rename it to ``final``.

    A reader never sees half a folder, and a failed or interrupted ``write`` leaves nothing behind (a killed
    writer's hidden folder is removed by the next writer of ``final``: :func:`clean_stale_temps`). When
    ``final`` already exists: with ``replace`` None it is kept (another process wrote the same content first;
    returns False); when it is empty (but for a writer's lock) or ``replace(final)`` is true it is swapped out
    and deleted; otherwise :class:`BadInput` names ``field``. Returns True when this call published its folder.
    """
    final = Path(final)
    if final.is_symlink():  # a link to a folder: replace the folder it names, keep the link
        final = final.resolve()
    final.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temps(final.parent, final.name)
    tmp = make_temp(final.parent, final.name, folder=True)
    try:
        write(tmp)
        if final.exists() and replace is not None:
            if not is_empty_folder(final) and not replace(final):
                raise BadInput(field, str(final), "a new folder, or one this command wrote before")
            old = make_temp(final.parent, final.name, folder=True, kind="old")
            try:
                os.replace(final, old)
            except OSError:
                old.rmdir()
                raise
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
            return True
        try:
            os.replace(tmp, final)
        except OSError:  # a non-empty folder of the same name appeared: keep it
            shutil.rmtree(tmp, ignore_errors=True)
            return False
        return True
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def versions() -> dict[str, str]:
    """Versions of Python and the libraries that decide results, for every run record."""
    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in ("torch", "numpy", "transformers", "forgetlab"):
        try:
            mod = __import__(name)
            out[name] = getattr(mod, "__version__", "unknown")
        except ImportError:
            pass
    return out


def provenance(**settings: Any) -> dict[str, Any]:
    """What a results file (a reproduce.json, a report) records beside its results: the settings it was made
    with, the library versions, the machine and when it finished."""
    from .hardware import machine

    return {"settings": to_jsonable(settings), "versions": versions(), "machine": machine(),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def run_record(config: Any, **extra: Any) -> dict[str, Any]:
    """The header every run writes to ``config.json``: config, versions, the machine (CPU, bf16 units, cores,
    torch threads, load), start time and extras (seed...); ``machine`` and ``started`` given in ``extra`` (as a
    run began) are recorded instead of being read now."""
    from .hardware import machine

    now = {} if "machine" in extra else {"machine": machine()}
    return {"config": to_jsonable(config), "versions": versions(), **now,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **to_jsonable(extra)}
