"""Finished grok run folders as one Markdown table: the setting that differs between them and where each ended.

    .venv/bin/python benchmarks/grok_runs_table.py docs/benchmarks/grok_arch/probes/*

Each folder holds a run's ``config.json`` and ``summary.json`` (`forgetlab grok train`, the App. G cases' seed
folders, the probes in docs/benchmarks/grok.md). One row per folder, in the order given: model (depth, and the
Transformer's parameter groups, a minibatch run's batch, learning rate and updates, and the products' precision
when not the defaults),
regularization, alpha, xi, seed, phase, train and test accuracy, the corrupted training examples memorized and
inverted, mean IPR and the final / initial weight norm. Accuracies in percent. A folder without a finished run is a
one-line error with exit code 2.
"""

from __future__ import annotations

import sys
from pathlib import Path

from forgetlab.errors import ForgetlabError
from forgetlab.grok.config import training_notes
from forgetlab.grok.record import load_config
from forgetlab.runs import read_json

HEAD = ["run", "model", "regularization", "alpha", "xi", "p", "seed", "phase", "train %", "test %",
        "corrupted memorized %", "corrupted inverted %", "mean IPR", "norm final / initial"]


def _model(c) -> str:
    """The architecture, with the settings that change how it trains when they are not the defaults."""
    name = "Transformer" if c.model == "transformer" else f"{c.depth}-layer {c.act} MLP, N={c.width}"
    name += ", mup groups" if c.param_groups == "mup" else ""
    if c.batch_size:  # a minibatch run: its batch, learning rate and updates differ from the full-batch rows
        name += f", batch {c.batch_size}, lr {c.lr:g}, {c.steps} updates"
    return name + training_notes(c)


def _regularization(c) -> str:
    parts = [f"wd {c.wd:g}"] if c.wd else []
    parts += [f"dropout {c.dropout:g}"] if c.dropout else []
    parts += [f"BatchNorm{' before the activation' if c.batchnorm_placement == 'pre' else ''}"] if c.batchnorm else []
    parts += ["LayerNorm"] if c.layernorm else []
    return ", ".join(parts) or "none"


def row(folder: Path) -> list[str]:
    """One table row from a finished run folder."""
    c = load_config(folder)
    s = read_json(folder / "summary.json")
    pct = [f"{100 * s[k]:.1f}" for k in ("train_acc", "test_acc", "corrupted_acc", "inversion_acc")]
    name = f"{folder.parent.name}/{folder.name}" if folder.name.startswith("seed") else folder.name  # a case's seed
    return [name, _model(c), _regularization(c), f"{c.alpha:g}", f"{c.xi:g}", str(c.p), str(c.seed),
            s["phase"], *pct, f"{s['mean_ipr']:.3f}", f"{s['weight_norm'] / s['weight_norm_init']:.2f}"]


def main(argv: list[str] | None = None) -> int:
    """Print the table of the run folders given as arguments."""
    args = sys.argv[1:] if argv is None else argv
    if not args:
        print("usage: grok_runs_table.py RUN_DIR...", file=sys.stderr)
        return 2
    try:
        rows = [row(Path(a)) for a in args]
    except (ForgetlabError, OSError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("| " + " | ".join(HEAD) + " |")
    print("|" + "---|" * len(HEAD))
    for r in rows:
        print("| " + " | ".join(r) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
