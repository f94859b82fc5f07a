"""Run folders of the grok lab: config.json, history.jsonl, model.safetensors, summary.json, figures."""

from __future__ import annotations

import os
from dataclasses import fields
from pathlib import Path
from typing import Any

from ..errors import ForgetlabError
from ..runs import (
    atomic_write_json,
    atomic_write_text,
    dumps_json,
    iter_jsonl,
    load_tensors,
    read_json,
    run_record,
    save_tensors,
)
from .config import TrainConfig
from .train import TrainResult


def save_run(out: str | os.PathLike, result: TrainResult, *, plots: bool = True) -> dict[str, str]:
    """Write a finished run into ``out`` (an existing folder); returns the paths written by name."""
    out = Path(out)
    c = result.config
    paths = {name: str(out / name) for name in ("config.json", "history.jsonl", "model.safetensors",
                                                "summary.json")}
    when = {k: result.extra[k] for k in ("started", "machine") if k in result.extra}  # as training began
    atomic_write_json(out / "config.json", run_record(c, seed=c.seed, split_seed=c.split_seed,
                                                      label_seed=c.label_seed, **when))
    atomic_write_text(out / "history.jsonl", "".join(dumps_json(h) + "\n" for h in result.history))
    tensors = dict(result.state)
    tensors["ipr_init"], tensors["ipr_final"] = result.ipr_init, result.ipr_final
    save_tensors(out / "model.safetensors", tensors, metadata={"format": "forgetlab.grok", "model": c.model})
    if plots:
        paths.update(save_run_plots(out, result))
    atomic_write_json(out / "summary.json", result.summary)  # last: its presence marks a finished run
    return paths


def save_run_plots(out: str | os.PathLike, result: TrainResult) -> dict[str, str]:
    """Draw a run's accuracy curves (``accuracy.png``) and IPR histogram (``ipr.png``) into ``out``."""
    from .plots import plot_accuracy, plot_ipr

    out, c = Path(out), result.config
    title = f"p={c.p} {c.op} alpha={c.alpha} xi={c.xi} wd={c.wd} dropout={c.dropout}"
    plot_accuracy(result.history, out / "accuracy.png", title)
    plot_ipr(result.ipr_init, result.ipr_final, out / "ipr.png", title)
    return {"accuracy.png": str(out / "accuracy.png"), "ipr.png": str(out / "ipr.png")}


def load_config(run_dir: str | os.PathLike) -> TrainConfig:
    """The :class:`TrainConfig` recorded in ``run_dir/config.json``."""
    rec: Any = read_json(Path(run_dir) / "config.json")
    cfg = rec.get("config") if isinstance(rec, dict) else None
    names = {f.name for f in fields(TrainConfig)}
    if not isinstance(cfg, dict) or not set(cfg) <= names:
        raise ForgetlabError(f"{Path(run_dir) / 'config.json'}: not a grok training config")
    return TrainConfig(**cfg).validate()


def load_state(run_dir: str | os.PathLike) -> dict:
    """The tensors of ``run_dir/model.safetensors`` (a damaged file is a one-line ForgetlabError)."""
    return load_tensors(Path(run_dir) / "model.safetensors")


def load_run(run_dir: str | os.PathLike) -> TrainResult | None:
    """A finished run folder written by :func:`save_run` as a :class:`TrainResult` (``extra`` empty); None when
    the folder holds no finished run (no ``summary.json``: the run was interrupted or never started)."""
    run_dir = Path(run_dir)
    if not (run_dir / "summary.json").is_file():
        return None
    config = load_config(run_dir)
    summary = read_json(run_dir / "summary.json")
    if not isinstance(summary, dict) or "phase" not in summary:
        raise ForgetlabError(f"{run_dir / 'summary.json'}: not a grok run summary")
    history = [rec for _, rec in iter_jsonl(run_dir / "history.jsonl")]
    state = load_state(run_dir)
    ipr_init, ipr_final = state.pop("ipr_init"), state.pop("ipr_final")
    return TrainResult(config, summary, history, state, ipr_init, ipr_final)
