"""The benchmark discipline (benchmarks/discipline.py): interleaving, medians with spread, contended rounds
marked and carried into ratios, the machine recorded, result files and their table."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _discipline():
    spec = importlib.util.spec_from_file_location("discipline", ROOT / "benchmarks" / "discipline.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("discipline", mod)
    spec.loader.exec_module(mod)
    return mod


D = _discipline()


class FakeClock:
    """perf_counter that advances only when a variant runs: each call of a variant costs its listed seconds."""

    def __init__(self, monkeypatch):
        self.now = 0.0
        self.cpu = 0.0
        self.cpu_share = 1.0  # CPU seconds per wall second of a variant's call
        monkeypatch.setattr(D.time, "perf_counter", lambda: self.now)
        monkeypatch.setattr(D.time, "process_time", lambda: self.cpu)

    def variant(self, name, costs, order, work=1.0):
        it = iter(costs)

        def fn():
            order.append(name)
            dt = next(it)
            self.now += dt
            self.cpu += dt * self.cpu_share
        return D.Variant(name, fn, work=work)


def test_rounds_interleave_rotate_and_take_medians(monkeypatch):
    clock, order = FakeClock(monkeypatch), []
    a = clock.variant("a", [9.0, 1, 2, 3, 4, 100], order)  # first call is the warm-up
    b = clock.variant("b", [9.0, 2, 2, 2, 2, 2], order, work=4.0)
    res = D.run_rounds([a, b], rounds=5, load=lambda: 0.5, cores=2)
    assert order == ["a", "b", "a", "b", "b", "a", "a", "b", "b", "a", "a", "b"]  # warm-up, then rotated
    s = res.summary("a")
    assert s["seconds"] == {"median": 3, "min": 1, "max": 100}
    assert s["contended_rounds"] == 0
    assert res.summary("b")["rate"]["median"] == 2.0  # work 4 per 2 s
    r = res.ratio("b", "a")  # per-round rate ratios: (4/2)/(1/x) = 2x for x in 1, 2, 3, 4, 100
    assert r["median"] == 6.0 and r["min"] == 2.0 and r["max"] == 200.0 and r["contended"] is False
    assert res.ratio("a", "b", of="seconds")["median"] == 1.5


def test_a_round_over_the_core_count_is_marked_and_the_ratio_says_so(monkeypatch):
    clock, order = FakeClock(monkeypatch), []
    loads = iter([1.0, 1.0, 1.0, 1.0, 2.5, 1.0] + [1.0] * 14)  # round 1's 'b' ends at load 2.5 > 2 cores
    a = clock.variant("a", [1.0] * 6, order)
    b = clock.variant("b", [1.0] * 6, order)
    res = D.run_rounds([a, b], rounds=5, load=lambda: next(loads), cores=2)
    marked = [(r.variant, r.index) for r in res.rounds if r.contended]
    assert marked == [("a", 1)] or marked == [("b", 1)]
    assert res.summary("a")["contended_rounds"] + res.summary("b")["contended_rounds"] == 1
    r = res.ratio("a", "b")
    assert r["contended"] is True and r["contended_rounds"] == 1
    # at exactly the core count nothing is marked
    clock2 = FakeClock(monkeypatch)
    res2 = D.run_rounds([clock2.variant("a", [1.0] * 6, []), clock2.variant("b", [1.0] * 6, [])], rounds=5,
                        load=lambda: 2.0, cores=2)
    assert not any(r.contended for r in res2.rounds) and res2.ratio("a", "b")["contended"] is False


def test_fewer_than_five_rounds_and_duplicate_names_are_refused():
    v = D.Variant("a", lambda: None)
    with pytest.raises(ValueError, match="rounds must be >= 5"):
        D.run_rounds([v], rounds=4)
    with pytest.raises(ValueError, match="unique"):
        D.run_rounds([v, D.Variant("a", lambda: None)])


def test_setup_runs_untimed_before_each_round(monkeypatch):
    clock, calls = FakeClock(monkeypatch), []

    def setup():
        calls.append("setup")
        clock.now += 1000.0  # not counted
    v = clock.variant("a", [1.0] * 16, calls)
    v.setup = setup
    res = D.run_rounds([v], rounds=5, repeat=3, load=lambda: 0.0, cores=1)
    assert res.summary("a")["seconds"]["max"] == 1.0
    assert calls.count("setup") == 6  # warm-up + 5 rounds


def test_cpu_info_reads_model_flags_and_hypervisor():
    text = ("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC\n"
            "flags\t\t: fpu sse avx avx2 fma hypervisor\nprocessor\t: 1\nmodel name\t: AMD EPYC\n")
    info = D.cpu_info(text)
    assert info == {"model": "AMD EPYC", "vendor": "AuthenticAMD", "flags": ["avx2", "fma"], "virtualized": True}
    intel = D.cpu_info("model name : Xeon\nflags : avx2 avx512f amx_bf16 amx_tile\n")
    assert intel["flags"] == ["avx2", "avx512f", "amx_bf16", "amx_tile"] and intel["virtualized"] is False


def test_result_file_records_machine_rounds_and_renders_a_table(tmp_path, monkeypatch, capsys):
    clock = FakeClock(monkeypatch)
    res = D.run_rounds([clock.variant("x", [0.5] * 6, [], work=10.0), clock.variant("y", [1.0] * 6, [])],
                       rounds=5, load=lambda: 3.0, cores=2)
    path = tmp_path / "r" / "bench.json"
    D.write_result(path, name="bench", command="python benchmarks/bench.py --q", config={"q": 1},
                   results={"p=31": res}, threads=1, derived={"x/y": res.ratio("x", "y")})
    doc = json.loads(path.read_text())
    assert doc["machine"]["threads"] == 1 and doc["machine"]["cores"] >= 1 and "model" in doc["machine"]["cpu"]
    assert len(doc["results"]["p=31"]["rounds"]) == 10
    assert doc["derived"]["x/y"]["median"] == 20.0 and doc["derived"]["x/y"]["contended"] is True
    assert not list(path.parent.glob(".*tmp"))
    assert D.main(["table", str(path)]) == 0
    out = capsys.readouterr().out
    assert "`python benchmarks/bench.py --q`" in out
    assert "| p=31 | x | 0.5 [0.5-0.5] | 0.5 | 20 [20-20] calls/s | 3.00 [3.00-3.00] | 5/5 |" in out
    assert "| x/y | 20 [20-20] | yes (5 rounds) |" in out


def test_figures_keep_three_digits_and_si_prefixes():
    assert [D.fmt(x) for x in (0, 0.01234, 12.345, 4321.0, 1.39e10, 2.5e6)] == \
        ["0", "0.0123", "12.3", "4,321", "13.9 G", "2.5 M"]


def test_a_self_timed_variant_reports_its_own_seconds():
    res = D.run_rounds([D.Variant("child", lambda: 2.5, work=5.0, self_timed=True)], rounds=5, repeat=2,
                       load=lambda: 0.0, cores=1)
    assert res.summary("child")["seconds"]["median"] == 2.5 and res.summary("child")["rate"]["median"] == 2.0


def test_cpu_seconds_are_recorded_and_a_ratio_can_use_them(monkeypatch):
    clock = FakeClock(monkeypatch)
    clock.cpu_share = 0.5  # descheduled half the time
    res = D.run_rounds([clock.variant("a", [2.0] * 6, []), clock.variant("b", [1.0] * 6, [])], rounds=5,
                       load=lambda: 0.0, cores=1)
    assert res.summary("a")["cpu_seconds"]["median"] == 1.0
    assert res.ratio("a", "b", of="seconds", clock="cpu") == {"median": 2.0, "min": 2.0, "max": 2.0,
                                                             "of": "seconds", "clock": "cpu",
                                                             "contended_rounds": 0, "contended": False}
