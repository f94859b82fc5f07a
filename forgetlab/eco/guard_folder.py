"""The guard folder: one shippable directory holding everything a guard is, checked on every load.

Layout: ``guard.json`` (format, the guard's config, fitted parameters, fit record, versions, the SHA-256 of
every file), ``guard.sha256`` (the SHA-256 of ``guard.json`` itself, in ``sha256sum`` format, so that
``sha256sum -c guard.sha256`` checks it too), ``classifier/``, optional ``token_classifier/``, further targets
in ``targets/<name>/``, and the base model in one of three ways, always with checksums (:func:`model_record`):

- ``copied``: inside the folder, in ``model/`` (covered by the folder's own checksums);
- ``local``: a folder referenced by its path *relative to the guard folder* (``../models/llama``), so moving the
  two folders together keeps the guard loadable; the absolute path at save time is kept as a second place to
  look; the SHA-256 of every model file is recorded;
- ``hub``: a Hugging Face hub id and the exact commit (``revision``) its files came from, read from the local
  hub cache (or downloaded when the hub is reachable), with the SHA-256 of every file.

On load, ``guard.json`` is checked against ``guard.sha256`` before it is read (setting the strength to 0 by hand
disables nothing: the guard is refused), then every field's type, then every recorded checksum; every path it
lists must stay inside the guard folder. Any failure is a one-line :class:`~forgetlab.errors.ForgetlabError`
naming the file or field. Safetensors and JSON only. Classifier types are looked up by name in
:data:`CLASSIFIER_TYPES` / :data:`TOKEN_CLASSIFIER_TYPES`.
"""

from __future__ import annotations

import copy
import fcntl
import hashlib
import math
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import BadInput, ForgetlabError
from ..registry import Registry
from ..runs import (
    atomic_write_json,
    atomic_write_text,
    confined,
    folder_checksums,
    loads_json,
    prepare_out_dir,
    run_record,
    sha256_file,
    verify_checksums,
    write_folder_atomically,
)
from .classify.rule import FlagRule
from .targets import NAME, TargetRules

FORMAT = "forgetlab.eco.EcoGuard"
FORMAT_VERSION = 3  # 2: config.flag_entities / entity_tokens; 3: config.positions, guard.sha256, model
# references relative to the guard or by hub commit, several targets (folders of 1-2 still load)
SIDECAR_SINCE = 3  # folders of earlier formats have no checksum file and load without it
RECORD = "guard.json"
GUARD_FOLDER = "a guard folder written by 'forgetlab eco fit' (or EcoGuard.save_pretrained)"
"""What a ``--guard`` (``--add-to``) must name, in every refusal."""
SIDECAR = "guard.sha256"  # the checksum of guard.json, kept apart from it

CLASSIFIER_TYPES: Registry[type] = Registry(
    "classifier type", {"prompt": "forgetlab.eco.classify.prompt:PromptClassifier",
                        "keyword": "forgetlab.eco.classify.keyword:KeywordClassifier"})
"""Prompt-classifier classes a guard folder may name (each with ``save_pretrained`` / ``from_pretrained``)."""
TOKEN_CLASSIFIER_TYPES: Registry[type] = Registry(
    "token classifier type", {"token": "forgetlab.eco.classify.token:TokenClassifier"})


def register_classifier_type(name: str, cls: type, token: bool = False) -> None:
    """Make ``cls`` (with ``save_pretrained`` / ``from_pretrained``) loadable from a guard folder as ``name``."""
    (TOKEN_CLASSIFIER_TYPES if token else CLASSIFIER_TYPES).add(name, cls)


def type_name(obj: Any, registry: Registry, field: str) -> str:
    """The registered name of ``obj``'s class, or :class:`BadInput` listing the registered names."""
    name = registry.name_of(type(obj))
    if name is None:
        raise BadInput(field, type(obj).__name__, "a registered classifier type: " + ", ".join(registry.names()))
    return name


