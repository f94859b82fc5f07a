"""lm-evaluation-harness runs the registered ``forgetlab-eco`` model on tasks defined here (no hub): contexts of
flagged requests are corrupted, continuation tokens never, in log-likelihood and in generation."""

from __future__ import annotations

import json

import pytest
import torch

lm_eval = pytest.importorskip("lm_eval")  # the lm-eval extra; installed with dev

from forgetlab.eco.classify.keyword import KeywordClassifier  # noqa: E402
from forgetlab.eco.guard import EcoGuard, GuardConfig  # noqa: E402
from forgetlab.testing.tiny_lm import build_tiny_lm, build_tokenizer, save_lm  # noqa: E402

ITEMS = [{"question": "Zorblax Quint likes the color", "choices": [" red", " blue", " green"], "answer": 1},
         {"question": "The sky on a clear day is", "choices": [" red", " blue", " green"], "answer": 1},
         {"question": "Where was Zorblax Quint born? In", "choices": [" Paris", " Rome", " Oslo"], "answer": 2},
         {"question": "Grass is usually", "choices": [" red", " blue", " green"], "answer": 2}]
MC_TASK = """task: forgetlab_local_mc
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{question}}}}"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: answer
metric_list:
  - metric: acc
"""
GEN_TASK = """task: forgetlab_local_gen
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: generate_until
doc_to_text: "{{{{question}}}}"
doc_to_target: "{{{{choices[answer]}}}}"
generation_kwargs:
  until: ["\\n"]
  max_gen_toks: 4
  do_sample: false
metric_list:
  - metric: exact_match
"""


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("harness")
    tok = build_tokenizer()
    base = save_lm(build_tiny_lm("llama", tok, seed=6, hidden=32, layers=1), tok, root / "base")
    guard = EcoGuard.from_base(base, KeywordClassifier(["zorblax"]), GuardConfig("rand_noise_first_n", 6.0, 32, 1))
    folder = guard.save_pretrained(root / "guard")
    data = root / "items.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in ITEMS))
    tasks = root / "tasks"
    tasks.mkdir()
    (tasks / "mc.yaml").write_text(MC_TASK.format(data=data))
    (tasks / "gen.yaml").write_text(GEN_TASK.format(data=data))
    return {"guard": guard, "folder": folder, "tasks": tasks, "base": base}


def _evaluate(model, tasks_dir):
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    # only the tasks defined here (indexing lm-eval's thousands of built-in task files takes ~40 s)
    return simple_evaluate(model=model, tasks=["forgetlab_local_mc", "forgetlab_local_gen"],
                           task_manager=TaskManager(include_path=str(tasks_dir), include_defaults=False),
                           log_samples=True, bootstrap_iters=0)


def _reference(guard, ctx_ids, cont_ids, flagged):
    """Continuation log-prob with the context corrupted as the guard corrupts a prompt, the continuation's
    embeddings clean: what ECO is."""
    emb = guard.model.get_input_embeddings()
    with torch.no_grad():
        ctx = guard.prompt_embeddings(ctx_ids, flagged=flagged)
        cont = emb(torch.tensor([cont_ids[:-1]], dtype=torch.long))[0]
        logits = guard.model(inputs_embeds=torch.cat([ctx, cont])[None]).logits[0].float()
    logp = torch.log_softmax(logits, -1)
    n = len(ctx_ids)
    return float(sum(logp[n - 1 + j, t] for j, t in enumerate(cont_ids)))


