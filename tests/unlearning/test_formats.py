"""Published layouts: the world written as TOFU, MUSE, WMDP and MMLU loads back; optional parts stay optional;
wrong layouts and bad rows are one-line errors naming the expected files and fields; one multiple-choice schema."""

from __future__ import annotations

import json

import pytest

from forgetlab.eco.mc import MCItem
from forgetlab.errors import BadInput, ForgetlabError
from forgetlab.unlearning.formats import LOADERS, write_layouts
from forgetlab.unlearning.formats.mmlu import load_mmlu
from forgetlab.unlearning.formats.muse import load_muse
from forgetlab.unlearning.formats.tofu import load_tofu
from forgetlab.unlearning.formats.wmdp import load_wmdp
from forgetlab.unlearning.world import WorldConfig, make_world


@pytest.fixture(scope="module")
def world():
    return make_world(WorldConfig(n_authors=20, facts_min=4, facts_max=5, n_painters=3, n_countries=3,
                                  mc_per_subject=6, answer_style="name-free", seed=2))


@pytest.fixture(scope="module")
def layouts(world, tmp_path_factory):
    root = tmp_path_factory.mktemp("layouts")
    write_layouts(world, root)
    return root


def _jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_world_round_trips_through_every_layout(world, layouts):
    tofu = load_tofu(layouts / "tofu", "forget10")
    assert [r["question"] for r in tofu.forget] == [r["question"] for r in world.forget("forget10")]
    assert tofu.forget[0]["perturbed_answer"] == world.forget("forget10")[0]["perturbed_answer"]
    assert len(tofu.retain) == len(world.items(world.retain_authors()))
    assert len(tofu.real_authors) == len(world.painters) and tofu.holdout
    muse = load_muse(layouts / "muse")
    assert muse.verbmem and set(muse.knowmem) == {"forget_qa", "forget_qa_icl", "retain_qa", "retain_qa_icl"}
    assert set(muse.privleak) == {"forget", "holdout", "retain"} and set(muse.raw) == {"forget", "retain1",
                                                                                        "retain2", "holdout"}
    wmdp = load_wmdp(layouts / "wmdp")
    assert set(wmdp) == {f"wmdp-{s}" for s in world.mc}
    first = world.mc["alchemy"][0]
    assert wmdp["wmdp-alchemy"][0] == MCItem(first["question"], tuple(first["choices"]), first["label"],
                                             "wmdp-alchemy")
    mmlu = load_mmlu(layouts / "mmlu")
    assert set(mmlu.test) == set(world.mc) and len(mmlu.dev["alchemy"]) == 2
    assert mmlu.test["alchemy"][0].answer == world.mc["alchemy"][2]["label"]  # letters read back as indices
    assert set(LOADERS.names()) == {"tofu", "muse", "wmdp", "mmlu"}
    from forgetlab.eco.cli import _read_mc_jsonl  # eco fit --fit reads the world's files as they are

    assert _read_mc_jsonl(layouts / "wmdp" / "wmdp-alchemy.jsonl")[0].answer == first["label"]


def test_tofu_parts_are_optional_and_schemas_per_file(tmp_path, layouts):
    only = tmp_path / "only"
    only.mkdir()
    (only / "forget05.json").write_text((layouts / "tofu" / "forget05.json").read_text())
    d = load_tofu(only, "forget05")
    assert set(d.forget[0]) == {"question", "answer"} and not d.holdout and not d.retain
    # real authors as published without perturbed answers: the wrong options stand in for them
    (only / "real_authors.json").write_text((layouts / "tofu" / "real_authors.json").read_text())
    d = load_tofu(only, "forget05")
    row = json.loads((layouts / "tofu" / "real_authors.json").read_text().splitlines()[0])
    assert d.real_authors[0]["perturbed_answer"] == [row[f"option{i}"] for i in range(1, 5)
                                                     if row[f"option{i}"] != row["answer"]]
    # a JSON array is read as well as JSON lines
    arr = tmp_path / "arr"
    arr.mkdir()
    rows = [json.loads(x) for x in (layouts / "tofu" / "forget01_perturbed.json").read_text().splitlines()]
    (arr / "forget01_perturbed.json").write_text(json.dumps(rows))
    assert len(load_tofu(arr, "forget01").forget) == len(rows)


def test_wrong_layouts_name_the_expected_files_and_fields(tmp_path, layouts):
    empty = tmp_path / "empty"
    empty.mkdir()
    cases = [(lambda: load_tofu(empty, "forget10"), ["forget10_perturbed.json", "holdout10.json",
                                                     "paraphrased_answer", "real_authors_perturbed.json"]),
             (lambda: load_muse(empty), ["verbmem/forget.json", "prompt, gt", "knowmem/forget_qa.json",
                                         "privleak/holdout.json"]),
             (lambda: load_wmdp(empty), ["wmdp-bio/test-*.parquet", "wmdp-bio.jsonl", "question, choices, answer"]),
             (lambda: load_mmlu(empty), ["test/<subject>_test.csv", "<subject>/test-*.parquet"])]
    for load, words in cases:
        with pytest.raises(ForgetlabError) as exc:
            load()
        msg = str(exc.value)
        assert "\n" not in msg and all(w in msg for w in words), msg
    with pytest.raises(BadInput, match="data"):
        load_tofu(tmp_path / "nope")
    with pytest.raises(BadInput, match="split"):
        load_tofu(layouts / "tofu", "forget20")


