"""Kill test (issue 3 acceptance): a sweep of 48 real runs, SIGKILLed at random moments 5 times and resumed
each time, ends with every run stored exactly once and results identical to an uninterrupted sweep."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from forgetlab.grok.sweep.run import run_sweep
from forgetlab.grok.sweep.spec import load_spec, load_trainer, make_configs, run_id
from forgetlab.grok.sweep.store import read_results_csv

SPEC = """\
[sweep]
name = "kill"
max_batch_runs = 6

[fixed]
p = 11
width = 16
steps = 120
log_every = 40

[grid]
alpha = [0.3, 0.5, 0.7, 0.9]
xi = [0.1, 0.3, 0.5, 0.7]
wd = [0.0, 5.0, 15.0]
"""


def comparable(path: Path) -> list[dict[str, str]]:
    """results.csv rows without the wall-clock column (the only one allowed to differ)."""
    return [{k: v for k, v in row.items() if k != "seconds"} for row in read_results_csv(path)]


def start(spec: Path, out: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "forgetlab.cli", "grok", "sweep", "--spec", str(spec),
                             "--out", str(out), "--quiet"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})


def busy(out: Path) -> bool:
    """The sweep has started working: a batch is claimed (or already stored)."""
    claims, runs = out / "claims", out / "runs"
    return (claims.is_dir() and any(claims.iterdir())) or (runs.is_dir() and any(runs.iterdir()))


def n_stored(out: Path) -> int:
    return len(list((out / "runs").glob("*.json"))) if (out / "runs").is_dir() else 0


def test_sigkill_five_times_then_resume_is_identical(tmp_path):
    spec_path = tmp_path / "spec.toml"
    spec_path.write_text(SPEC)
    trainer = load_trainer()
    spec = load_spec(spec_path, config_cls=trainer.TrainConfig)
    ids = {run_id(c) for c in make_configs(spec, trainer)}
    assert len(ids) == 48

    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the subprocesses use one thread too: identical float summation order
    try:
        t_ref = time.monotonic()
        ref = run_sweep(spec, tmp_path / "ref", progress=False)
        t_ref = time.monotonic() - t_ref
    finally:
        torch.set_num_threads(threads)
    # a random moment inside the next batch: on a quiet machine a whole 8-batch sweep takes well under a
    # second, so a fixed delay would let the process finish before it is killed
    batch_s = max(t_ref / 8, 0.005)

    out = tmp_path / "killed"
    rng = random.Random(3)
    seen = []
    for _ in range(5):
        before = n_stored(out)
        target = before + rng.randint(0, 6)  # kill during this attempt's first or second batch...
        proc = start(spec_path, out)
        t0 = time.monotonic()
        while proc.poll() is None and time.monotonic() - t0 < 120 and not (busy(out) and n_stored(out) >= target):
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, batch_s))  # ...at a random moment: training, writing a run, or between
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        seen.append(n_stored(out))
    assert any(0 < n < 48 for n in seen), seen  # kills landed mid-sweep

    final = start(spec_path, out)
    _, err = final.communicate(timeout=300)
    assert final.returncode == 0, err.decode()

    files = sorted((out / "runs").glob("*.json"))
    assert {p.stem for p in files} == ids and len(files) == 48  # every run once, nothing else
    for p in files:
        assert json.loads(p.read_text())["run_id"] == p.stem
    assert not list((out / "runs").glob(".*"))  # no temp files left behind
    assert not list((out / "claims").iterdir())
    rows = comparable(out / "results.csv")
    assert len({r["run_id"] for r in rows}) == 48
    assert rows == comparable(ref.results_csv)