@dataclass
class GuardParts:
    """What a guard folder holds, loaded: its config (as recorded), classifiers, base-model folder, fit record."""

    config: dict[str, Any]
    classifier: Any
    token_classifier: Any
    model_dir: Path
    fit: dict[str, Any] | None
    model_source: Any = None  # forgetlab.eco.base_model.ModelSource of the base model
    name: str = "default"  # the first target's name
    targets: list[dict[str, Any]] = field(default_factory=list)  # the other targets: name, config, classifiers, fit
    model_key: Any = None  # what the record says of the base model (hub id, revision, file checksums)


def model_record(source: Any, guard_dir: Path) -> dict[str, Any]:
    """How ``guard.json`` references a base model (``source``: a ModelSource) from the guard folder ``guard_dir``:
    a hub id and commit, or a path relative to the guard folder; always with the checksums of its files.

    ``guard_dir`` may be a temporary sibling of the final folder (same parent): relative paths are the same.
    """
    files = folder_checksums(source.folder)
    if source.hub_id is not None:
        return {"kind": "hub", "hub_id": source.hub_id, "revision": source.revision, "files": files}
    folder = Path(source.folder).resolve()
    rel = Path(os.path.relpath(folder, Path(guard_dir).resolve())).as_posix()
    return {"kind": "local", "path": rel, "absolute": str(folder), "files": files}


def _save_classifiers(folder: Path, classifier: Any, token_classifier: Any) -> tuple[str, str | None]:
    """Write ``classifier/`` (and ``token_classifier/``) into ``folder``; returns their registered type names."""
    ctype = type_name(classifier, CLASSIFIER_TYPES, "classifier")
    ttype = (type_name(token_classifier, TOKEN_CLASSIFIER_TYPES, "token_classifier")
             if token_classifier is not None else None)
    classifier.save_pretrained(folder / "classifier", overwrite=True)
    if token_classifier is not None:
        token_classifier.save_pretrained(folder / "token_classifier", overwrite=True)
    return ctype, ttype


def write_guard_folder(path: str | Path, *, config: dict[str, Any], classifier: Any, token_classifier: Any,
                       model_source: Any = None, save_model: Any = None, fit: dict | None = None,
                       overwrite: bool = False, name: str = "default",
                       targets: list[dict[str, Any]] = ()) -> Path:
    """Write a guard folder; ``save_model(folder)`` copies the base model in, else ``model_source`` (a
    :class:`~forgetlab.eco.base_model.ModelSource`) is referenced (:func:`model_record`). The first target is
    at the top level; each further target (``targets``: dicts of name, config, classifier, token_classifier,
    fit) in ``targets/<name>/``, and the record is then of format 4.

    ``guard.json`` is written last, atomically: a folder without it is not a guard.
    """
    path = prepare_out_dir(path, overwrite=overwrite, field="out")
    ctype, ttype = _save_classifiers(path, classifier, token_classifier)
    extra = []
    for t in targets:
        c, tt = _save_classifiers(path / "targets" / t["name"], t["classifier"], t["token_classifier"])
        extra.append({"name": t["name"], "config": t["config"], "classifier_type": c, "token_classifier_type": tt,
                      "fit": t["fit"]})
    if save_model is not None:
        save_model(path / "model")
        model = {"kind": "copied", "path": "model", "files": {}}
    else:
        model = model_record(model_source, path)
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, **run_record(config, seed=config.get("seed")),
            "name": name, "classifier_type": ctype, "token_classifier_type": ttype, "model": model, "fit": fit,
            **({"targets": extra} if extra else {}), "files": folder_checksums(path, exclude=(RECORD, SIDECAR))}
    atomic_write_json(path / RECORD, meta)
    atomic_write_text(path / SIDECAR, f"{sha256_file(path / RECORD)}  {RECORD}\n")
    return path


