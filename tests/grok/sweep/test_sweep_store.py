"""The sweep store and driver with a stand-in trainer: resume, manifest, claims, memory split, CSV."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from forgetlab.errors import BadInput
from forgetlab.grok.sweep.run import run_sweep
from forgetlab.grok.sweep.spec import spec_from_dict
from forgetlab.grok.sweep.store import SweepStore, read_results_csv, results_csv_text
from forgetlab.runs import host_tag, load_tensors

FAKE = "sweep_fake_trainer"


def make_spec(**settings):
    from sweep_fake_trainer import TrainConfig

    data = {"sweep": {"name": "t", "max_batch_runs": 4, "batching": "max", **settings},
            "grid": {"alpha": [0.3, 0.6], "xi": [0.1, 0.4, 0.7], "wd": [0.0, 5.0]}, "fixed": {"steps": 10}}
    return spec_from_dict(data, config_cls=TrainConfig)


def sweep(spec, out, **kw):
    return run_sweep(spec, out, trainer=FAKE, progress=False, **kw)


def test_sweep_writes_every_run_once_and_resume_skips(tmp_path):
    spec = make_spec()
    res = sweep(spec, tmp_path / "s")
    assert (res.n_runs, res.n_skipped, res.n_trained, res.n_batches) == (12, 0, 12, 3)
    rows = read_results_csv(res.results_csv)
    assert len(rows) == 12 and len({r["run_id"] for r in rows}) == 12
    assert [(r["wd"], r["alpha"], r["xi"]) for r in rows] == sorted(
        (r["wd"], r["alpha"], r["xi"]) for r in rows)  # panel key first, then alpha, xi
    for col in ("alpha", "xi", "wd", "seed", "train_acc", "test_acc", "corrupted_acc", "clean_acc",
                "inversion_acc", "mean_ipr", "weight_norm", "phase", "seconds", "ipr_median"):
        assert rows[0][col] != ""
    again = sweep(spec, tmp_path / "s")
    assert (again.n_skipped, again.n_trained) == (12, 0)
    assert again.results_csv.read_text() == res.results_csv.read_text()
    assert not list((tmp_path / "s" / "claims").iterdir())


def test_lost_runs_are_retrained_and_identical(tmp_path):
    spec = make_spec()
    full = sweep(spec, tmp_path / "s").results_csv.read_text()
    runs = sorted((tmp_path / "s" / "runs").glob("*.json"))
    for p in runs[::3]:
        p.unlink()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    # a killed writer's temp file (its pid is gone)
    (tmp_path / "s" / "runs" / f".x.json.{host_tag()}-{dead}-0123abcd.tmp").write_text("{half")
    res = sweep(spec, tmp_path / "s")
    assert res.n_trained == len(runs[::3]) and res.n_skipped == 12 - len(runs[::3])
    assert res.results_csv.read_text() == full
    assert not list((tmp_path / "s" / "runs").glob(".*"))  # temp files cleaned


def test_other_sweep_in_folder_is_refused_naming_the_difference(tmp_path):
    sweep(make_spec(), tmp_path / "s")
    from sweep_fake_trainer import TrainConfig

    other = spec_from_dict({"grid": {"alpha": [0.3, 0.6], "xi": [0.1, 0.4, 0.7], "wd": [0.0, 15.0]},
                            "fixed": {"steps": 10}}, config_cls=TrainConfig)
    with pytest.raises(BadInput, match=r"grid\.wd: \[0\.0, 5\.0\] -> \[0\.0, 15\.0\]"):
        sweep(other, tmp_path / "s")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("x")
    with pytest.raises(BadInput, match=r"no sweep\.json"):
        sweep(make_spec(), tmp_path / "junk")


def test_memory_budget_splits_batches_or_refuses(tmp_path):
    spec = make_spec()
    per_run = 4 * 7 * 7 * 8
    res = sweep(spec, tmp_path / "a", max_memory_gb=2.5 * per_run / 2**30)
    assert res.n_batches == 6  # 2 runs per batch fit
    with pytest.raises(BadInput, match=r"max_memory.*at least"):
        sweep(spec, tmp_path / "b", max_memory_gb=0.5 * per_run / 2**30)
    assert not (tmp_path / "b").exists()  # refused before anything was written
    assert res.results_csv.read_text() == sweep(spec, tmp_path / "c").results_csv.read_text()


def test_history_and_weights_are_stored(tmp_path):
    res = sweep(make_spec(keep_history=True, save_weights=True), tmp_path / "s")
    rec = json.loads(next((tmp_path / "s" / "runs").glob("*.json")).read_text())
    assert [h["step"] for h in rec["history"]] == [0, 5, 10]
    assert load_tensors(tmp_path / "s" / "weights" / f"{rec['run_id']}.safetensors")["U"].shape == (8, 7)
    assert res.n_trained == 12


def test_stale_claim_is_taken_live_claim_is_respected(tmp_path):
    store = SweepStore.open(tmp_path / "s", {"fixed": {}}, "h", 1)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    (store.claims_dir / "b1.json").write_text(json.dumps({"pid": int(dead), "host": os.uname().nodename}))
    assert store.claim_is_stale("b1") and store.claim("b1")
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (store.claims_dir / "b2.json").write_text(json.dumps({"pid": live.pid, "host": os.uname().nodename}))
        assert not store.claim("b2")
        assert sorted(store.live_claims()) == ["b1", "b2"]
    finally:
        live.kill()
        live.wait()
    assert store.claim("b2")


def test_csv_is_deterministic_under_record_order():
    recs = [{"run_id": f"r{i}", "config": {"alpha": a, "xi": 0.1}, "summary": {"phase": "Confusion"}}
            for i, a in enumerate([0.5, 0.1, 0.3])]
    assert results_csv_text(recs, ["alpha"]) == results_csv_text(recs[::-1], ["alpha"])
    assert results_csv_text(recs, ["alpha"]).splitlines()[1].startswith("r1,0.1")


def test_two_local_workers_equal_one(tmp_path):
    spec = make_spec()
    one = sweep(spec, tmp_path / "one").results_csv.read_text()
    two = sweep(spec, tmp_path / "two", workers=2).results_csv.read_text()
    assert one == two


def test_two_processes_on_one_folder_share_work_without_duplicates(tmp_path):
    spec_path = tmp_path / "spec.toml"
    spec_path.write_text('[sweep]\nmax_batch_runs = 2\n[fixed]\nsteps = 150\n'
                         '[grid]\nalpha = [0.3, 0.6]\nxi = [0.1, 0.4, 0.7]\nwd = [0.0, 5.0]\n')
    here = os.path.dirname(__file__)
    env = {**os.environ, "PYTHONPATH": here + os.pathsep + os.environ.get("PYTHONPATH", "")}
    cmd = [sys.executable, "-m", "forgetlab.cli", "grok", "sweep", "--spec", str(spec_path), "--out",
           str(tmp_path / "s"), "--quiet", "--trainer", FAKE]
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1] for o in outs]
    files = list((tmp_path / "s" / "runs").glob("*.json"))
    assert len(files) == 12 and len(read_results_csv(tmp_path / "s" / "results.csv")) == 12
    from sweep_fake_trainer import TrainConfig

    from forgetlab.grok.sweep.spec import load_spec

    ref = sweep(load_spec(spec_path, config_cls=TrainConfig), tmp_path / "ref")
    assert (tmp_path / "s" / "results.csv").read_text() == ref.results_csv.read_text()
    assert not list((tmp_path / "s" / "claims").iterdir())


def test_a_sweep_store_follows_the_umask(tmp_path):
    old = os.umask(0o002)
    try:
        sweep(make_spec(), tmp_path / "s")
    finally:
        os.umask(old)
    for p in [tmp_path / "s", *(tmp_path / "s").rglob("*")]:
        want = 0o775 if p.is_dir() else 0o664
        assert p.stat().st_mode & 0o777 == want, p


def test_results_csv_columns_are_unique():
    recs = [{"run_id": f"r{i}", "config": {"alpha": 0.5, "steps": 10, "seed": i},
             "summary": {"train_acc": 1.0, "steps": 10, "phase": "Coexistence"}, "ipr": {}} for i in range(2)]
    header = results_csv_text(recs).splitlines()[0].split(",")
    assert len(header) == len(set(header)) and header.count("steps") == 1
    recs[1]["summary"]["steps"] = 7  # a run that stopped early: both numbers kept, apart
    header = results_csv_text(recs).splitlines()[0].split(",")
    assert len(header) == len(set(header)) and "summary_steps" in header


def test_results_csv_reads_back_as_records_with_bools_and_diverged_and_a_foreign_csv_is_refused(tmp_path):
    """The CSV writes bools as True/False (they read back as strings, sorting panels as text); a row with no
    weight norm under a paper phase is Diverged; a CSV without the grok columns, or with a short row, is one
    BadInput naming results.csv (it was a ValueError/KeyError traceback)."""
    from forgetlab.errors import BadInput
    from forgetlab.grok.sweep.store import results_csv_records

    good = tmp_path / "good.csv"
    good.write_text("run_id,alpha,xi,batchnorm,wd,train_acc,weight_norm,phase\n"
                    "a,0.5,0.1,True,5.0,0.9,1.5,Coexistence\nb,0.5,0.1,False,15.0,0.1,,Confusion\n")
    recs = results_csv_records(good)
    assert [r["config"]["batchnorm"] for r in recs] == [True, False] and recs[0]["config"]["wd"] == 5.0
    assert [r["summary"]["phase"] for r in recs] == ["Coexistence", "Diverged"]
    for text in ("run_id,alpha,xi,loss,phase\na,0.5,0.1,0.3,Confusion\n",
                 "run_id,alpha,xi,train_acc,phase\na,0.5,0.1\n"):
        bad = tmp_path / "bad.csv"
        bad.write_text(text)
        with pytest.raises(BadInput) as exc:
            results_csv_records(bad)
        assert exc.value.field == "results.csv"
