"""One process per core (``workers=0``) trains the same batches as in-process and gives bit-identical results;
negative worker counts are refused with the allowed values."""

from __future__ import annotations

import dataclasses

import pytest

from forgetlab.errors import BadInput
from forgetlab.grok.sweep.backends import local_workers
from forgetlab.grok.sweep.run import run_sweep
from forgetlab.grok.sweep.spec import build_spec, load_trainer
from forgetlab.grok.sweep.store import read_results_csv
from forgetlab.hardware import usable_cores


def _rows(path):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in read_results_csv(path)]


def test_one_process_per_core_equals_in_process_bit_for_bit(tmp_path):
    spec = build_spec(grid=["alpha=0.4,0.8", "xi=0.1,0.5"], fixed=["p=7", "width=12", "steps=30"],
                      config_cls=load_trainer().TrainConfig)
    spec = dataclasses.replace(spec, max_batch_runs=2, batching="max")
    one = run_sweep(spec, tmp_path / "one", workers=1, progress=False)
    auto = run_sweep(spec, tmp_path / "auto", workers=0, progress=False)
    assert one.n_batches == auto.n_batches == 2 and auto.n_trained == 4
    assert _rows(one.results_csv) == _rows(auto.results_csv)


def test_worker_counts():
    assert local_workers(0) == usable_cores() >= 1 and local_workers(3) == 3
    with pytest.raises(BadInput, match="workers"):
        local_workers(-1)


def test_threads_reach_this_process_or_each_worker_and_bad_counts_are_refused(tmp_path, monkeypatch):
    """``--threads``: with one worker this process trains with that many torch threads; with several, each
    worker's batch gets it (the pool is swapped for threads here to see the argument); refused below 0, above
    the cap and with Ray, before any work."""
    import concurrent.futures

    import torch

    import forgetlab.grok.sweep.backends as backends

    spec = build_spec(grid=["alpha=0.4,0.8"], fixed=["p=7", "width=4", "steps=2"],
                      config_cls=load_trainer().TrainConfig)
    spec = dataclasses.replace(spec, max_batch_runs=1, batching="max")
    before = torch.get_num_threads()
    try:
        run_sweep(spec, tmp_path / "one", workers=1, threads=1, progress=False)
        assert torch.get_num_threads() == 1
        seen = []
        real = backends.execute_batch

        class Pool(concurrent.futures.ThreadPoolExecutor):
            def __init__(self, max_workers, mp_context=None, initializer=None, initargs=()):
                super().__init__(max_workers=max_workers)

        monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", Pool)
        monkeypatch.setattr(backends, "execute_batch", lambda job, threads=None: seen.append(threads) or real(job))
        res = run_sweep(spec, tmp_path / "two", workers=2, threads=3, progress=False)
        assert res.n_trained == 2 and seen == [3, 3]
        one_run = dataclasses.replace(spec, grid={**spec.grid, "alpha": [0.4]})  # one batch: trained here
        run_sweep(one_run, tmp_path / "three", workers=2, threads=2, progress=False)
        assert seen == [3, 3, 2]  # it was trained with this process's threads, --threads dropped
    finally:
        torch.set_num_threads(before)
    for kw, allowed in ((dict(threads=-1), "an integer in"), (dict(threads=2000), "an integer in"),
                        (dict(threads=-1, workers=2), "an integer in"),  # was a worker's traceback, exit 1
                        (dict(threads=1, backend="ray"), "Ray")):
        with pytest.raises(BadInput, match=allowed) as exc:
            run_sweep(spec, tmp_path / "bad", progress=False, **kw)
        assert exc.value.field == "threads" and not (tmp_path / "bad").exists()
