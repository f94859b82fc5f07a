"""Fine-tuning unlearning baselines: gradient ascent (GA), gradient difference (GD), NPO (with a retain term) and
RMU (representation misdirection, Li et al. 2024, WMDP).

Each method is a small class overriding only :meth:`Unlearner.loss`, in open-unlearning's style; the shared loop
runs under Hugging Face ``accelerate`` (``Accelerator().prepare``), so the same code runs single-process here
and on several GPUs with ``accelerate launch your_script.py`` (each process gets its shard of the forget and
retain loaders; gradients are all-reduced by accelerate).

Defaults (documented; the bench tunes ``lr`` and ``epochs`` per seed by ECO's holdout-surrogate rule,
:mod:`forgetlab.unlearning.bench.tune`, and uses these under ``--no-tune``): AdamW, ``lr=5e-4`` (the tiny
models are trained at 3e-3; TOFU's 7B recipes use 1e-5), 5 epochs over the forget set, batch 32, retain batches
drawn alongside; NPO ``beta=0.1`` (Zhang et al. 2024, as open-unlearning), GD/NPO retain weight 1; RMU as open-unlearning's ``RMU`` config (steering
coefficient 2, alpha 1, every parameter trainable, the activations of the decoder layer at a quarter of the depth:
OU's layer 7 of Llama-2-7B's 32).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F

from ..errors import BadInput
from ..registry import Registry
from .lm import collate, encode_pair, prompt_of


@dataclass(frozen=True)
class UnlearnConfig:
    """Hyper-parameters shared by all baselines (see module docstring for the defaults' provenance)."""

    lr: float = 5e-4
    epochs: int = 5
    batch_size: int = 32
    beta: float = 0.1
    retain_weight: float = 1.0
    weight_decay: float = 0.0
    seed: int = 0
    steering_coeff: float = 2.0  # RMU: norm of the random control vector the forget activations are pushed to
    rmu_depth: float = 0.25  # RMU: the decoder layer whose output is steered, as a fraction of the depth


def sequence_nll(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Summed answer-token NLL per sequence ``[B]`` (labels -100 on prompt and padding)."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
    labels = batch["labels"][:, 1:]
    nll = F.cross_entropy(logits.transpose(1, 2).float(), labels.clamp_min(0), reduction="none")
    return (nll * (labels != -100)).sum(1)


def mean_nll(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean answer-token NLL over the batch (the usual LM loss)."""
    n = (batch["labels"][:, 1:] != -100).sum().clamp_min(1)
    return sequence_nll(model, batch).sum() / n


class Unlearner:
    """Fine-tune a model to forget; subclasses override :meth:`loss` only.

    ``needs_retain``/``needs_reference`` tell the loop which extra batches and frozen model to provide.
    """

    name = "base"
    needs_retain = False
    needs_reference = False

    def __init__(self, config: UnlearnConfig | None = None) -> None:
        self.config = config or UnlearnConfig()
        if self.config.lr <= 0 or self.config.epochs < 1 or self.config.batch_size < 1:
            raise BadInput("unlearn config", asdict(self.config), "lr > 0, epochs >= 1, batch_size >= 1")

    def loss(self, model, forget: dict[str, torch.Tensor], retain: dict[str, torch.Tensor] | None,
             ref_model=None) -> torch.Tensor:
        raise NotImplementedError

    def unlearn(self, model, tokenizer, forget: Sequence[dict[str, Any]], retain: Sequence[dict[str, Any]] = (),
                progress: Callable[[int, int], None] | None = None,
                on_epoch: Callable[[int, Any], None] | None = None) -> dict[str, Any]:
        """Fine-tune ``model`` in place on question/answer ``forget`` (and ``retain``) items; returns a record.

        Runs through ``accelerate``: model, optimizer and loaders are prepared by one ``Accelerator``.
        ``on_epoch(epoch, model)`` (1-based) is called after each epoch with the model in eval mode: the state
        after epoch ``e`` of a run is the state a run of ``e`` epochs ends in (constant learning rate, the same
        seeded batch order), so one run can score every shorter run of a grid.
        """
        from accelerate import Accelerator

        if not forget:
            raise BadInput("forget", 0, "at least one forget item")
        if self.needs_retain and not retain:
            raise BadInput("retain", 0, f"retain items for {self.name}")
        cfg = self.config
        acc = Accelerator(cpu=not torch.cuda.is_available())
        f_loader = self._loader(tokenizer, forget, cfg.seed)
        r_loader = self._loader(tokenizer, retain, cfg.seed + 1) if self.needs_retain else None
        ref = None
        if self.needs_reference:
            ref = copy.deepcopy(model).eval()
            for p in ref.parameters():
                p.requires_grad_(False)
        opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        if r_loader is not None:
            model, opt, f_loader, r_loader = acc.prepare(model, opt, f_loader, r_loader)
        else:
            model, opt, f_loader = acc.prepare(model, opt, f_loader)
        if ref is not None:
            ref = ref.to(acc.device)
        total, t0 = cfg.epochs * len(f_loader), time.perf_counter()
        losses = self._epochs(acc, model, opt, f_loader, r_loader, ref, progress, on_epoch)
        acc.unwrap_model(model)
        return {"method": self.name, "config": asdict(cfg), "n_forget": len(forget), "steps": total,
                "final_loss": losses[-1],
                "seconds": time.perf_counter() - t0, "processes": acc.num_processes}

    def _loader(self, tokenizer, items: Sequence[dict[str, Any]], seed: int):
        """A shuffled (seeded) loader of the encoded question/answer ``items``, batches padded."""
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        seqs = [encode_pair(tokenizer, prompt_of(it["question"]), it["answer"]) for it in items]
        gen = torch.Generator().manual_seed(seed)
        return torch.utils.data.DataLoader(seqs, batch_size=self.config.batch_size, shuffle=True, generator=gen,
                                           collate_fn=lambda b: collate(b, pad))

    def _epochs(self, acc, model, opt, f_loader, r_loader, ref, progress, on_epoch) -> list[float]:
        """The training loop: every forget batch of every epoch, a retain batch beside it when needed (the
        retain loader cycles); returns the losses. Leaves the model in eval mode."""
        total, step, losses = self.config.epochs * len(f_loader), 0, []
        r_iter = iter(r_loader) if r_loader is not None else None
        for epoch in range(self.config.epochs):
            model.train()
            for fb in f_loader:
                rb = None
                if r_iter is not None:
                    try:
                        rb = next(r_iter)
                    except StopIteration:
                        r_iter = iter(r_loader)
                        rb = next(r_iter)
                loss = self.loss(model, fb, rb, ref)
                opt.zero_grad(set_to_none=True)
                acc.backward(loss)
                opt.step()
                step += 1
                losses.append(float(loss.detach()))
                if progress is not None:
                    progress(step, total)
            model.eval()
            if on_epoch is not None:
                on_epoch(epoch + 1, acc.unwrap_model(model))
        return losses


class GradientAscent(Unlearner):
    """GA: maximize the forget-set NLL, i.e. minimize ``-NLL(forget)`` (TOFU Sec. 3)."""

    name = "ga"

    def loss(self, model, forget, retain, ref_model=None):
        return -mean_nll(model, forget)


class GradientDifference(Unlearner):
    """GD: ``-NLL(forget) + w * NLL(retain)`` (TOFU Sec. 3; open-unlearning ``GradDiff``)."""

    name = "gd"

    needs_retain = True

    def loss(self, model, forget, retain, ref_model=None):
        return -mean_nll(model, forget) + self.config.retain_weight * mean_nll(model, retain)


class NPO(Unlearner):
    """NPO with a retain term: ``-(2/beta) E[log sigmoid(-beta (log p_theta(y|x) - log p_ref(y|x)))] +
    w * NLL(retain)`` with sequence log-likelihoods (Zhang et al. 2024, Eq. 3; open-unlearning ``NPO``)."""

    name = "npo"
    needs_retain = True
    needs_reference = True

    def loss(self, model, forget, retain, ref_model=None):
        beta = self.config.beta
        lp = -sequence_nll(model, forget)
        with torch.no_grad():
            lp_ref = -sequence_nll(ref_model, forget)
        npo = -2.0 / beta * F.logsigmoid(-beta * (lp - lp_ref)).mean()
        return npo + self.config.retain_weight * mean_nll(model, retain)


def decoder_layers(model) -> torch.nn.ModuleList:
    """The model's stack of decoder layers (the ``ModuleList`` named ``layers`` or ``h``: Llama, GPT-2, ...)."""
    for name, mod in model.named_modules():
        if isinstance(mod, torch.nn.ModuleList) and name.split(".")[-1] in ("layers", "h"):
            return mod
    raise BadInput("model", type(model).__name__, "a causal LM with a decoder-layer list named layers or h (RMU)")


class RMU(Unlearner):
    """RMU: push the forget answers' activations at one decoder layer to a fixed random vector ``c u`` and keep
    the retain answers' activations where the frozen model has them, ``||h(f) - c u||^2 + alpha ||h(r) -
    h_ref(r)||^2``, each a mean over the hidden dims and the answer tokens (Li et al. 2024, WMDP Sec. 5;
    open-unlearning ``RMU`` with ``EMBED_DIFF``). ``u`` is uniform in [0, 1)^d normalized, seeded by ``seed``."""

    name = "rmu"
    needs_retain = True
    needs_reference = True

    def _layer(self, model) -> torch.nn.Module:
        layers = decoder_layers(model)
        return layers[min(len(layers) - 1, int(self.config.rmu_depth * len(layers)))]

    def _activations(self, model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Output of the steered decoder layer ``[B, T, d]`` for ``batch``."""
        cache: list[torch.Tensor] = []
        handle = self._layer(model).register_forward_hook(
            lambda _m, _i, out: cache.append(out[0] if isinstance(out, tuple) else out))
        try:
            model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        finally:
            handle.remove()
        return cache[0]

    @staticmethod
    def _masked_mse(a: torch.Tensor, b: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Mean over dims, then over the answer tokens of each row (labels != -100), then over rows."""
        mask = (labels != -100).float()
        per_tok = F.mse_loss(a.float(), b.float().expand_as(a), reduction="none").mean(-1)  # [B, T]
        return ((per_tok * mask).sum(1) / mask.sum(1).clamp_min(1)).mean()

    def control(self, dim: int, device) -> torch.Tensor:
        """The control vector ``c u`` ``[1, 1, d]`` (fixed by ``seed``)."""
        if getattr(self, "_control", None) is None or self._control.shape[-1] != dim:
            u = torch.rand(1, 1, dim, generator=torch.Generator().manual_seed(self.config.seed))
            self._control = u / u.norm() * self.config.steering_coeff
        return self._control.to(device)

    def loss(self, model, forget, retain, ref_model=None):
        h_f = self._activations(model, forget)
        forget_loss = self._masked_mse(h_f, self.control(h_f.shape[-1], h_f.device), forget["labels"])
        with torch.no_grad():
            h_ref = self._activations(ref_model, retain)
        retain_loss = self._masked_mse(self._activations(model, retain), h_ref, retain["labels"])
        return forget_loss + self.config.retain_weight * retain_loss


METHODS: Registry[type[Unlearner]] = Registry("method", {"ga": GradientAscent, "gd": GradientDifference,
                                                        "npo": NPO, "rmu": RMU})
"""Fine-tuning baselines by name."""


def get_method(name: str) -> type[Unlearner]:
    """The baseline class called ``name``; an unknown name lists the known ones."""
    return METHODS.get(name)