def _verified_bytes(path: Path) -> bytes:
    """``guard.json``'s bytes, matched against ``guard.sha256``; folders of formats before SIDECAR_SINCE have no
    checksum file and are read as they are (their other files are still checked against guard.json's list)."""
    try:
        data = (path / RECORD).read_bytes()
    except FileNotFoundError:
        raise ForgetlabError(f"guard {path}: {RECORD} is missing (not a guard folder, or a damaged one)") from None
    try:
        line = (path / SIDECAR).read_text(encoding="utf-8")
    except FileNotFoundError:
        version = re.search(rb'"format_version"\s*:\s*(\d+)', data)
        if version is not None and int(version.group(1)) < SIDECAR_SINCE:
            return data
        raise ForgetlabError(f"guard {path}: {SIDECAR} is missing (a guard folder of format {SIDECAR_SINCE} or "
                             f"later holds {RECORD} and its checksum {SIDECAR})") from None
    except UnicodeDecodeError:
        raise ForgetlabError(f"guard {path}: {SIDECAR} is not a checksum line") from None
    want = line.split()[0] if line.split() else ""
    if hashlib.sha256(data).hexdigest() != want:
        raise ForgetlabError(f"guard {path}: {RECORD} does not match its checksum in {SIDECAR} (changed or damaged)")
    return data


def _checked_record(path: Path) -> dict[str, Any]:
    """``guard.json``, read only after its bytes match ``guard.sha256``; then its format and version."""
    if not path.is_dir():
        raise BadInput("guard", str(path), GUARD_FOLDER)
    data = _verified_bytes(path)
    try:
        meta = loads_json(data.decode("utf-8"), str(path / RECORD))
    except UnicodeDecodeError:
        raise ForgetlabError(f"{path / RECORD}: not UTF-8 text") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ForgetlabError(f"{path / RECORD}: not a {FORMAT} record")
    got = meta.get("format_version")
    if not isinstance(got, int) or isinstance(got, bool) or got > FORMAT_VERSION:
        raise ForgetlabError(f"{path / RECORD}: format_version {got!r} is not one this forgetlab reads "
                             f"(<= {FORMAT_VERSION})")
    if got >= SIDECAR_SINCE and not (path / SIDECAR).is_file():
        raise ForgetlabError(f"guard {path}: {SIDECAR} is missing")
    return meta


def read_guard_meta(path: Path) -> dict[str, Any]:
    """``guard.json`` of a guard folder, checksum-verified, its fields type-checked, after verifying the
    checksums of every file it lists (all inside the folder)."""
    path = Path(path)
    meta = _checked_record(path)
    for key, kind in (("classifier_type", str), ("token_classifier_type", (str, type(None))), ("files", dict),
                      ("model", dict), ("fit", (dict, type(None)))):
        if not isinstance(meta.get(key), kind):
            raise ForgetlabError(f"{path / RECORD}: broken record ({key}: {type(meta.get(key)).__name__})")
    verify_checksums(path, meta["files"], f"guard {path}", RECORD)
    guard_config(meta, path)
    return meta


CONFIG_TYPES: dict[str, tuple[type, ...]] = {"corruption": (str,), "strength": (int, float), "k": (int,),
                                              "seed": (int,), "flag_entities": (bool,), "entity_tokens": (bool,),
                                              "positions": (str,)}
"""The guard config's fields and their JSON types (``flag_entities``/``entity_tokens`` may be absent: format 1)."""


def guard_config(meta: dict[str, Any], path: Path) -> dict[str, Any]:
    """The recorded config, every field of the right type. Folders of format 1 lack ``flag_entities`` /
    ``entity_tokens`` (their defaults apply); folders before format 3 corrupted every prompt token, so they keep
    ``positions="all"``."""
    config = meta.get("config")
    if not isinstance(config, dict) or "corruption" not in config:
        raise ForgetlabError(f"{path / RECORD}: broken record (no config with a corruption)")
    for key, value in config.items():
        kinds = CONFIG_TYPES.get(key)
        if kinds is None:
            raise ForgetlabError(f"{path / RECORD}: broken record (unknown config field {key!r})")
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            raise ForgetlabError(f"{path / RECORD}: broken record (config.{key}: {value!r} is not a "
                                 f"{'/'.join(k.__name__ for k in kinds)})")
    for key in ("strength", "k"):
        if key in config and not (math.isfinite(config[key]) and config[key] >= 0):
            raise ForgetlabError(f"{path / RECORD}: broken record (config.{key}: {config[key]!r} is not >= 0)")
    if meta.get("format_version", 0) < 3:
        config = {"positions": "all", **config}
    return config


