"""What result files record about where they were computed: CPU model, cores, threads, versions, UTC time."""

from __future__ import annotations

import re

from forgetlab.hardware import cpu_model, machine, usable_cores
from forgetlab.runs import provenance


def test_cpu_model_reads_cpuinfo_and_falls_back(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Processor\n")
    assert cpu_model(info) == "Intel(R) Xeon(R) Processor"
    assert cpu_model(tmp_path / "missing")  # platform.processor() or "unknown", never empty


def test_provenance_records_settings_versions_machine_and_utc_time():
    rec = provenance(p=97, matmul_precision="bf16")
    assert rec["settings"] == {"p": 97, "matmul_precision": "bf16"}
    assert {"python", "torch", "forgetlab"} <= set(rec["versions"])
    m = rec["machine"]
    assert m == {**m, "cores": usable_cores()} and m["torch_threads"] >= 1 and isinstance(m["bf16_units"], bool)
    assert m["cpu"] and set(m) == set(machine())
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", rec["finished"])


def test_a_runs_config_json_records_the_machine_it_ran_on(tmp_path):
    """Every run's header (config.json of a grok run, a guard folder, an unlearned model) says where it ran."""
    from forgetlab.grok.config import TrainConfig
    from forgetlab.grok.record import save_run
    from forgetlab.grok.train import train
    from forgetlab.runs import read_json

    result = train(TrainConfig(p=7, width=8, steps=2, log_every=1))
    assert result.extra["started"] and set(result.extra["machine"]) == set(machine())
    began = {"started": "2000-01-01T00:00:00+0000", "machine": {**machine(), "load_average": [9.0, 9.0, 9.0]}}
    result.extra.update(began)  # sentinels: config.json must take them, not the time and load of the save
    save_run(tmp_path / "run", result, plots=False)
    record = read_json(tmp_path / "run" / "config.json")
    m = record["machine"]
    assert set(m) == set(machine()) and m["cpu"] == cpu_model() and m["cores"] == usable_cores()
    # when and where training began (load average then), not when the folder was written
    assert (record["started"], m) == (began["started"], began["machine"])
