"""The guard folder: one shippable directory holding everything a guard is, checked on every load.

Layout: ``guard.json`` (format, the guard's config, fitted parameters, fit record, versions, the SHA-256 of
every file), ``classifier/``, optional ``token_classifier/``, and the base model either copied to ``model/`` or
referenced by path with the checksums of its files. Every recorded checksum is verified before anything is
loaded; a mismatch is a :class:`~forgetlab.errors.ForgetlabError` naming the file. Safetensors and JSON only.
Classifier types are looked up by name in :data:`CLASSIFIER_TYPES` / :data:`TOKEN_CLASSIFIER_TYPES`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import BadInput, ForgetlabError
from ..registry import Registry
from ..runs import (
    atomic_write_json,
    folder_checksums,
    prepare_out_dir,
    read_record,
    run_record,
    verify_checksums,
)
from .classify.rule import FlagRule

FORMAT = "forgetlab.eco.EcoGuard"
FORMAT_VERSION = 3  # 2: config.flag_entities / entity_tokens; 3: config.positions (older folders still load)
RECORD = "guard.json"

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
            "fit": fit, "files": folder_checksums(path, exclude=(RECORD,))}
    atomic_write_json(path / RECORD, meta)
    return path


def read_guard_meta(path: Path) -> dict[str, Any]:
    """``guard.json`` of a guard folder, after verifying the checksums of every file it lists."""
    meta = read_record(path, RECORD, FORMAT, FORMAT_VERSION, field="guard")
    verify_checksums(path, meta.get("files", {}), f"guard {path}", RECORD)
    return meta


def guard_config(meta: dict[str, Any], path: Path) -> dict[str, Any]:
    """The recorded config. Folders of format 1 lack ``flag_entities``/``entity_tokens`` (their defaults
    apply); folders before format 3 corrupted every prompt token, so they keep ``positions="all"``."""
    config = meta.get("config")
    if not isinstance(config, dict) or "corruption" not in config:
        raise ForgetlabError(f"{path / RECORD}: broken record (no config with a corruption)")
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


def read_guard_folder(path: str | Path, verify: bool = True) -> GuardParts:
    """Everything of a guard folder but the base model's weights, every checksum verified (``verify=False``
    skips the referenced base model's, e.g. a huge model already trusted)."""
    path = Path(path)
    meta = read_guard_meta(path)
    config = guard_config(meta, path)
    model_info = meta.get("model")
    if not isinstance(model_info, dict) or not isinstance(model_info.get("path"), str):
        raise ForgetlabError(f"{path / RECORD}: broken record (no model path)")
    model_dir = path / model_info["path"] if model_info.get("copied") else Path(model_info["path"])
    if verify and not model_info.get("copied"):
        if not model_dir.is_dir():
            raise ForgetlabError(f"guard {path}: its base model folder {model_dir} does not exist")
        verify_checksums(model_dir, model_info.get("files", {}), f"base model of guard {path}", RECORD)
    return GuardParts(config, load_classifier(meta, path), load_token_classifier(meta, path), model_dir,
                      meta.get("fit"))
