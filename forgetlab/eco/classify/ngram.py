"""Cheap first stage of the prompt classifier: hashed character and word n-grams + logistic regression.

It runs in microseconds per prompt and only ever *clears* prompts (lets them pass without running MiniLM) when
their score is below a threshold set on held-out forget prompts with a conformal miss bound
(:func:`forgetlab.eco.conformal.conformal_lower_threshold`). It never flags anything by itself, so the
false-positive guarantee of the MiniLM stage is untouched; the extra misses it may add are measured and reported.

Features: lower-cased word unigrams and bigrams and character 3-5-grams inside word boundaries (with a space
on each side), hashed with CRC32 into ``n_features`` buckets, sub-linear counts (1 + log tf), L2-normalized.
CRC32 (not Python's salted ``hash``) keeps features identical across processes.

A text is scored *locally*: the maximum over windows of ``width`` words every ``stride`` words
(:meth:`NgramModel.local_score`), so a forget question inside long benign text is not averaged away by the L2
normalization.
"""

from __future__ import annotations

import itertools
import math
import re
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import scipy.optimize
import scipy.sparse
import scipy.special

_WORD = re.compile(r"[^\W_]+")


@contextmanager
def single_thread() -> Iterator[None]:
    """Run small optimizations on one BLAS / torch thread, restoring the settings after.

    Multi-threaded BLAS on tiny vectors spends its time waking threads; on a busy shared CPU one L-BFGS step
    took 0.15 s instead of microseconds.
    """
    import torch
    from threadpoolctl import threadpool_limits

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1):
            yield
    finally:
        torch.set_num_threads(n)


def ngram_keys(text: str, char_n: tuple[int, int] = (3, 5)) -> list[bytes]:
    """The n-gram keys of ``text`` (before hashing): word 1-2-grams and in-word character n-grams."""
    words = _WORD.findall(text.lower())
    keys = [b"w:" + w.encode() for w in words]
    keys += [b"b:" + (a + " " + b).encode() for a, b in itertools.pairwise(words)]
    lo, hi = char_n
    for w in words:
        padded = f" {w} "
        for n in range(lo, hi + 1):
            for i in range(len(padded) - n + 1):
                keys.append(b"c:" + padded[i:i + n].encode())
    return keys


def featurize(texts: Sequence[str], n_features: int) -> scipy.sparse.csr_matrix:
    """Hashed, sub-linear, L2-normalized n-gram counts ``[N, n_features]`` (CSR, float32)."""
    indptr, indices, data = [0], [], []
    for text in texts:
        counts: dict[int, int] = {}
        for key in ngram_keys(text):
            h = zlib.crc32(key) % n_features
            counts[h] = counts.get(h, 0) + 1
        vals = [1.0 + math.log(c) for c in counts.values()]
        norm = math.sqrt(sum(v * v for v in vals)) or 1.0
        indices.extend(counts.keys())
        data.extend(v / norm for v in vals)
        indptr.append(len(indices))
    return scipy.sparse.csr_matrix((np.asarray(data, np.float32), np.asarray(indices, np.int64),
                                    np.asarray(indptr, np.int64)), shape=(len(texts), n_features))


@dataclass
class NgramModel:
    """Logistic regression on hashed n-grams: ``score = x @ weight + bias`` (a logit, higher = forget)."""

    weight: np.ndarray  # [n_features] float32
    bias: float

    @property
    def n_features(self) -> int:
        return int(self.weight.shape[0])

    @classmethod
    def fit(cls, texts: Sequence[str], labels: np.ndarray, n_features: int = 2**18,
            l2: float = 1e-3) -> NgramModel:
        """Class-balanced, L2-regularized logistic regression by L-BFGS (deterministic: no random draws)."""
        x = featurize(texts, n_features)
        y = np.asarray(labels, dtype=np.float64)
        pos = max(y.sum(), 1.0)
        neg = max(len(y) - y.sum(), 1.0)
        sw = np.where(y > 0, len(y) / (2 * pos), len(y) / (2 * neg)) / len(y)  # balanced, mean-normalized
        used = np.unique(x.indices)  # optimize only over buckets that occur: same optimum, far fewer params
        xu = x[:, used].astype(np.float64).tocsr()

        def loss_grad(theta: np.ndarray) -> tuple[float, np.ndarray]:
            w, b = theta[:-1], theta[-1]
            z = xu @ w + b
            # log(1 + e^z) - y z, stably
            loss = np.sum(sw * (np.logaddexp(0.0, z) - y * z)) + 0.5 * l2 * w @ w
            r = sw * (scipy.special.expit(z) - y)
            return float(loss), np.concatenate([xu.T @ r + l2 * w, [r.sum()]])

        theta0 = np.zeros(len(used) + 1)
        with single_thread():
            res = scipy.optimize.minimize(loss_grad, theta0, jac=True, method="L-BFGS-B",
                                          options={"maxiter": 500})
        weight = np.zeros(n_features, dtype=np.float32)
        weight[used] = res.x[:-1]
        return cls(weight=weight, bias=float(res.x[-1]))

    def local_score(self, texts: Sequence[str], width: int = 12, stride: int = 6) -> np.ndarray:
        """Max logit over word windows of each text ``[N]`` (a text of at most ``width`` words is one window)."""
        pieces, owner = [], []
        for i, text in enumerate(texts):
            spans = [m.span() for m in _WORD.finditer(text)]
            if len(spans) <= width:
                pieces.append(text)
                owner.append(i)
                continue
            starts = list(range(0, len(spans) - width + 1, stride))
            if starts[-1] != len(spans) - width:
                starts.append(len(spans) - width)
            for s in starts:
                pieces.append(text[spans[s][0]:spans[s + width - 1][1]])
                owner.append(i)
        out = np.full(len(texts), -np.inf)
        if pieces:
            np.maximum.at(out, np.asarray(owner, dtype=np.int64), self.score(pieces))
        return out

    def score(self, texts: Sequence[str]) -> np.ndarray:
        """Logits ``[N]`` float64."""
        if len(texts) == 0:
            return np.zeros(0)
        return featurize(texts, self.n_features) @ self.weight.astype(np.float64) + self.bias
