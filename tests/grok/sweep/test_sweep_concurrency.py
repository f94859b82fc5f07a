"""Sweeps sharing a folder: an atomic open, temp-file cleanup that spares live writers, claims that expire by
lease (not by host name), and damaged run records detected, reported and retrained."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from test_sweep_store import make_spec, sweep

from forgetlab.grok.sweep.claims import Claims
from forgetlab.grok.sweep.store import MANIFEST, SweepStore, read_results_csv
from forgetlab.runs import host_tag


def _dead_pid() -> int:
    return int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True).stdout)


def test_open_ignores_another_process_manifest_in_flight(tmp_path):
    """What a second process saw in the race: the first one's temp manifest (and nothing else) -> no refusal."""
    root = tmp_path / "s"
    root.mkdir()
    (root / f".{MANIFEST}.{host_tag()}-{os.getpid() + 1}-0123abcd.tmp").write_text("{")
    SweepStore.open(root, {"fixed": {}}, "h", 1)
    assert json.loads((root / MANIFEST).read_text())["spec_hash"] == "h"


def test_open_looks_for_the_manifest_again_before_refusing(tmp_path):
    """The first process linked its manifest and created runs/ between our look and our listing."""
    root = tmp_path / "s"
    first = SweepStore.open(root, {"fixed": {}}, "h", 1)
    store = SweepStore(root)
    store._create_manifest({"fixed": {}}, "h", 1, "forgetlab.grok.train")  # sees runs/ and claims/, then finds the manifest: no error
    assert first.manifest() == store.manifest()


def test_open_writes_the_manifest_before_anything_else(tmp_path, monkeypatch):
    """A second process looking at the folder while the first opens it sees nothing of the first's but (a temp
    file of) the manifest: ``runs/`` and ``claims/`` come after it, so they can never make the folder look
    foreign."""
    root = tmp_path / "s"
    seen = []
    real = SweepStore._create_manifest

    def spy(self, *args):
        seen.append(sorted(p.name for p in root.iterdir()))
        real(self, *args)

    monkeypatch.setattr(SweepStore, "_create_manifest", spy)
    SweepStore.open(root, {"fixed": {}}, "h", 1)
    assert seen == [[]] and {p.name for p in root.iterdir()} == {MANIFEST, "runs", "claims"}


def test_temp_cleanup_spares_live_writers_and_takes_dead_ones(tmp_path):
    store = SweepStore.open(tmp_path / "s", {"fixed": {}}, "h", 1)
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        mine = store.runs_dir / f".x.json.{host_tag()}-{live.pid}-0123abcd.tmp"  # another process's write
        dead = store.runs_dir / f".y.json.{host_tag()}-{_dead_pid()}-0123abcd.tmp"
        remote_fresh = store.runs_dir / ".z.json.abcdef-12-0123abcd.tmp"
        remote_old = store.runs_dir / ".w.json.abcdef-13-0123abcd.tmp"
        for p in (mine, dead, remote_fresh, remote_old):
            p.write_text("{half")
        os.utime(remote_old, (time.time() - 2 * 3600, time.time() - 2 * 3600))
        assert store.clean_temp_files() == 2
        assert mine.exists() and remote_fresh.exists() and not dead.exists() and not remote_old.exists()
    finally:
        live.kill()
        live.wait()


def test_a_claim_from_another_host_expires_by_lease_and_a_heartbeat_keeps_ours(tmp_path):
    claims = Claims(tmp_path, lease_s=0.4)
    claims.path("b").write_text(json.dumps({"pid": 1, "host": "another-machine", "lease_s": 0.4}))
    assert not claims.is_stale("b") and not claims.claim("b")  # a live lease is respected
    time.sleep(0.6)
    assert claims.is_stale("b") and claims.claim("b")  # not renewed for a lease: taken over
    assert claims.owner("b")["pid"] == os.getpid()
    # our own claim, seen from another host: kept alive by the heartbeat while we hold it
    rec = claims.owner("b")
    with claims.holding(["b"]):
        claims.path("b").write_text(json.dumps({**rec, "host": "another-machine"}))
        time.sleep(0.8)
        assert not claims.is_stale("b")
    time.sleep(0.6)
    assert claims.is_stale("b")


def test_a_sweep_does_not_wait_a_day_for_a_dead_remote_claim(tmp_path):
    spec = make_spec()
    res = sweep(spec, tmp_path / "s")
    store = SweepStore(tmp_path / "s")
    rid = sorted(store.finished())[0]
    store.run_path(rid).unlink()
    # every batch claimed by a process on another machine that died 10 minutes ago
    from forgetlab.grok.sweep.run import plan_batches
    from forgetlab.grok.sweep.spec import load_trainer, make_configs

    mod = load_trainer("sweep_fake_trainer")
    jobs = plan_batches(spec, make_configs(spec, mod), mod, "sweep_fake_trainer", 1 << 40)
    old = time.time() - 600
    for job in jobs:
        path = store.claims.path(job.batch_id)
        path.write_text(json.dumps({"pid": 4242, "host": "dead-machine", "lease_s": 120}))
        os.utime(path, (old, old))
    t0 = time.monotonic()
    again = sweep(spec, tmp_path / "s")
    assert again.n_trained == 1 and time.monotonic() - t0 < 60
    assert again.results_csv.read_text() == res.results_csv.read_text()


def test_a_damaged_run_record_is_reported_set_aside_and_retrained(tmp_path, capsys):
    spec = make_spec()
    full = sweep(spec, tmp_path / "s").results_csv.read_text()
    runs = sorted((tmp_path / "s" / "runs").glob("*.json"))
    runs[0].write_text(runs[0].read_text()[:40])  # truncated
    runs[1].write_text(json.dumps({"run_id": "someone-else"}))
    capsys.readouterr()
    res = sweep(spec, tmp_path / "s")
    err = capsys.readouterr().err
    assert res.n_damaged == 2 and res.n_trained == 2
    assert runs[0].name in err and runs[1].name in err and "trained again" in err
    assert res.results_csv.read_text() == full and len(read_results_csv(res.results_csv)) == 12
    assert len(list((tmp_path / "s" / "runs").glob(".*.damaged-*"))) == 2  # kept for inspection
