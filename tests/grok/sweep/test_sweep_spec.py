"""Sweep specs: expansion, identity, and every bad input naming key and line."""

from __future__ import annotations

import pytest
from sweep_fake_trainer import TrainConfig

from forgetlab.errors import BadInput, ForgetlabError
from forgetlab.grok.sweep.spec import (
    apply_overrides,
    build_spec,
    find_line,
    load_spec,
    make_configs,
    run_id,
    spec_from_dict,
)

SPEC = """\
[sweep]
name = "t"
panel = ["wd"]

[fixed]
p = 7
steps = 10

[grid]
alpha = {start = 0.1, stop = 0.9, num = 5}
xi = [0.1, 0.5]
wd = [0.0, 5.0]
"""


def write(tmp_path, text):
    path = tmp_path / "spec.toml"
    path.write_text(text)
    return path


def test_expand_grid_and_zip(tmp_path):
    spec = load_spec(write(tmp_path, SPEC + "\n[zip]\nbatch_size = [8, 0]\nlr = [0.001, 0.01]\n"),
                     config_cls=TrainConfig)
    runs = spec.expand()
    assert len(runs) == spec.n_runs() == 5 * 2 * 2 * 2
    assert sorted({r["alpha"] for r in runs}) == [0.1, 0.3, 0.5, 0.7, 0.9]  # linspace noise rounded away
    assert {(r["batch_size"], r["lr"]) for r in runs} == {(8, 0.001), (0, 0.01)}  # zipped, not crossed
    assert spec.swept_keys() == ["alpha", "xi", "wd", "batch_size", "lr"]
    assert spec.panel_keys() == ["wd"]


def test_run_identity_is_stable_and_full(tmp_path):
    spec = load_spec(write(tmp_path, SPEC), config_cls=TrainConfig)
    a = [run_id(c) for c in make_configs(spec, __import__("sweep_fake_trainer"))]
    b = [run_id(c) for c in make_configs(spec, __import__("sweep_fake_trainer"))]
    assert a == b and len(set(a)) == len(a)
    # defaults count: the same explicit value as the default gives the same id
    assert run_id(TrainConfig(lr=0.01)) == run_id(TrainConfig())
    assert run_id(TrainConfig(seed=1)) != run_id(TrainConfig(seed=0))


def test_spec_hash_changes_with_results_not_with_batching(tmp_path):
    s1 = load_spec(write(tmp_path, SPEC), config_cls=TrainConfig)
    s2 = load_spec(write(tmp_path, SPEC.replace('name = "t"', 'name = "t"\nmax_batch_runs = 3')),
                   config_cls=TrainConfig)
    s3 = load_spec(write(tmp_path, SPEC.replace("steps = 10", "steps = 11")), config_cls=TrainConfig)
    assert s1.spec_hash() == s2.spec_hash() != s3.spec_hash()


@pytest.mark.parametrize("edit, field, line", [
    (("steps = 10", "stepz = 10"), "fixed.stepz", 7),           # unknown key
    (("steps = 10", 'steps = "ten"'), "fixed.steps", 7),        # wrong type
    (("wd = [0.0, 5.0]", "wd = []"), "grid.wd", 12),             # empty grid
    (("wd = [0.0, 5.0]", "wd = [0.0, true]"), "grid.wd", 12),    # wrong type inside a list
    (('name = "t"', 'name = "t"\nbatch = 3'), "sweep.batch", 3),  # unknown setting
    (("[grid]", "[grids]"), "grids", 9),                          # unknown table
])
def test_bad_spec_names_key_and_line(tmp_path, edit, field, line):
    path = write(tmp_path, SPEC.replace(*edit))
    with pytest.raises(BadInput) as exc:
        load_spec(path, config_cls=TrainConfig)
    assert field in exc.value.field
    assert f"{path}:{line}" in exc.value.field


def test_value_rejected_by_trainer_names_spec(tmp_path):
    spec = load_spec(write(tmp_path, SPEC.replace("xi = [0.1, 0.5]", "xi = [0.1, 1.5]")), config_cls=TrainConfig)
    with pytest.raises(BadInput, match="xi"):
        make_configs(spec, __import__("sweep_fake_trainer"))


def test_too_many_runs_and_broken_toml(tmp_path):
    with pytest.raises(BadInput, match="max_runs"):
        load_spec(write(tmp_path, SPEC.replace('name = "t"', 'name = "t"\nmax_runs = 10')),
                  config_cls=TrainConfig)
    with pytest.raises(ForgetlabError, match="not valid TOML"):
        load_spec(write(tmp_path, "[grid\n"), config_cls=TrainConfig)


