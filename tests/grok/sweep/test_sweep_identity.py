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
    for later in (dict(init_scale=0.5), dict(batchnorm=True, batchnorm_placement="pre")):
        base = TrainConfig(**{k: v for k, v in later.items() if k == "batchnorm"})
        assert set(later) <= set(config_dict(TrainConfig(**later))) and run_id(TrainConfig(**later)) != run_id(base)
        assert not set(later) - {"batchnorm"} & set(config_dict(base))


def test_a_grid_over_a_later_field_that_includes_its_default_draws_and_tabulates(tmp_path, capsys):
    """Runs at init_scale 1 store no init_scale (their ids stay the old ones); the records read back carry the
    default, so the panels and the table of a grid over 0.5 and 1 work (they raised KeyError/TypeError)."""
    import json

    import pytest

    from forgetlab.cli import main

    out = tmp_path / "s"
    sets = [a for f in ("p=7", "width=4", "steps=2", "log_every=1") for a in ("--set", f)]
    grid = [a for g in ("init_scale=0.5,1", "alpha=0.4,0.8") for a in ("--grid", g)]
    for argv in (["grok", "sweep", "--out", str(out), "--quiet", *sets, *grid], ["grok", "phase-diagram", str(out)],
                 ["grok", "phase-diagram", str(out), "--table"]):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 0, capsys.readouterr().err
    table = capsys.readouterr().out.splitlines()[-2:]
    assert [row.split(" | ")[0] for row in table] == ["| init_scale=0.5", "| init_scale=1"]
    assert all(r["config"]["init_scale"] in (0.5, 1.0) for r in SweepStore(out).records())
    assert sum("init_scale" not in json.loads(f.read_text())["config"] for f in (out / "runs").glob("*.json")) == 2


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


def test_records_take_the_defaults_of_the_sweeps_own_trainer_and_another_trainer_is_refused(tmp_path, monkeypatch):
    """A sweep's manifest names its trainer: records read back fill a field left out at its default with that
    trainer's default (here 2.0, not the grok trainer's 1.0), and resuming the folder with another trainer is
    refused naming the field."""
    import dataclasses
    import sys
    import types

    import pytest

    from forgetlab.errors import BadInput

    @dataclasses.dataclass(frozen=True)
    class AltConfig:
        alpha: float = 0.5
        init_scale: float = dataclasses.field(default=2.0, metadata={"identity": "when_set"})

    monkeypatch.setitem(sys.modules, "alt_trainer", types.SimpleNamespace(
        TrainConfig=AltConfig, batch_key=lambda c: (), estimate_batch_bytes=lambda cs: 1, train_many=None))
    store = SweepStore.open(tmp_path / "s", {"fixed": {}}, "h", 2, trainer="alt_trainer")
    for rid, config in (("a", {"alpha": 0.5, "init_scale": 0.5}), ("b", {"alpha": 0.5})):
        store.write_run({"run_id": rid, "config": config, "summary": {"phase": "Confusion"}})
    assert [r["config"]["init_scale"] for r in store.records()] == [0.5, 2.0]
    assert store.trainer() == "alt_trainer"
    with pytest.raises(BadInput, match=r"trainer.*alt_trainer"):
        SweepStore.open(tmp_path / "s", {"fixed": {}}, "h", 2)
    SweepStore.open(tmp_path / "s", {"fixed": {}}, "h", 2, trainer="alt_trainer")  # the same trainer resumes
    monkeypatch.delitem(sys.modules, "alt_trainer")  # read where the trainer is not importable: grok's defaults
    assert [r["config"]["init_scale"] for r in store.records()] == [0.5, 1.0]


def test_runs_stored_before_the_diverged_label_read_back_as_diverged(tmp_path):
    """A run stored with a NaN (null) weight norm under a paper phase went NaN; it reads back as Diverged, so a
    resumed sweep's table and panels do not mix the two labels; a finite run keeps its phase."""
    store = SweepStore.open(tmp_path / "s", {"fixed": {}}, "h", 2)
    store.write_run({"run_id": "a", "config": {"alpha": 0.5}, "summary": {"phase": "Confusion", "weight_norm": None}})
    store.write_run({"run_id": "b", "config": {"alpha": 0.5}, "summary": {"phase": "Confusion", "weight_norm": 2.0}})
    assert [r["summary"]["phase"] for r in store.records()] == ["Diverged", "Confusion"]
