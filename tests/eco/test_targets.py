"""Many forget requests in one guard: union flag rule, each flagged prompt corrupted by the target(s) that flag
it, targets added without refitting the others, removed, listed, saved; a served guard picks up a changed folder."""

import json
import time

import pytest
import torch
from cli_runner import run_cli

from forgetlab.eco.classify.keyword import KeywordClassifier
from forgetlab.eco.guard import EcoGuard, GuardConfig
from forgetlab.eco.guard_folder import add_folder_target, folder_target_summaries, remove_folder_target
from forgetlab.eco.targets import Target
from forgetlab.errors import BadInput
from forgetlab.runs import folder_checksums
from forgetlab.testing.tiny_lm import build_tiny_lm, build_tokenizer, save_lm

A, B, BOTH, NONE = ("Who is Zorblax Quint?", "Where does Velmora Tusk live?",
                    "Did Zorblax Quint ever meet Velmora Tusk?", "What is the capital of France?")
CA = GuardConfig("rand_noise_first_n", 4.0, 32, 11)
CB = GuardConfig("rand_noise_first_n", 1.5, 16, 22)
GEN = {"max_new_tokens": 3, "min_new_tokens": 3, "do_sample": False}


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    tok = build_tokenizer()
    return save_lm(build_tiny_lm("qwen2", tok, seed=9, hidden=32, layers=1), tok,
                   tmp_path_factory.mktemp("targets") / "base")


@pytest.fixture(scope="module")
def guards(base):
    one = EcoGuard.from_base(base, KeywordClassifier(["zorblax"]), CA, name="zorblax")
    two = EcoGuard(one.model, one.tokenizer, KeywordClassifier(["zorblax"]), CA, name="zorblax",
                   model_source=one.model_source)
    two.add_target(Target("velmora", KeywordClassifier(["velmora"]), CB))
    only_b = EcoGuard(one.model, one.tokenizer, KeywordClassifier(["velmora"]), CB, name="velmora")
    return one, two, only_b


def test_union_rule_and_each_targets_own_corruption(guards):
    one, two, only_b = guards
    assert two.classify([A, B, BOTH, NONE]).tolist() == [True, True, True, False]
    assert two.which_targets([A, B, BOTH, NONE]) == [["zorblax"], ["velmora"], ["zorblax", "velmora"], []]
    assert torch.equal(two.prompt_embeddings(A), one.prompt_embeddings(A))  # A's corruption, as alone
    assert torch.equal(two.prompt_embeddings(B), only_b.prompt_embeddings(B))  # B's, with B's strength and seed
    clean = two.prompt_embeddings(NONE, flagged=False)
    assert torch.equal(two.prompt_embeddings(NONE), clean)
    # a prompt about both gets both corruptions: A's, then B's on top
    both = two.prompt_embeddings(BOTH)
    assert not torch.equal(both, one.prompt_embeddings(BOTH)) and not torch.equal(both, only_b.prompt_embeddings(BOTH))
    # generate feeds the model exactly these embeddings, every row of a mixed batch
    seen = []
    h = two.model.model.layers[0].register_forward_pre_hook(
        lambda m, a, k: seen.append((a[0] if a else k["hidden_states"]).detach().clone()), with_kwargs=True)
    try:
        out = two.generate([A, B, BOTH, NONE], **GEN)
    finally:
        h.remove()
    enc = two.tokenizer([A, B, BOTH, NONE], return_tensors="pt", padding=True)
    for row, p in enumerate([A, B, BOTH, NONE]):
        assert torch.equal(seen[0][row][enc.attention_mask[row].bool()], two.prompt_embeddings(p))
    assert torch.equal(out[3:], one.generate([A, B, BOTH, NONE], **GEN)[3:])  # the unflagged row: untouched
    # teacher-forced scores: contexts corrupted per target, answers clean (the answer's log-prob under
    # the prompt's corrupted embeddings equals the guard's score)
    lp_two = two.answer_logprobs([B, NONE], [" Oslo", " Paris"])
    lp_b = only_b.answer_logprobs([B, NONE], [" Oslo", " Paris"])
    assert torch.allclose(lp_two, lp_b, atol=1e-5)


def test_add_list_remove_and_save(guards, tmp_path):
    _one, two, _ = guards
    d = two.save_pretrained(tmp_path / "g")
    meta = json.loads((d / "guard.json").read_text())
    assert meta["format_version"] == 3 and meta["name"] == "zorblax" and meta["targets"][0]["name"] == "velmora"
    loaded = EcoGuard.from_pretrained(d)
    assert [t.name for t in loaded.targets] == ["zorblax", "velmora"]
    assert torch.equal(loaded.prompt_embeddings(BOTH), two.prompt_embeddings(BOTH))
    before = folder_checksums(d, exclude=("guard.json", "guard.sha256"))
    add_folder_target(d, name="kestrel", config={**CB.__dict__, "seed": 5}, classifier=KeywordClassifier(["kestrel"]))
    after = folder_checksums(d, exclude=("guard.json", "guard.sha256"))
    assert all(after[k] == v for k, v in before.items())  # the earlier targets' files: byte for byte
    assert [t["name"] for t in folder_target_summaries(d)] == ["zorblax", "velmora", "kestrel"]
    with pytest.raises(BadInput, match="a name no target"):
        add_folder_target(d, name="velmora", config=CB.__dict__, classifier=KeywordClassifier(["x"]))
    remove_folder_target(d, "zorblax")  # the first: the next takes its place
    g = EcoGuard.from_pretrained(d)
    assert [t.name for t in g.targets] == ["velmora", "kestrel"] and g.config.strength == CB.strength
    assert g.classify([A, B, "kestrel?"]).tolist() == [False, True, True]
    remove_folder_target(d, "kestrel")
    meta = json.loads((d / "guard.json").read_text())
    assert meta["format_version"] == 3 and "targets" not in meta and not (d / "targets").exists()
    with pytest.raises(BadInput, match="several"):
        remove_folder_target(d, "velmora")
    mem = EcoGuard.from_pretrained(d)
    mem.add_target(Target("zorblax", KeywordClassifier(["zorblax"]), CA))
    assert mem.remove_target("velmora").name == "velmora" and [t.name for t in mem.targets] == ["zorblax"]


