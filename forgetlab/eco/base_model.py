"""Loading the model a guard wraps: a local Hugging Face causal-LM folder or a hub id at a revision, placed on a
device in a dtype (:class:`~forgetlab.eco.placement.Placement`), in eval mode.

:func:`resolve_model` turns what a user typed into a :class:`ModelSource`: the local folder to read, and, for a
hub model, its id and the exact commit the files came from (the revision recorded in a guard folder). Hub models
come from the local Hugging Face cache (``huggingface_hub.snapshot_download``; with ``HF_HUB_OFFLINE=1`` nothing
is downloaded). :func:`load_base_model` is the one loader of a causal LM, used by ECO and the unlearning judge.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import BadInput
from .hooks import input_embeddings
from .placement import Placement

WEIGHT_GLOBS = ("*.safetensors", "*.bin", "*.pt", "*.pth")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")


@dataclass(frozen=True)
class ModelSource:
    """A causal LM's files: the local ``folder``, and for a hub model its ``hub_id`` and commit ``revision``."""

    folder: Path
    hub_id: str | None = None
    revision: str | None = None


def resolve_model(spec: str | Path, revision: str | None = None) -> ModelSource:
    """The local folder of ``spec``: an existing folder, or a hub id (``org/name``) found in the HF cache.

    ``revision`` (branch, tag or commit) applies to hub ids; the source records the commit it resolved to.
    """
    path = Path(spec)
    if path.is_dir():
        if revision:
            raise BadInput("revision", revision, "no revision for a local folder (only for a hub id)")
        return ModelSource(path.resolve())
    text = str(spec)
    if not _HUB_ID.match(text) or path.exists():
        raise BadInput("model", text, "a local Hugging Face model folder with config.json, or a hub id org/name")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        folder = Path(snapshot_download(text, revision=revision or "main"))
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError, ValueError) as exc:
        raise BadInput("model", f"{text}@{revision or 'main'}", "a hub model in the local Hugging Face cache "
                       f"or reachable ({type(exc).__name__})") from None
    return ModelSource(folder, hub_id=text, revision=folder.name)


def check_model_folder(path: Path) -> None:
    """:class:`BadInput` naming ``model`` unless ``path`` holds ``config.json`` and weights."""
    if not path.is_dir() or not (path / "config.json").is_file():
        raise BadInput("model", str(path), "a local Hugging Face model folder with config.json")
    if not any(any(path.glob(g)) for g in WEIGHT_GLOBS):
        raise BadInput("model", str(path), "a model folder with weights (model.safetensors or *.bin)")


def load_tokenizer(path: str | Path):
    """The tokenizer of a model folder, with a pad token (eos when it has none), padding on the left."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError, KeyError) as exc:  # no or broken tokenizer files
        raise BadInput("model", str(path), f"a model folder with its tokenizer ({type(exc).__name__}: "
                       f"{_first_line(exc)})") from None
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return tokenizer


def load_base_model(path: str | Path, *, dtype: torch.dtype | str | None = None, device: str | None = None,
                    placement: Placement | None = None):
    """Load ``(model, tokenizer)`` from a local HF folder (``local_files_only``), in eval mode.

    ``placement`` gives device, dtype and device map (``dtype``/``device`` are shorthands that override it).
    Bad input -> :class:`BadInput` naming ``model``: a missing folder, no weights, no or a broken tokenizer,
    weights that do not load, an architecture without input embeddings.
    """
    from transformers import AutoModelForCausalLM

    path = Path(path)
    check_model_folder(path)
    tokenizer = load_tokenizer(path)
    kwargs: dict = {}
    if placement is not None:
        kwargs["dtype"] = placement.torch_dtype()
        if placement.device_map:
            kwargs["device_map"] = placement.parsed_device_map()
    if dtype is not None:
        kwargs["dtype"] = getattr(torch, dtype) if isinstance(dtype, str) and dtype != "auto" else dtype
    try:
        model = AutoModelForCausalLM.from_pretrained(str(path), local_files_only=True, **kwargs)
    except Exception as exc:  # narrowed just below
        # unknown architecture, damaged weights, or a pickle .bin that torch's weights-only loader refuses
        # (its UnpicklingError, matched by name: this module never imports pickle)
        if not isinstance(exc, LOAD_ERRORS) and type(exc).__name__ != "UnpicklingError":
            raise
        raise BadInput("model", str(path), f"a loadable causal-LM folder ({type(exc).__name__}: "
                       f"{_first_line(exc)})") from None
    input_embeddings(model)
    if device is None and placement is not None and not placement.device_map:
        device = placement.torch_device()
    if device is not None and "device_map" not in kwargs:
        model = model.to(device)
    return model.eval(), tokenizer


def input_device(model) -> torch.device:
    """Where ``input_ids`` must go: the device of the input embeddings (the first stage of a device map)."""
    return input_embeddings(model).weight.device


LOAD_ERRORS = (OSError, ValueError, KeyError, ImportError, RuntimeError)
"""What a model folder that cannot be loaded raises from ``from_pretrained`` (reported as one line)."""


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [""])[0][:200]
