"""The guard folder: one shippable directory holding everything a guard is, checked on every load.

Layout: ``guard.json`` (format, the guard's config, fitted parameters, fit record, versions, the SHA-256 of
every file), ``guard.sha256`` (the SHA-256 of ``guard.json`` itself, in ``sha256sum`` format, so that
``sha256sum -c guard.sha256`` checks it too), ``classifier/``, optional ``token_classifier/``, and the base model
either copied to ``model/`` or referenced by path (absolute, or relative to the guard folder) with the checksums
of its files. On load, ``guard.json`` is checked against ``guard.sha256`` before it is read (setting the
strength to 0 by hand disables nothing: the guard is refused), then every field's type, then every recorded
checksum; every path it lists must stay inside the guard folder, or inside the declared model folder for the
model's files. Any failure is a one-line :class:`~forgetlab.errors.ForgetlabError` naming the file or field.
Safetensors and JSON only. Classifier types are looked up by name in :data:`CLASSIFIER_TYPES` /
:data:`TOKEN_CLASSIFIER_TYPES`.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
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
)
from .classify.rule import FlagRule

FORMAT = "forgetlab.eco.EcoGuard"
FORMAT_VERSION = 4  # 2: config.flag_entities / entity_tokens; 3: config.positions; 4: guard.sha256
SIDECAR_SINCE = 4  # folders of earlier formats have no checksum file and load without it
RECORD = "guard.json"
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


def write_guard_folder(path: str | Path, *, config: dict[str, Any], classifier: Any, token_classifier: Any,
                       model_dir: Path | None, save_model: Any = None, fit: dict | None = None,
                       overwrite: bool = False) -> Path:
    """Write a guard folder; ``save_model(folder)`` copies the base model in, else ``model_dir`` is referenced.

    ``guard.json`` is written last, atomically: a folder without it is not a guard.
    """
    ctype = type_name(classifier, CLASSIFIER_TYPES, "classifier")
    ttype = (type_name(token_classifier, TOKEN_CLASSIFIER_TYPES, "token_classifier")
             if token_classifier is not None else None)
    path = prepare_out_dir(path, overwrite=overwrite, field="out")
    classifier.save_pretrained(path / "classifier", overwrite=True)
    if token_classifier is not None:
        token_classifier.save_pretrained(path / "token_classifier", overwrite=True)
    if save_model is not None:
        save_model(path / "model")
        model_ref, model_files, copied = "model", {}, True
    else:
        model_ref, model_files, copied = str(model_dir), folder_checksums(model_dir), False
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, **run_record(config, seed=config.get("seed")),
            "classifier_type": ctype, "token_classifier_type": ttype,
            "model": {"path": model_ref, "copied": copied, "files": model_files},
            "fit": fit, "files": folder_checksums(path, exclude=(RECORD, SIDECAR))}
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
        raise BadInput("guard", str(path), "a folder written by EcoGuard.save_pretrained")
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


def load_flag_rule(path: str | Path) -> FlagRule:
    """The flag rule of a guard folder (classifier, and the token classifier when the rule uses names),
    checksums verified, without loading the base model."""
    path = Path(path)
    meta = read_guard_meta(path)
    flag_entities = bool(guard_config(meta, path).get("flag_entities", False))
    token_classifier = load_token_classifier(meta, path) if flag_entities else None
    return FlagRule(load_classifier(meta, path), token_classifier, flag_entities)


def model_folder(meta: dict[str, Any], path: Path) -> Path:
    """The base model's folder: ``model/`` inside the guard (copied), else the declared folder (absolute, or
    relative to the guard folder), which must exist and list its files (config.json among them)."""
    info = meta["model"]
    ref, copied, files = info.get("path"), info.get("copied"), info.get("files")
    if not isinstance(ref, str) or not ref or not isinstance(copied, bool) or not isinstance(files, dict):
        raise ForgetlabError(f"{path / RECORD}: broken record (model needs path, copied and files)")
    if copied:
        return confined(path, ref, f"guard {path}", RECORD)
    model_dir = Path(ref) if Path(ref).is_absolute() else path / ref
    if not model_dir.is_dir():
        raise ForgetlabError(f"guard {path}: its base model folder {model_dir} does not exist")
    if "config.json" not in files:
        raise ForgetlabError(f"guard {path}: {RECORD} declares {ref!r} as the base model but lists no config.json "
                             "of it (a model folder's files and their checksums)")
    return model_dir


def read_guard_folder(path: str | Path, verify: bool = True) -> GuardParts:
    """Everything of a guard folder but the base model's weights, every checksum verified (``verify=False``
    skips the referenced base model's, e.g. a huge model already trusted)."""
    path = Path(path)
    meta = read_guard_meta(path)
    config = guard_config(meta, path)
    model_dir = model_folder(meta, path)
    if verify and not meta["model"].get("copied"):
        verify_checksums(model_dir, meta["model"]["files"], f"base model of guard {path}", RECORD)
    return GuardParts(config, load_classifier(meta, path), load_token_classifier(meta, path), model_dir,
                      meta.get("fit"))
