"""Run identity across TrainConfig versions: fields added later (depth, layernorm) leave every earlier run's id
and stored form unchanged, so stores written before them still resume without retraining."""

from __future__ import annotations

from forgetlab.grok.config import TrainConfig
from forgetlab.grok.sweep.run import run_sweep
from forgetlab.grok.sweep.spec import config_dict, run_id, spec_from_dict
from forgetlab.grok.sweep.store import SweepStore

# ids computed before depth and layernorm existed (commit 4eb1192)
OLD_IDS = {TrainConfig(): "7a5b587513548344",
           TrainConfig(p=47, wd=5.0, alpha=0.9, xi=0.1, steps=2000, log_every=100): "6b37bbeeb7f7ed2f"}


def test_ids_and_stored_form_of_earlier_runs_are_unchanged():
    for cfg, rid in OLD_IDS.items():
        assert run_id(cfg) == rid
        assert "depth" not in config_dict(cfg) and "layernorm" not in config_dict(cfg)
    deep = TrainConfig(depth=3, act="relu")
    assert config_dict(deep)["depth"] == 3 and run_id(deep) != run_id(TrainConfig(act="relu"))
    assert run_id(TrainConfig(model="transformer", layernorm=True)) != run_id(TrainConfig(model="transformer"))


def test_a_store_written_before_the_new_fields_resumes_without_training(tmp_path):
    data = {"sweep": {"name": "old"}, "fixed": {"p": 11, "width": 8, "steps": 3, "log_every": 3},
            "grid": {"alpha": [0.5], "xi": [0.1, 0.3]}}
    spec = spec_from_dict(data, config_cls=TrainConfig)
    store = SweepStore.open(tmp_path / "s", spec.to_dict(), spec.spec_hash(), 2)
    old_fields = [f for f in config_dict(TrainConfig()) if f not in ("depth", "layernorm")]
    for d in spec.expand():  # records as the earlier code wrote them: every field but the new ones
        cfg = TrainConfig(**d)
        record = {k: v for k, v in config_dict(cfg).items() if k in old_fields}
        store.write_run({"run_id": run_id(cfg), "config": record, "summary": {"phase": "Memorization"}})
    res = run_sweep(spec, tmp_path / "s", progress=False)
    assert (res.n_runs, res.n_skipped, res.n_trained) == (2, 2, 0)
