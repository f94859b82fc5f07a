"""lm-evaluation-harness's `local-completions` model scores a locally defined multiple-choice task against a served
guard: every log-likelihood it reads equals the guard's own scorer on context + continuation (the served guard
sees both as one prompt: classified as a whole and, when flagged, corrupted as a whole)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from serve_helpers import FORGET_WORD

from forgetlab.eco.serve.engine import ServeEngine
from forgetlab.eco.serve.server import serve_in_thread
from forgetlab.eco.serve.types import ServeLimits

lm_eval = pytest.importorskip("lm_eval", reason="needs the lm-eval extra (pip install 'forgetlab[lm-eval]')")

DOCS = [{"question": "The capital of France is", "choices": ["Paris", "Rome", "Oslo"], "answer": 0},
        {"question": f"{FORGET_WORD} was born in", "choices": ["London", "a castle"], "answer": 1},
        {"question": "Two plus two is", "choices": ["four", "five", "six"], "answer": 0}]


def _task(tmp_path) -> str:
    data = tmp_path / "docs.jsonl"
    data.write_text("".join(json.dumps(d) + "\n" for d in DOCS))
    folder = tmp_path / "tasks"
    folder.mkdir()
    (folder / "forgetlab_mc.yaml").write_text(
        "task: forgetlab_mc\ndataset_path: json\n"
        f"dataset_kwargs:\n  data_files:\n    test: {json.dumps(str(data))}\n"
        "test_split: test\noutput_type: multiple_choice\n"
        'doc_to_text: "{{question}}"\ndoc_to_choice: "{{choices}}"\ndoc_to_target: "{{answer}}"\n'
        "metric_list:\n  - metric: acc\n")
    return str(folder)


def test_local_completions_scores_a_local_task_against_the_served_guard(guard, guard_dirs, tmp_path,
                                                                         monkeypatch):
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-datasets"))
    engine = ServeEngine(guard, "transformers", ServeLimits(max_tokens=16, max_prompt_tokens=256),
                         model_name="guarded")
    with serve_in_thread(engine) as srv:
        out = simple_evaluate(
            model="local-completions",
            model_args={"base_url": srv.url + "/v1/completions", "model": "guarded", "tokenizer_backend":
                        "huggingface", "tokenizer": str(guard_dirs[0]), "num_concurrent": 1, "max_retries": 1},
            tasks=["forgetlab_mc"], task_manager=TaskManager(include_path=_task(tmp_path), include_defaults=False),
            log_samples=True, bootstrap_iters=0)
    acc = out["results"]["forgetlab_mc"]["acc,none"]
    samples = out["samples"]["forgetlab_mc"]
    assert 0.0 <= acc <= 1.0 and len(samples) == len(DOCS)
    tok = guard.tokenizer
    flags = []
    for s in samples:
        got = [float(r[0][0]) for r in s["resps"]]
        want = []
        for context, continuation in s["arguments"]:
            ctx = tok(context)["input_ids"]  # lm-eval splits context + continuation this way
            seq = tok(context + continuation)["input_ids"]
            flagged = bool(guard.classify([tok.decode(seq, skip_special_tokens=True)])[0])
            flags.append(flagged)
            scores = guard.score_sequences([seq], [len(seq)], [flagged], starts=[len(ctx)]).logprobs[0]
            want.append(float(np.sum(scores)))
        np.testing.assert_allclose(got, want, atol=1e-3)
        assert all(math.isfinite(g) for g in got)
    assert any(flags) and not all(flags)  # the forget question was scored corrupted, the others not