def load_classifier(meta: dict[str, Any], path: Path) -> Any:
    """The prompt classifier of a guard folder (``meta`` already verified)."""
    ctype = meta.get("classifier_type")
    if ctype not in CLASSIFIER_TYPES:
        raise ForgetlabError(f"{path / RECORD}: unknown classifier type {ctype!r}")
    return CLASSIFIER_TYPES.get(ctype).from_pretrained(path / "classifier")


def load_token_classifier(meta: dict[str, Any], path: Path) -> Any:
    """The token classifier of a guard folder, or None when it has none."""
    ttype = meta.get("token_classifier_type")
    if ttype is None:
        return None
    if ttype not in TOKEN_CLASSIFIER_TYPES:
        raise ForgetlabError(f"{path / RECORD}: unknown token classifier type {ttype!r}")
    return TOKEN_CLASSIFIER_TYPES.get(ttype).from_pretrained(path / "token_classifier")


def _target_entries(meta: dict[str, Any], path: Path) -> list[tuple[dict[str, Any], Path]]:
    """``(record, folder)`` of every target: the first at the top level, the others in ``targets/<name>/``."""
    first = {**meta, "name": meta.get("name", "default"), "config": guard_config(meta, path)}
    entries = [(first, path)]
    extra = meta.get("targets", [])
    if not isinstance(extra, list):
        raise ForgetlabError(f"{path / RECORD}: broken record (targets is not a list)")
    for t in extra:
        if not isinstance(t, dict) or not isinstance(t.get("name"), str) or not NAME.match(t["name"]):
            raise ForgetlabError(f"{path / RECORD}: broken record (a target without a valid name)")
        entries.append(({**t, "config": guard_config(t, path)}, path / "targets" / t["name"]))
    return entries


def load_flag_rule(path: str | Path) -> Any:
    """The flag rule of a guard folder (classifier, and the token classifier when the rule uses names),
    checksums verified, without loading the base model: a ``FlagRule``, or with several targets their union
    (:class:`~forgetlab.eco.targets.TargetRules`, which also says which targets flag a prompt)."""
    rules = load_target_rules(path)
    return rules[0][1] if len(rules) == 1 else TargetRules(rules)


def load_target_rules(path: str | Path) -> list[tuple[str, FlagRule]]:
    """``(name, FlagRule)`` of each target of a guard folder, in order, checksums verified once."""
    path = Path(path)
    rules = []
    for rec, folder in _target_entries(read_guard_meta(path), path):
        flag_entities = bool(rec["config"].get("flag_entities", False))
        token_classifier = load_token_classifier(rec, folder) if flag_entities else None
        rules.append((rec["name"], FlagRule(load_classifier(rec, folder), token_classifier, flag_entities)))
    return rules


def _model_candidates(info: dict[str, Any], path: Path) -> list[Path]:
    """The folders to look for the base model a guard folder references in, in order."""
    kind = info.get("kind") or ("copied" if info.get("copied") else "absolute")  # format <= 2: no kind
    rel = info.get("path")
    if kind == "copied":
        return [confined(path, rel if rel is not None else "model", f"guard {path}", RECORD)]
    if kind == "local":
        if not isinstance(rel, str):
            raise ForgetlabError(f"{path / RECORD}: broken record (a local model without a path)")
        extra = [Path(info["absolute"])] if isinstance(info.get("absolute"), str) else []
        return [(path.resolve() / rel).resolve(), *extra]
    if kind == "absolute" and isinstance(rel, str):
        return [Path(rel)]
    raise ForgetlabError(f"{path / RECORD}: broken record (model kind {kind!r}; expected copied, local or hub)")