def test_cli_add_to_targets_and_classify(base, tmp_path, capsys, monkeypatch):
    from cli_data import write_inputs

    p = write_inputs(tmp_path / "in")
    common = ["--retain", str(p["retain"]), "--strength", "2", "--fpr", "0.2", "--quiet"]
    code, out, err = run_cli(["eco", "fit", "--model", str(base), "--forget", str(p["forget"]), "--out",
                              str(tmp_path / "g"), "--name", "zorblax", *common], capsys)
    assert code == 0, err
    code, out, _ = run_cli(["eco", "classify", "--guard", str(tmp_path / "g"), "--prompt",
                            "Where was Zorblax Quint born?"], capsys)
    assert json.loads(out)["targets"] == ["zorblax"]  # a one-target guard said "default", not its name
    forget_b = tmp_path / "b.jsonl"
    forget_b.write_text("".join(json.dumps({"prompt": t.replace("Zorblax Quint", "Velmora Tusk")}) + "\n"
                                for t in p["forget"].read_text().splitlines() for t in [json.loads(t)["prompt"]]))
    code, out, err = run_cli(["eco", "fit", "--add-to", str(tmp_path / "g"), "--name", "velmora", "--forget",
                              str(forget_b), "--strength", "1", "--retain", str(p["retain"]), "--fpr", "0.2",
                              "--quiet"], capsys)
    assert code == 0, err
    assert json.loads(out)["target"] == "velmora"
    code, out, _ = run_cli(["eco", "targets", "--guard", str(tmp_path / "g")], capsys)
    rows = [json.loads(x) for x in out.splitlines()]
    assert [(r["name"], r["strength"]) for r in rows] == [("zorblax", 2.0), ("velmora", 1.0)]
    code, out, _ = run_cli(["eco", "classify", "--guard", str(tmp_path / "g"), "--prompt",
                            "Where was Velmora Tusk born?", "--prompt", "What is the capital of Peru?"], capsys)
    rows = [json.loads(x) for x in out.splitlines()]
    # (the first target's classifier saw no questions about other people: it may flag this one too)
    assert "velmora" in rows[0]["targets"] and rows[1] == {**rows[1], "flagged": False, "targets": []}
    for argv, word in ((["--name", "velmora"], "a name no target"), (["--name", "a b"], "target name"),
                       (["--out", str(tmp_path / "x")], "either --out")):
        code, _, err = run_cli(["eco", "fit", "--add-to", str(tmp_path / "g"), "--forget", str(forget_b), *common,
                                *argv], capsys)
        assert code == 2 and word in err and len(err.strip().splitlines()) == 1, err
    monkeypatch.chdir(tmp_path / "g")  # the guard is swapped in whole: '.' failed with EBUSY after the fit
    code, _, err = run_cli(["eco", "fit", "--add-to", ".", "--forget", str(forget_b), *common, "--name", "nova"],
                           capsys)
    assert code == 2 and err.startswith("error: add_to:") and "current" in err and len(err.strip().splitlines()) == 1
    monkeypatch.chdir(tmp_path)
    code, out, _ = run_cli(["eco", "targets", "--guard", str(tmp_path / "g"), "--remove", "velmora"], capsys)
    assert code == 0 and [json.loads(x)["name"] for x in out.splitlines()] == ["zorblax"]


def test_served_guard_picks_up_a_changed_folder(guards, tmp_path):
    from forgetlab.eco.serve.engine import ServeEngine
    from forgetlab.eco.serve.types import GenRequest

    one, _, _ = guards
    d = one.save_pretrained(tmp_path / "served")
    served = EcoGuard.from_pretrained(d)
    engine = ServeEngine(served, watch_s=0.05)
    try:
        def flagged(prompt: str) -> bool:
            got = []
            req = GenRequest(served.tokenizer(prompt).input_ids, prompt, max_tokens=1, temperature=0.0)
            req.emit = got.append
            engine.batcher.submit(req)
            deadline = time.monotonic() + 30
            while not any(type(e).__name__ == "Done" for e in got) and time.monotonic() < deadline:
                time.sleep(0.01)
            return next(e.flagged for e in got if type(e).__name__ == "Flagged")

        def changed(reloads: int) -> None:  # the watcher saw the new record (polled every 0.05 s)
            deadline = time.monotonic() + 30
            while not engine.watcher._pending.is_set() and engine.watcher.reloads < reloads:
                assert time.monotonic() < deadline, "the watcher never saw the change"
                time.sleep(0.02)

        assert flagged(A) and not flagged(B)
        add_folder_target(d, name="velmora", config=CB.__dict__, classifier=KeywordClassifier(["velmora"]))
        changed(1)
        assert flagged(B) and engine.watcher.reloads == 1  # picked up before the next batch
        assert [t.name for t in served.targets] == ["zorblax", "velmora"]
        remove_folder_target(d, "velmora")
        changed(2)
        assert not flagged(B) and flagged(A) and engine.watcher.reloads == 2
    finally:
        engine.close()