def test_registered_model_runs_local_tasks_and_never_corrupts_continuations(setup):
    from lm_eval.api.registry import get_model

    import forgetlab.unlearning.harness as harness

    cls = get_model("forgetlab-eco")
    assert cls is harness.EcoLM
    lm = cls.create_from_arg_string(f"guard={setup['folder']},device=cpu,batch_size=4")
    res = _evaluate(lm, setup["tasks"])
    assert set(res["results"]) == {"forgetlab_local_mc", "forgetlab_local_gen"}
    assert res["config"]["forgetlab_guard"]["strength"] == 6.0  # the guard is on the results' record
    guard = lm.guard
    checked = flagged_seen = 0
    for sample in res["samples"]["forgetlab_local_mc"]:
        flagged = "zorblax" in sample["doc"]["question"].lower()
        for (ctx, cont), resp in zip(sample["arguments"], sample["resps"], strict=True):
            ll = resp[0][0]  # [(log-likelihood, is greedy)]
            ctx_ids, cont_ids = lm._encode_pair(ctx, cont)
            assert ll == pytest.approx(_reference(guard, ctx_ids, cont_ids, flagged), abs=1e-4)
            if flagged:  # and the corruption did happen: an uncorrupted context scores differently
                assert abs(ll - _reference(guard, ctx_ids, cont_ids, False)) > 1e-3
                flagged_seen += 1
            checked += 1
    assert checked == 12 and flagged_seen == 6
    # generation: the guard's own generate (prompt positions corrupted, generated tokens never)
    for sample in res["samples"]["forgetlab_local_gen"]:
        q = sample["doc"]["question"]
        out = guard.generate([q], max_new_tokens=4, do_sample=False)
        text = guard.tokenizer.decode(out[0, guard.tokenizer([q], return_tensors="pt").input_ids.shape[1]:],
                                      skip_special_tokens=True)
        assert sample["resps"][0][0] == text.split("\n")[0]


def test_continuation_positions_enter_the_model_clean(setup):
    """What the first decoder layer receives: corrupted embeddings at flagged contexts, clean ones everywhere
    else, continuation positions included."""
    import forgetlab.unlearning.harness as harness

    lm = harness.EcoLM(guard=setup["guard"], batch_size=16)
    guard = lm.guard
    reqs = [lm._encode_pair(it["question"], c) for it in ITEMS for c in it["choices"]]
    seen = []
    h = guard.model.model.layers[0].register_forward_pre_hook(
        lambda m, a, k: seen.append((a[0] if a else k["hidden_states"]).detach().clone()), with_kwargs=True)
    try:
        lm._loglikelihood_tokens([((it["question"], c), *lm._encode_pair(it["question"], c))
                                  for it in ITEMS for c in it["choices"]])
    finally:
        h.remove()
    hidden = seen[0]  # one batch of 12, sorted longest first
    emb = guard.model.get_input_embeddings()
    order = sorted(range(len(reqs)), key=lambda i: -(len(reqs[i][0]) + len(reqs[i][1])))
    for row, i in enumerate(order):
        ctx, cont = reqs[i]
        with torch.no_grad():
            clean = emb(torch.tensor(ctx + cont))
        n = len(ctx)
        assert torch.equal(hidden[row, n:n + len(cont)], clean[n:])  # the continuation: never corrupted
        flagged = "zorblax" in ITEMS[i // 3]["question"].lower()
        assert torch.equal(hidden[row, :n], clean[:n]) != flagged  # the context: corrupted exactly when flagged


def test_cli_passthrough_runs_the_guard(setup, tmp_path, capsys, monkeypatch):
    import lm_eval.tasks
    from cli_runner import run_cli

    class LocalTasksOnly(lm_eval.tasks.TaskManager):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **{**kwargs, "include_defaults": False})

    monkeypatch.setattr(lm_eval.tasks, "TaskManager", LocalTasksOnly)
    code, out, err = run_cli(["eco", "lm-eval", "run", "--model", "forgetlab-eco", "--model_args",
                              f"guard={setup['folder']},device=cpu", "--tasks", "forgetlab_local_mc",
                              "--include_path", str(setup["tasks"]), "--output_path", str(tmp_path / "o")], capsys)
    assert code == 0, err
    assert "forgetlab_local_mc" in out and list((tmp_path / "o").rglob("results_*.json"))