def resolve_guard_model(info: Any, path: Path, verify: bool = True) -> Any:
    """The base model of a guard folder as a ModelSource, its checksums verified (``verify``): the copied
    folder, the referenced folder (relative to the guard, then the absolute path at save time) or the hub
    snapshot at the recorded commit. A missing or changed model is a :class:`ForgetlabError` naming it."""
    from .base_model import ModelSource, resolve_model

    if not isinstance(info, dict):
        raise ForgetlabError(f"{path / RECORD}: broken record (no model)")
    if info.get("kind") == "hub":
        hub_id, rev = info.get("hub_id"), info.get("revision")
        if not isinstance(hub_id, str) or not isinstance(rev, str):
            raise ForgetlabError(f"{path / RECORD}: broken record (a hub model needs hub_id and revision)")
        try:
            source = resolve_model(hub_id, rev)
        except BadInput:
            raise ForgetlabError(f"guard {path}: its base model {hub_id} at revision {rev} is not in the local "
                                 "Hugging Face cache and the hub cannot be reached") from None
    else:
        candidates = _model_candidates(info, path)
        found = next((c for c in candidates if c.is_dir()), None)
        if found is None:
            where = " or ".join(str(c) for c in candidates)
            raise ForgetlabError(f"guard {path}: its base model folder is missing (looked for {where}; move the "
                                 "model together with the guard folder, or copy it in with --copy-model)")
        source = ModelSource(found)
    if info.get("kind") != "copied" and not info.get("copied"):
        files = info.get("files")
        if not isinstance(files, dict) or "config.json" not in files:
            raise ForgetlabError(f"guard {path}: {RECORD} declares a base model but lists no config.json of it (a "
                                 "model folder's files and their checksums)")
        if verify:
            verify_checksums(source.folder, files, f"base model of guard {path}", RECORD)
    return source


def read_guard_folder(path: str | Path, verify: bool = True) -> GuardParts:
    """Everything of a guard folder but the base model's weights, every checksum verified (``verify=False``
    skips the referenced base model's, e.g. a huge model already trusted)."""
    path = Path(path)
    meta = read_guard_meta(path)
    config = guard_config(meta, path)
    source = resolve_guard_model(meta.get("model"), path, verify)
    extra = [{"name": rec["name"], "config": rec["config"], "classifier": load_classifier(rec, folder),
              "token_classifier": load_token_classifier(rec, folder), "fit": rec.get("fit")}
             for rec, folder in _target_entries(meta, path)[1:]]
    info = meta.get("model", {})
    copied = {k: v for k, v in meta.get("files", {}).items() if k.startswith("model/")}
    key = (info.get("kind"), info.get("hub_id"), info.get("revision"), info.get("files") or copied)
    return GuardParts(config, load_classifier(meta, path), load_token_classifier(meta, path), source.folder,
                      meta.get("fit"), source, meta.get("name", "default"), extra, key)


# --- editing the targets of a saved guard ----------------------------------------------------------------------