def test_ragged_zip_and_fixed_and_swept():
    with pytest.raises(BadInput, match="one common length"):
        spec_from_dict({"zip": {"lr": [0.1, 0.2], "steps": [1]}}, config_cls=TrainConfig)
    with pytest.raises(BadInput, match="either fixed or swept"):
        spec_from_dict({"fixed": {"wd": 1.0}, "grid": {"wd": [1.0, 2.0]}}, config_cls=TrainConfig)


def test_cli_overrides(tmp_path):
    path = write(tmp_path, SPEC)
    spec = build_spec(spec_path=path, fixed=["wd=5"], grid=["alpha=0.2:0.4:3", "seed=0,1"],
                      config_cls=TrainConfig)
    assert spec.fixed["wd"] == 5 and "wd" not in spec.grid
    assert spec.grid["alpha"] == [0.2, 0.3, 0.4] and spec.grid["seed"] == [0, 1]
    cli_only = build_spec(grid=["alpha=0.5", "xi=0.1,0.2"], fixed=["p=7"], config_cls=TrainConfig)
    assert cli_only.n_runs() == 2
    with pytest.raises(BadInput, match="--grid"):
        apply_overrides({}, grid=["alpha"])
    with pytest.raises(BadInput, match="spec"):
        build_spec(config_cls=TrainConfig)
    with pytest.raises(BadInput, match="preset"):
        build_spec(preset="nope", config_cls=TrainConfig)


def test_find_line():
    text = "[a]\nx = 1\n[b]\n  x = 2\n"
    assert find_line(text, "a", "x") == 2 and find_line(text, "b", "x") == 4 and find_line(text, "c", "x") is None


def test_a_range_over_an_integer_field_gives_integers():
    """``--grid seed=1:3:3`` is seeds 1, 2, 3 (it was refused: 1.0 is not an int); a range that is not whole on
    an integer field is still refused, and float fields keep floats."""
    from forgetlab.errors import BadInput
    from forgetlab.grok.config import TrainConfig

    spec = build_spec(grid=["seed=1:3:3", "wd=0:10:3"], fixed=["p=7"], config_cls=TrainConfig)
    assert spec.name == "sweep"  # a spec from the command line alone (its progress bar said "<cli>")
    assert spec.grid["seed"] == [1, 2, 3] and all(type(v) is int for v in spec.grid["seed"])
    assert spec.grid["wd"] == [0.0, 5.0, 10.0] and all(type(v) is float for v in spec.grid["wd"])
    with pytest.raises(BadInput, match=r"^--grid seed: got 1.5"):
        build_spec(grid=["seed=1:2:3"], config_cls=TrainConfig)


@pytest.mark.parametrize("kw, message", [
    ({"grid": ["foo=1,2"]}, "--grid foo: got 'foo'; allowed: a TrainConfig field"),
    ({"preset": "wd_p47", "grid": ["foo=1,2"]}, "--grid foo: got 'foo'; allowed: a TrainConfig field"),
    ({"preset": "wd_p47", "fixed": ["steps=1.5"]}, "--set steps: got 1.5; allowed: a value of type int"),
    ({"grid": ["wd=a,b"]}, "--grid wd: got 'a'; allowed: a value of type float"),
    ({"grid": ["wd="]}, "--grid wd: got []; allowed: a non-empty list"),
    ({"grid": ["alpha=0.3,,0.5"]}, "--grid alpha: got '0.3,,0.5'; allowed: a list a,b,c without an empty element"),
    ({"preset": "wd_p47", "grid": ["wd=0:1:0"]}, "--grid wd.num: got 0; allowed: an integer >= 1"),
])
def test_a_bad_command_line_entry_is_named_by_its_option_not_by_the_preset(kw, message):
    """An entry from --set/--grid is named by the option (it was '<cli>: grid.foo: got 1', or the preset's file
    for a key the preset does not have); an unknown key is the thing reported, not its first value."""
    from forgetlab.grok.config import TrainConfig

    with pytest.raises(BadInput) as exc:
        build_spec(config_cls=TrainConfig, **kw)
    assert str(exc.value).startswith(message)


@pytest.mark.parametrize("preset, fixed, grid, label", [
    (None, ["p=1"], ["wd=0,1"], "--set p"), (None, [], ["p=1,5"], "--grid p"),
    ("wd_p47", ["p=1"], [], "--set p"), ("wd_p47", [], ["p=1,5"], "--grid p"),
])
def test_a_value_the_trainer_refuses_is_named_by_its_option(preset, fixed, grid, label):
    from forgetlab.grok import train
    from forgetlab.grok.sweep.spec import make_configs

    spec = build_spec(preset=preset, fixed=fixed, grid=grid, config_cls=train.TrainConfig)
    with pytest.raises(BadInput) as exc:
        make_configs(spec, train)
    assert str(exc.value).startswith(f"{label}: got 1; allowed: an integer >= 3")
