"""Per-run minibatch order (official `phase_diagrams_bn.py`): each epoch a fresh permutation of the run's own
training set from the run's own generator, cut into ``n_train // B`` batches, the remainder dropped."""

from __future__ import annotations

from collections.abc import Sequence

import torch


class Minibatches:
    """The pair indices each step of R runs trains on; ``n_train [R]`` training-set sizes, ``bs`` the batch."""

    def __init__(self, n_train: Sequence[int], bs: int, gens: Sequence[torch.Generator]) -> None:
        self.n_train, self.bs, self.gens = [int(n) for n in n_train], bs, gens
        self.spe = [n // bs for n in self.n_train]  # steps per epoch
        self.perms: list[torch.Tensor | None] = [None] * len(gens)

    def indices(self, step: int) -> torch.Tensor:
        """Pair indices ``[R, bs]`` of the minibatch of ``step`` (1-based)."""
        idx = []
        for r, gen in enumerate(self.gens):
            k = (step - 1) % self.spe[r]
            if k == 0:
                self.perms[r] = torch.randperm(self.n_train[r], generator=gen)[
                    : self.spe[r] * self.bs].view(self.spe[r], self.bs)
            idx.append(self.perms[r][k])
        return torch.stack(idx)