def _link_or_copy(src: str, dst: str) -> str:
    """Hard-link a file (same bytes, no copy of a large model), or copy it where links are not possible."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
    return dst


def edit_guard_folder(path: str | Path, edit: Any) -> Path:
    """Change a guard folder atomically: a copy (files hard-linked, never modified in place) is changed by
    ``edit(copy, meta) -> meta``, its checksums recomputed and the copy swapped in. Concurrent edits of one folder
    are serialized by a lock file beside it; a reader sees the old folder or the new one, never a mix."""
    path = Path(path)
    read_guard_meta(path)  # refuse a damaged folder before taking the lock
    with open(path.parent / f".{path.name}.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        meta = read_guard_meta(path)

        def write(tmp: Path) -> None:
            shutil.copytree(path, tmp, copy_function=_link_or_copy, dirs_exist_ok=True)
            new = edit(tmp, copy.deepcopy(meta))
            new["format_version"] = FORMAT_VERSION
            new["files"] = folder_checksums(tmp, exclude=(RECORD, SIDECAR))
            for name in (RECORD, SIDECAR):  # hard links to the old files: replace, never write through them
                (tmp / name).unlink(missing_ok=True)
            atomic_write_json(tmp / RECORD, new)
            atomic_write_text(tmp / SIDECAR, f"{sha256_file(tmp / RECORD)}  {RECORD}\n")

        write_folder_atomically(path, write, replace=lambda old: (old / RECORD).is_file(), field="guard")
    return path


def target_names(meta: dict[str, Any], path: Path) -> list[str]:
    """The names of a guard folder's targets, first target first."""
    return [rec["name"] for rec, _ in _target_entries(meta, path)]


def add_folder_target(path: str | Path, *, name: str, config: dict[str, Any], classifier: Any,
                      token_classifier: Any = None, fit: dict | None = None) -> Path:
    """Add a target to a saved guard; the other targets' files and the base model stay byte for byte."""
    path = Path(path)

    def edit(tmp: Path, meta: dict[str, Any]) -> dict[str, Any]:
        names = target_names(meta, path)
        if name in names:
            raise BadInput("name", name, "a name no target of the guard has yet (" + ", ".join(names) + ")")
        ctype, ttype = _save_classifiers(tmp / "targets" / name, classifier, token_classifier)
        meta["targets"] = [*meta.get("targets", []), {"name": name, "config": config, "classifier_type": ctype,
                                                      "token_classifier_type": ttype, "fit": fit}]
        return meta

    return edit_guard_folder(path, edit)


def remove_folder_target(path: str | Path, name: str) -> Path:
    """Drop a target from a saved guard (the next one takes the first place when the first is dropped)."""
    path = Path(path)

    def edit(tmp: Path, meta: dict[str, Any]) -> dict[str, Any]:
        names = target_names(meta, path)
        if name not in names or len(names) == 1:
            raise BadInput("remove", name, "one target of a guard that has several: " + ", ".join(names))
        extra = meta.get("targets", [])
        if name == names[0]:  # the next target takes the top level
            nxt = extra.pop(0)
            for part in ("classifier", "token_classifier"):
                shutil.rmtree(tmp / part, ignore_errors=True)
                if (tmp / "targets" / nxt["name"] / part).is_dir():
                    os.replace(tmp / "targets" / nxt["name"] / part, tmp / part)
            meta.update(name=nxt["name"], config=nxt["config"], fit=nxt["fit"],
                        classifier_type=nxt["classifier_type"], token_classifier_type=nxt["token_classifier_type"])
            name_gone = nxt["name"]
        else:
            extra[:] = [t for t in extra if t["name"] != name]
            name_gone = name
        shutil.rmtree(tmp / "targets" / name_gone, ignore_errors=True)
        if not extra:
            shutil.rmtree(tmp / "targets", ignore_errors=True)
            meta.pop("targets", None)
        return meta

    return edit_guard_folder(path, edit)


def folder_target_summaries(path: str | Path) -> list[dict[str, Any]]:
    """Each target of a saved guard (name, corruption, strength, k, seed, flag options, classifier types, fit),
    without loading the base model or the classifiers."""
    path = Path(path)
    out = []
    for rec, _folder in _target_entries(read_guard_meta(path), path):
        c, fit = rec["config"], rec.get("fit") or {}
        out.append({"name": rec["name"], **{k: c.get(k) for k in ("corruption", "strength", "k", "seed",
                                                                   "flag_entities", "entity_tokens", "positions")},
                    "classifier": rec.get("classifier_type"), "token_classifier": rec.get("token_classifier_type"),
                    "fit": {k: fit[k] for k in ("metric", "target", "converged", "n_evals", "fit_set_sha256")
                            if k in fit}})
    return out
