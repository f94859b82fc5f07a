"""Sweeps with the real batched trainer: CLI end to end, Ray equals local, plots, bad input through the CLI."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from forgetlab.errors import ForgetlabError
from forgetlab.grok.sweep.plots import majority_phase, phase_grids, plot_dynamics, plot_phase_diagram
from forgetlab.grok.sweep.run import run_sweep
from forgetlab.grok.sweep.spec import build_spec, load_trainer, preset_names
from forgetlab.grok.sweep.store import read_results_csv

GRID = ["alpha=0.4,0.8", "xi=0.1,0.5", "wd=0,15"]
FIXED = ["p=7", "width=12", "steps=40", "log_every=10"]


def comparable(path):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in read_results_csv(path)]


def small_spec(**kw):
    spec = build_spec(grid=GRID, fixed=FIXED, config_cls=load_trainer().TrainConfig)
    import dataclasses

    return dataclasses.replace(spec, max_batch_runs=3, batching="max", **kw)  # batches of 3, as planned


def test_presets_load_and_expand():
    cls = load_trainer().TrainConfig
    assert {"wd", "dropout", "bn", "minibatch", "small"} <= set(preset_names())
    sizes = {name: build_spec(preset=name, config_cls=cls) for name in ("wd", "dropout", "bn", "minibatch")}
    assert {k: s.n_runs() for k, s in sizes.items()} == {"wd": 1156, "dropout": 1156, "bn": 1156,
                                                          "minibatch": 867}
    mb = sizes["minibatch"]
    assert 0 in mb.zip["batch_size"]  # the full-batch column the official script never trained
    assert mb.panel_keys() == ["batch_size"] and sizes["wd"].grid["alpha"][1] == 0.15
    reduced = {name: build_spec(preset=f"{name}_p47", config_cls=cls) for name in sizes}
    assert {k: s.n_runs() for k, s in reduced.items()} == {"wd": 196, "dropout": 100, "bn": 100, "minibatch": 75}
    for s in reduced.values():  # every batch size fits the smallest training set (alpha 0.1: 220 pairs)
        assert s.fixed["p"] == 47 and max(s.zip.get("batch_size", [0])) <= int(0.1 * 47 * 47)
        assert all(c.validate() for c in [cls(**d) for d in s.expand()])
    small = {name: build_spec(preset=f"{name}_p41", config_cls=cls) for name in sizes}
    assert {k: s.n_runs() for k, s in small.items()} == {"wd": 100, "dropout": 100, "bn": 100, "minibatch": 75}
    for s in small.values():  # the demo's size; batches fit the smallest training set (alpha 0.1: 168 pairs)
        assert (s.fixed["p"], s.fixed["width"]) == (41, 128) and max(s.zip.get("batch_size", [0])) <= 168
        assert all(c.validate() for c in [cls(**d) for d in s.expand()])


def test_cli_sweep_then_phase_diagram(tmp_path, capsys):
    from forgetlab.cli import main

    out = tmp_path / "s"
    args = ["grok", "sweep", "--out", str(out), "--quiet", "--keep-history"]
    args += [a for g in GRID for a in ("--grid", g)] + [a for f in FIXED for a in ("--set", f)]
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 0
    res = json.loads(capsys.readouterr().out)  # stdout is exactly one JSON object
    assert (res["n_runs"], res["n_trained"], res["n_skipped"]) == (8, 8, 0) and sum(res["phases"].values()) == 8
    assert Path(res["results_csv"]).is_file()
    with pytest.raises(SystemExit):
        main(args)
    cap = capsys.readouterr()
    assert (json.loads(cap.out)["n_skipped"], json.loads(cap.out)["n_trained"]) == (8, 0) and cap.err == ""
    with pytest.raises(SystemExit) as exc:
        main(["grok", "phase-diagram", str(out)])
    assert exc.value.code == 0
    pngs = json.loads(capsys.readouterr().out)["files"]
    names = sorted(p.rsplit("/", 1)[-1] for p in pngs)
    assert names == ["dynamics_wd=0.png", "dynamics_wd=15.png", "phase_counts.json", "phase_diagram.png",
                     "phase_wd=0.png", "phase_wd=15.png"]
    assert all((tmp_path / "s" / "plots" / n).stat().st_size > 5000 for n in names if n.endswith(".png"))
    for extra, field in ((["--table", "--out", str(tmp_path / "t")], "out"), (["--out", str(out / "results.csv")], "out")):
        with pytest.raises(SystemExit) as exc:
            main(["grok", "phase-diagram", str(out), *extra])
        err = capsys.readouterr().err
        assert exc.value.code == 2 and err.startswith(f"error: {field}:") and err.count("\n") == 1
    assert not (tmp_path / "t").exists()
    with pytest.raises(SystemExit) as exc:
        main(["grok", "phase-diagram", str(out), "--table"])
    assert exc.value.code == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].startswith("| panel | Coexistence |") and len(table) == 4 and table[2].startswith("| wd=0 |")
    assert all(row.endswith("| 4 |") for row in table[2:])  # 2 x 2 cells per panel
    with pytest.raises(SystemExit) as exc:
        main(["grok", "sweep", "--out", str(tmp_path / "e"), "--estimate", *[a for a in args[4:] if a != "--quiet"]])
    assert exc.value.code == 0
    cap = capsys.readouterr()
    est = json.loads(cap.out)["estimate"]  # stdout: the result; stderr: the description
    lines = cap.err.splitlines()  # a line before each shape's probe, then the estimate
    assert lines[0].startswith("probing shape 1 of 1: a batch of") and "p=7, 16 steps" in lines[0]  # 2 + 2 + 10, + 2 with histories
    assert lines[1].startswith("8 runs, estimated") and "ms per step" in cap.err and not (tmp_path / "e").exists()
    assert est["n_runs"] == 8 and est["seconds"] > 0 and est["shapes"]
    # the plan the estimate costs is said: the sweep measures its batch size and may batch fewer (it said nothing)
    assert est["batch_runs"] == 8 and est["measured_batching"] and "may batch fewer" in lines[1]


def test_a_sweep_with_diverging_runs_says_so_and_shows_them_apart(tmp_path, capsys):
    """Runs whose loss became NaN are Diverged in results.csv, in the warning, the table and the plots (their own
    color), never counted as Confusion; a sweep without them keeps the six-phase table."""
    from forgetlab.cli import main

    out = tmp_path / "s"
    args = ["grok", "sweep", "--out", str(out), "--quiet", "--keep-history", "--grid", "alpha=0.4,0.8", "--grid", "xi=0.1",
            "--grid", "lr=0.01,1e30", *[a for f in FIXED for a in ("--set", f)]]
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 0
    cap = capsys.readouterr()
    assert json.loads(cap.out)["phases"].get("Diverged") == 2
    assert "warning: 2 of 4 runs diverged" in cap.err and "first seen at logged step 10" in cap.err
    rows = read_results_csv(out / "results.csv")
    assert {(r["lr"], r["phase"] == "Diverged", r["diverged_step"]) for r in rows} == {("0.01", False, ""),
                                                                                     ("1e+30", True, "10")}
    with pytest.raises(SystemExit):
        main(["grok", "phase-diagram", str(out), "--table"])
    table = capsys.readouterr().out.splitlines()
    assert table[0].endswith("| Confusion | Diverged | cells |") and table[3].endswith("| 0 | 2 | 2 |")
    with pytest.raises(SystemExit) as exc:
        main(["grok", "phase-diagram", str(out), "--no-dynamics"])
    assert exc.value.code == 0
    counts = json.loads((out / "plots" / "phase_counts.json").read_text())["counts"]
    assert counts["lr=1e+30"] == {"Diverged": 2}


@pytest.mark.parametrize("args, words", [
    (["--grid", "alpha=0.5", "--set", "stepz=3"], "stepz"),
    (["--grid", "alpha=0.5", "--set", "xi=1.5"], "xi"),
    (["--grid", "alpha=", "--set", "p=7"], "empty grid"),
    (["--preset", "nope"], "preset"),
    (["--grid", "alpha=0.5", "--backend", "slurm"], "backend"),
    (["--set", "p=23", "--grid", "p=23,29"], "--set p=23 names it too"),  # one of the two was silently dropped
    (["--grid", "alpha=0.3,0.5", "--grid", "alpha=0.4"], "one --set or --grid per key"),
    (["--grid", "alpha=0.5", "--set", "p=23", "--set", "p=29"], "--set p: got 'p=29'"),
    (["--grid", "alpha=0.3:0.7"], "start:stop:num (three parts"),
    (["--set", "p=7"], "error: grid: got None; allowed: at least one --grid"),
])
def test_cli_bad_input_is_one_line_exit_2(tmp_path, capsys, args, words):
    from forgetlab.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["grok", "sweep", "--out", str(tmp_path / "x"), "--quiet", *args])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err and words in err
    assert not (tmp_path / "x").exists()


def test_phase_diagram_of_empty_folder_is_refused(tmp_path):
    from forgetlab.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["grok", "phase-diagram", str(tmp_path)])
    assert exc.value.code == 2


def test_majority_and_agreement():
    assert majority_phase(["Coexistence", "Memorization", "Coexistence"]) == ("Coexistence", 2 / 3)
    assert majority_phase(["Memorization", "Coexistence"])[0] == "Coexistence"  # tie -> earlier phase
    recs = [{"config": {"alpha": 0.5, "xi": 0.1, "wd": 0.0, "seed": s}, "summary": {"phase": ph}}
            for s, ph in enumerate(["Coexistence", "Coexistence", "Confusion"])]
    grid = phase_grids(recs, ["wd"])[(0.0,)]
    assert grid["cells"][(0.5, 0.1)] == ("Coexistence", 2 / 3, 3)


def test_plots_with_seeds(tmp_path):
    spec = build_spec(grid=["alpha=0.5,0.8", "xi=0.1,0.4", "seed=1,2,3"], fixed=FIXED,
                      config_cls=load_trainer().TrainConfig)
    run_sweep(spec, tmp_path / "s", progress=False)
    paths = plot_phase_diagram(tmp_path / "s")
    assert [p.name for p in paths] == ["phase_all_runs.png", "phase_diagram.png"]
    assert plot_dynamics(tmp_path / "s") == []  # no histories kept


@pytest.mark.ray
def test_ray_backend_equals_local(tmp_path):
    pytest.importorskip("ray")
    spec = small_spec()
    local = run_sweep(spec, tmp_path / "local", progress=False)
    ray_res = run_sweep(spec, tmp_path / "ray", backend="ray", workers=2, progress=False)
    assert ray_res.n_trained == 8 and ray_res.n_batches == local.n_batches == 3
    assert comparable(ray_res.results_csv) == comparable(local.results_csv)


def test_ray_missing_or_unreachable_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ForgetlabError, match="Ray is not installed"):
        run_sweep(small_spec(), tmp_path / "a", backend="ray", progress=False)


def test_ray_unreachable_address_fails_fast(tmp_path, monkeypatch):
    pytest.importorskip("ray")
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:1")
    with pytest.raises(ForgetlabError, match=r"cannot reach the Ray cluster at RAY_ADDRESS=127\.0\.0\.1:1"):
        run_sweep(small_spec(), tmp_path / "a", backend="ray", progress=False)


def test_ray_init_leaves_our_signal_handlers_in_place(monkeypatch):
    """ray.init installs its own SIGTERM handler, which exits without the clean-up (no 'error: terminated',
    no exit 143); the handlers in force before it are put back after it."""
    import signal
    from types import SimpleNamespace

    from forgetlab.grok.sweep.backends import _ray_connect

    def ours(signum, frame):  # pragma: no cover - never delivered
        raise KeyboardInterrupt

    def init(**kwargs):  # what Ray's driver set-up does to the handlers
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        calls.append(kwargs)

    calls = []
    fake = SimpleNamespace(is_initialized=lambda: False, init=init)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr("forgetlab.grok.sweep.backends._running_cluster", lambda ray: None)
    before_int = signal.getsignal(signal.SIGINT)
    previous = signal.signal(signal.SIGTERM, ours)
    try:
        assert _ray_connect(fake, 2) is True and calls[0]["num_cpus"] == 2
        assert signal.getsignal(signal.SIGTERM) is ours and signal.getsignal(signal.SIGINT) is before_int
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, before_int)
