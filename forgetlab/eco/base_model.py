"""Loading the model a guard wraps: any local Hugging Face causal-LM folder, offline, in eval mode."""

from __future__ import annotations

import pickle
from pathlib import Path

import torch

from ..errors import BadInput
from .hooks import input_embeddings

WEIGHT_GLOBS = ("*.safetensors", "*.bin", "*.pt", "*.pth")


def load_base_model(path: str | Path, *, dtype: torch.dtype | str | None = None, device: str | None = None):
    """Load ``(model, tokenizer)`` from a local HF folder (``local_files_only``), in eval mode.

    Bad input -> :class:`BadInput` naming ``model``: a missing folder, no weights, no or a broken tokenizer,
    weights that do not load, an architecture without input embeddings. The tokenizer gets a pad token (eos) when it has none; generation pads on the left.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(path)
    if not path.is_dir() or not (path / "config.json").is_file():
        raise BadInput("model", str(path), "a local Hugging Face model folder with config.json")
    if not any(any(path.glob(g)) for g in WEIGHT_GLOBS):
        raise BadInput("model", str(path), "a model folder with weights (model.safetensors or *.bin)")
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError, KeyError) as exc:  # no or broken tokenizer files
        raise BadInput("model", str(path), f"a model folder with its tokenizer ({type(exc).__name__}: "
                       f"{_first_line(exc)})") from None
    try:
        kwargs = {"dtype": dtype} if dtype is not None else {}
        model = AutoModelForCausalLM.from_pretrained(str(path), local_files_only=True, **kwargs)
    except (OSError, ValueError, KeyError, RuntimeError, pickle.UnpicklingError) as exc:
        # unknown architecture, damaged weights, a pickle .bin that torch's weights-only loader refuses
        raise BadInput("model", str(path), f"a loadable causal-LM folder ({type(exc).__name__}: "
                       f"{_first_line(exc)})") from None
    input_embeddings(model)
    if device is not None:
        model = model.to(device)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return model.eval(), tokenizer


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [""])[0][:200]
