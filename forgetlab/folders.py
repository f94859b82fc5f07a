"""Output folders that two processes may name at once: an exclusive claim per folder for the length of a command.

``grok train``, ``grok reproduce``, ``eco fit``, ``eco world``, ``eco bench`` and ``reproduce`` each hold
:func:`claim_out_dir` on their ``--out`` folder while they work: a second writer of the same folder is refused
at once with a one-line error (naming the process that holds it), never left to overwrite the first one's
results. The claim is an advisory ``fcntl.flock`` on a hidden lock file inside the folder (the standard
library's POSIX lock, not a library's copy of it): the kernel releases it when its process ends, even by
SIGKILL, so a dead writer never blocks a later one and no claim has to expire. Sweeps share their folder by
design and coordinate per batch instead (:mod:`forgetlab.grok.sweep.store`).

Every check (a file in the way, a non-empty folder without ``--overwrite``, an unwritable place) happens
before the command does any work; a folder the claim created is removed again when the command fails before
writing anything into it, so a refused or failed command leaves nothing behind.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import platform
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import ENVIRONMENT_ERRNOS, BadInput
from .runs import LOCK_NAME, is_empty_folder

RETRIES = 5  # a folder removed by a failing writer between our mkdir and our lock: try again


def _holder(lock: Path) -> str:
    """Who holds ``lock``, in words, from what the holder wrote into it."""
    try:
        info = json.loads(lock.read_text(encoding="utf-8"))
        return f"process {info['pid']} on {info['host']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


def _lock(folder: Path, field: str) -> int:
    """Open and flock ``folder``'s lock file; return its descriptor. A lock held elsewhere is :class:`BadInput`;
    a lock file replaced or removed while we waited for it is retried (the inode we locked must be the one the
    folder holds)."""
    path = folder / LOCK_NAME
    for _ in range(RETRIES):
        folder.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise BadInput(field, str(folder), f"a folder no other command is writing ({_holder(path)} is "
                           "writing it now: wait for it to finish, or choose another folder)") from None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            os.ftruncate(fd, 0)
            os.write(fd, json.dumps({"pid": os.getpid(), "host": platform.node()}).encode())
            return fd
        os.close(fd)
    raise BadInput(field, str(folder), "a folder that stays in place (it kept disappearing)")


def refuse_current_folder(path: Path, field: str) -> None:
    """Refuse, naming ``field``, a folder that is replaced whole (written beside itself, then renamed over) when
    it is the current folder or holds it: the rename fails (EBUSY) only after all the work."""
    if str(path) in ("", ".") or Path.cwd().resolve().is_relative_to(Path(path).resolve()):
        raise BadInput(field, str(path), "a folder other than the current one or one holding it (an output "
                       "folder is written beside itself and swapped in whole)")


def _refuse_early(path: Path, overwrite: bool, resume: bool, field: str, swapped: bool = False) -> None:
    if swapped:
        refuse_current_folder(path, field)
    if path.exists() and not path.is_dir():
        raise BadInput(field, str(path), "a folder path (this is a file)")
    if path.is_dir() and not (overwrite or resume) and not is_empty_folder(path):
        raise BadInput(field, str(path), "an empty or new folder (pass --overwrite to reuse it)")


@contextmanager
def claim_out_dir(path: str | os.PathLike, *, overwrite: bool = False, resume: bool = False,
                  field: str = "out", swapped: bool = False) -> Iterator[Path]:
    """Create (or reuse) the output folder ``path`` and hold the only claim on it for the block.

    Refused with :class:`BadInput` naming ``field``: a file at ``path``, a folder with content (unless
    ``overwrite``, or ``resume`` for folders reused as a cache), a folder another process holds, and with
    ``swapped`` (the block replaces the folder whole: :func:`~forgetlab.runs.write_folder_atomically`) the
    current folder or one holding it, which cannot be renamed away. An
    unwritable place raises its ``OSError`` (the command line reports it on one line). On exit the lock file
    is removed and the lock released; a folder this call created and the block left empty is removed, and so are
    the missing parent folders it created for it (``--out new/run`` leaves no ``new/`` behind).
    """
    path = Path(path)
    _refuse_early(path, overwrite, resume, field, swapped)
    created = None if path.exists() else _missing_parents(path)
    try:
        fd = _lock(path, field)
    except OSError as exc:
        _remove_created(path, created)
        if exc.errno in ENVIRONMENT_ERRNOS:
            raise
        raise BadInput(field, str(path), f"a folder this user can create and write ({exc.strerror})") from None
    except BaseException:
        _remove_created(path, created)
        raise
    try:
        _refuse_early(path, overwrite, resume, field, swapped)  # again, holding the claim: content may have appeared
        yield path
    finally:
        try:
            _remove_created(path, created)
            (path / LOCK_NAME).unlink(missing_ok=True)
        except OSError:
            pass
        os.close(fd)


def _missing_parents(path: Path) -> list[Path]:
    """``path``'s parent folders that do not exist yet, nearest first."""
    missing = []
    for parent in path.absolute().parents:
        if parent.exists():
            break
        missing.append(parent)
    return missing


def _remove_created(path: Path, parents: list[Path] | None) -> None:
    """Undo what creating ``path`` made, if it stayed empty: ``path`` itself (when ``parents`` is not None),
    then each of ``parents`` (nearest first) that is still an empty folder; a folder someone filled is kept."""
    if parents is None:
        return
    _remove_if_empty(path)
    for parent in parents:
        try:
            parent.rmdir()
        except OSError:  # not empty (another writer uses it) or already gone: keep going up only while we can
            return


def _remove_if_empty(path: Path) -> None:
    """Remove ``path`` if it holds nothing but (our) lock file; anything else is left in place."""
    try:
        if is_empty_folder(path):
            (path / LOCK_NAME).unlink(missing_ok=True)
            path.rmdir()
    except OSError as exc:
        if exc.errno not in (errno.ENOENT, errno.ENOTDIR, errno.ENOTEMPTY, errno.EEXIST):  # never made, or kept
            raise
