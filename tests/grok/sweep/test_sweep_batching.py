"""The sweep's batch size chosen by measurement: the sizes tried, the choice, the memory bound, and the spec key."""

from __future__ import annotations

import dataclasses
import time
from types import SimpleNamespace

import pytest

from forgetlab.errors import BadInput
from forgetlab.grok.sweep.batching import candidate_sizes, measure_batch_runs
from forgetlab.grok.sweep.spec import load_spec


def test_the_probe_tries_one_two_the_largest_then_the_sizes_between():
    from forgetlab.grok.sweep.batching import probe_order

    assert probe_order([1, 2, 4, 8, 16]) == [1, 2, 16, 4, 8] and probe_order([1, 2, 3]) == [1, 2, 3]


def test_candidate_sizes_double_up_to_the_bound():
    assert candidate_sizes(64, 12) == [1, 2, 4, 8, 12]
    assert candidate_sizes(4, 100) == [1, 2, 4] and candidate_sizes(64, 1) == [1] and candidate_sizes(3, 3) == [1, 2, 3]


def _trainer(per_run_step_ms: dict[int, float], bytes_per_run: int = 1):
    """A stand-in whose batch of k runs costs ``per_run_step_ms[k] * k`` milliseconds per step."""
    def train_many(configs, keep_history=False):
        k = len(configs)
        time.sleep(configs[0].steps * per_run_step_ms[k] * k / 1000)
        return [None] * k

    return SimpleNamespace(train_many=train_many, estimate_batch_bytes=lambda cs: bytes_per_run * len(cs))


def _configs(n: int):
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class C:
        steps: int = 10
        log_every: int = 10

    return [C() for _ in range(n)]


def test_the_size_with_the_fewest_seconds_per_run_step_is_chosen(monkeypatch):
    import forgetlab.grok.sweep.batching as batching

    monkeypatch.setattr(batching, "PROBE_SHARE", 1e9)
    monkeypatch.setattr(batching, "MIN_PROBE_RUN_STEPS", 0)
    fast_at_4 = _trainer({1: 2.0, 2: 1.2, 4: 0.8, 8: 1.6})
    size, times = measure_batch_runs(fast_at_4, _configs(8), cap=64, threads=1, memory_budget=2**30)
    assert size == 4 and set(times) == {1, 2, 4, 8}  # 1, 2, the largest (8, worse), then the size between
    solo_best = _trainer({1: 1.0, 2: 2.0, 4: 2.0})
    size, times = measure_batch_runs(solo_best, _configs(4), cap=64, threads=1, memory_budget=2**30)
    assert size == 1 and set(times) == {1, 2}  # stops at the first size much worse than the best
    size, times = measure_batch_runs(fast_at_4, _configs(8), cap=64, threads=1, memory_budget=2)
    assert size == 2 and set(times) == {1, 2}  # a batch over the memory budget is never probed
    falling = _trainer({1: 2.0, 2: 1.5, 4: 1.0, 8: 0.5})
    size, times = measure_batch_runs(falling, _configs(8), cap=64, threads=1, memory_budget=2**30)
    assert size == 8 and set(times) == {1, 2, 8}  # the largest size is the best so far: the sizes between are skipped


def test_the_probe_stops_at_its_share_of_the_sweep_time(monkeypatch):
    import forgetlab.grok.sweep.batching as batching

    fast_at_4 = _trainer({1: 2.0, 2: 1.2, 4: 0.8, 8: 1.6})
    monkeypatch.setattr(batching, "MIN_PROBE_RUN_STEPS", 0)
    # 8 runs x 10 steps x 2 ms = 0.16 s one at a time; the size-1 probe alone takes longer than 10% of that
    size, times = measure_batch_runs(fast_at_4, _configs(8), cap=64, threads=1, memory_budget=2**30)
    assert size == 1 and set(times) == {1}
    slow_steps = _trainer({1: 20.0, 2: 15.0, 4: 10.0, 8: 5.0})
    mid_sweep = [dataclasses.replace(c, steps=50) for c in _configs(8)]  # 8 s one at a time: a 0.8 s budget
    size, times = measure_batch_runs(slow_steps, mid_sweep, cap=64, threads=1, memory_budget=2**30)
    assert size == 2 and set(times) == {1, 2}  # 8's probe (9 steps x 8 x 15 ms) and 4's would overrun: skipped
    long_sweep = [dataclasses.replace(c, steps=100_000) for c in _configs(8)]  # 1,600 s one at a time
    size, times = measure_batch_runs(fast_at_4, long_sweep, cap=64, threads=1, memory_budget=2**30)
    assert size == 4 and set(times) == {1, 2, 4, 8}
    monkeypatch.setattr(batching, "MIN_PROBE_RUN_STEPS", 81)  # 8 runs x 10 steps: no probe at all
    assert measure_batch_runs(fast_at_4, _configs(8), cap=64, threads=1, memory_budget=2**30) == (1, {})


def test_batching_key_in_the_spec(tmp_path):
    from sweep_fake_trainer import TrainConfig

    text = '[sweep]\nname = "b"\nbatching = "max"\n[fixed]\np = 7\n[grid]\nalpha = [0.4, 0.8]\n'
    path = tmp_path / "b.toml"
    for body, expected in ((text, "max"), (text.replace('batching = "max"\n', ""), "measured")):
        path.write_text(body)
        assert load_spec(path, config_cls=TrainConfig).batching == expected
    path.write_text(text.replace('"max"', '"fastest"'))
    with pytest.raises(BadInput, match=r"sweep\.batching"):
        load_spec(path, config_cls=TrainConfig)


def test_the_estimate_probe_discards_the_first_training_of_a_shape(monkeypatch):
    """The first batch of a shape pays one-off costs: timed, they made the 2-step probe slower than the 10-step
    one and the step cost zero (a 100-run sweep estimated at 3 s); the probe now warms up untimed first."""
    import forgetlab.grok.sweep.estimate as estimate

    calls = []

    def fake_time_training(trainer, configs, steps, log_every, history):
        calls.append(steps)
        return 5.0 if len(calls) == 1 else 0.1 + 0.01 * steps  # the first call: one-off costs

    monkeypatch.setattr(estimate, "time_training", fake_time_training)
    step, fixed, evaluation = estimate._probe(None, [], (2, 10), False)
    assert step == pytest.approx(0.01) and fixed == pytest.approx(0.1) and evaluation == 0.0
    assert calls == [2, 2, 10]