def test_bad_rows_name_file_line_and_field(tmp_path, layouts):
    d = tmp_path / "t"
    d.mkdir()
    lines = (layouts / "tofu" / "forget10_perturbed.json").read_text().splitlines()
    row = json.loads(lines[1])
    del row["paraphrased_answer"]
    (d / "forget10_perturbed.json").write_text("\n".join([lines[0], json.dumps(row)]) + "\n")
    with pytest.raises(ForgetlabError, match=r"forget10_perturbed\.json: line 2: missing field 'paraphrased_answer'"):
        load_tofu(d)
    row = json.loads(lines[1]) | {"perturbed_answer": ["only one"]}
    (d / "forget10_perturbed.json").write_text("\n".join([lines[0], json.dumps(row)]) + "\n")
    with pytest.raises(ForgetlabError, match=r"line 2: field 'perturbed_answer' has 1 items"):
        load_tofu(d)
    m = tmp_path / "m"
    (m / "verbmem").mkdir(parents=True)
    (m / "verbmem" / "forget.json").write_text(json.dumps([{"prompt": "a"}]))
    with pytest.raises(ForgetlabError, match=r"verbmem/forget\.json: line 1: missing field 'gt'"):
        load_muse(m)
    (m / "verbmem" / "forget.json").write_text(json.dumps([{"prompt": "a", "gt": "b"}]))
    (m / "privleak").mkdir()
    (m / "privleak" / "forget.json").write_text(json.dumps(["member text"]))
    with pytest.raises(ForgetlabError, match=r"needs both forget\.json and holdout\.json"):
        load_muse(m)
    w = tmp_path / "w"
    _jsonl(w / "wmdp-bio.jsonl", [{"question": "q", "choices": ["a", "b"], "answer": 3}])
    with pytest.raises(ForgetlabError, match=r"wmdp-bio\.jsonl: line 1\.answer: got 3; allowed: an index in \[0, 2\)"):
        load_wmdp(w)
    c = tmp_path / "c" / "test"
    c.mkdir(parents=True)
    (c / "x_test.csv").write_text("q,a,b,c,d\n")
    with pytest.raises(ForgetlabError, match=r"x_test\.csv: row 1: 5 cells; expected 6"):
        load_mmlu(c.parent)


def test_hub_exports_parquet_and_jsonl(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    import pyarrow as pa

    rows = [{"question": "Which agent?", "choices": ["a", "b", "c", "d"], "answer": 2},
            {"question": "Which gene?", "choices": ["w", "x", "y", "z"], "answer": 0}]
    (tmp_path / "wmdp" / "wmdp-bio").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "wmdp" / "wmdp-bio" / "test-00000-of-00001.parquet")
    _jsonl(tmp_path / "wmdp" / "wmdp-cyber.jsonl", [{"question": "Which port?", "choices": ["1", "2"],
                                                      "answer": "B"}])
    got = load_wmdp(tmp_path / "wmdp")
    assert [it.answer for it in got["wmdp-bio"]] == [2, 0] and got["wmdp-cyber"][0].answer == 1
    assert load_wmdp(tmp_path / "wmdp", ("wmdp-cyber",)).keys() == {"wmdp-cyber"}
    hub = tmp_path / "mmlu" / "anatomy"
    _jsonl(hub / "test.jsonl", [r | {"subject": "anatomy"} for r in rows])
    _jsonl(hub / "dev.jsonl", rows[:1])
    data = load_mmlu(tmp_path / "mmlu")
    assert [it.answer for it in data.test["anatomy"]] == [2, 0] and len(data.dev["anatomy"]) == 1
    # MUSE from the hub: JSON lines of {"text"} and {"question", "answer"}
    mu = tmp_path / "muse"
    _jsonl(mu / "privleak" / "forget.jsonl", [{"text": "a member"}])
    _jsonl(mu / "privleak" / "holdout.jsonl", [{"text": "not a member"}])
    _jsonl(mu / "knowmem" / "retain2_qa.jsonl", [{"question": "q", "answer": "a"}])
    (mu / "raw").mkdir()
    (mu / "raw" / "forget.txt").write_text("The whole forget corpus.\n")
    data = load_muse(mu)
    assert data.privleak["forget"] == ["a member"] and "retain_qa" in data.knowmem
    assert data.raw["forget"] == ["The whole forget corpus.\n"]


def test_one_multiple_choice_schema():
    base = {"question": "x likes", "choices": [" a", " b", " c"]}
    assert MCItem.from_dict(base | {"answer": 1}).answer == 1
    assert MCItem.from_dict(base | {"answer": "C"}).answer == 2  # a letter (MMLU's CSV)
    assert MCItem.from_dict(base | {"answer": " b"}).answer == 1  # the choice itself
    assert MCItem.from_dict(base | {"label": 0}).answer == 0  # the hub's class-index name
    with pytest.raises(BadInput, match=r"item\.answer: got 'D'"):
        MCItem.from_dict(base | {"answer": "D"})
    with pytest.raises(BadInput, match=r"item\.label"):
        MCItem.from_dict(base | {"label": 7})
    it = MCItem.from_dict(base | {"answer": 2, "subject": "s"})
    assert MCItem.from_dict(it.to_dict()) == it
