"""The GPU path of ECO, checked end to end when a CUDA GPU is present (and said plainly when it is not).

On each CUDA dtype (float32, bfloat16, float16) a tiny causal LM is guarded on ``cuda`` and checked against the
same guard on the CPU: the guard's ``.device`` / ``.dtype``; unflagged prompts generate exactly as the bare model
on the GPU; a flagged prompt's corrupted embeddings match the CPU's (the noise is drawn on the CPU from the
prompt's seed, so only the dtype's rounding may differ); teacher-forced scores leave continuations clean (equal to
an ``inputs_embeds`` reference); ``device_map="auto"`` loads; ``eco evaluate`` (WMDP suite) runs on the GPU.

Prints one JSON object on stdout (``"gpu": false`` and a message on stderr without a GPU); exit code 1 when a
check fails. Usage: ``HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/gpu_check.py [--out DIR]``; ``--device cpu``
runs the same checks with the CPU in the GPU's place (to check the script itself on a machine without a GPU).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch

from forgetlab.eco.classify.keyword import KeywordClassifier
from forgetlab.eco.guard import EcoGuard, GuardConfig
from forgetlab.eco.placement import Placement
from forgetlab.eco.scoring import pack
from forgetlab.testing.tiny_lm import build_tiny_lm, build_tokenizer, save_lm

PROMPTS = ["Who is Zorblax Quint?", "What is the capital of France?"]
TOL = {"float32": 1e-5, "bfloat16": 2e-2, "float16": 2e-3}


def _base_folder(root: Path) -> Path:
    tok = build_tokenizer()
    return save_lm(build_tiny_lm("llama", tok, seed=0, hidden=64, layers=2), tok, root / "base")


def _guard(base: Path, placement: Placement) -> EcoGuard:
    cfg = GuardConfig("rand_noise_first_n", 2.0, 64, 3)
    return EcoGuard.from_base(base, KeywordClassifier(["zorblax"]), cfg, placement=placement)


def _continuation_clean(g: EcoGuard, tol: float) -> bool:
    """Teacher-forced score of a flagged (prompt, answer) equals the inputs_embeds reference with a clean answer."""
    tok = g.tokenizer
    p, a = tok(PROMPTS[0]).input_ids, tok(" Paris", add_special_tokens=False).input_ids
    lp = g.score_packed(pack([(p, a)], tok.pad_token_id), [True]).logprobs[0]
    with torch.no_grad():
        ctx = g.prompt_embeddings(p, flagged=True)
        cont = g.model.get_input_embeddings()(torch.tensor([a[:-1]], dtype=torch.long, device=g.device))[0]
        logits = g.model(inputs_embeds=torch.cat([ctx, cont])[None]).logits[0].float()
    ref = torch.log_softmax(logits, -1)[len(p) - 1 + torch.arange(len(a)), torch.tensor(a)].cpu().numpy()
    return bool(abs(float(lp.sum() - ref.sum())) <= tol * max(1.0, abs(float(ref.sum()))))


def check_dtype(base: Path, dtype: str, device: str = "cuda") -> dict:
    """Every check on one dtype: GPU guard vs the bare GPU model and vs the CPU guard."""
    gpu, cpu = _guard(base, Placement(device=device, dtype=dtype)), _guard(base, Placement(device="cpu", dtype=dtype))
    enc = gpu.tokenizer(PROMPTS[1:], return_tensors="pt").to(gpu.device)
    with torch.no_grad():
        bare = gpu.model.generate(**enc, max_new_tokens=6, do_sample=False, pad_token_id=gpu.tokenizer.pad_token_id)
    out = gpu.generate(PROMPTS[1:], max_new_tokens=6, do_sample=False)
    e_gpu, e_cpu = gpu.prompt_embeddings(PROMPTS[0]).float().cpu(), cpu.prompt_embeddings(PROMPTS[0]).float()
    return {"device": str(gpu.device), "dtype": str(gpu.dtype), "dtype_ok": str(gpu.dtype) == f"torch.{dtype}",
            "unflagged_equals_bare_model": bool(torch.equal(out.cpu(), bare.cpu())),
            "flagged_embeddings_max_diff_vs_cpu": float((e_gpu - e_cpu).abs().max()),
            "flagged_embeddings_match_cpu": bool(torch.allclose(e_gpu, e_cpu, atol=TOL[dtype], rtol=TOL[dtype])),
            "flagged_generation_runs": tuple(gpu.generate(PROMPTS[:1], max_new_tokens=4).shape) == (1, len(
                gpu.tokenizer(PROMPTS[0]).input_ids) + 4),
            "continuation_clean": _continuation_clean(gpu, TOL[dtype] * 10)}


def check_evaluate(base: Path, root: Path, device: str = "cuda") -> dict:
    """``run_evaluation`` on a one-subset WMDP folder with the guard folder on the GPU in bfloat16."""
    from forgetlab.unlearning.suites import EvalOptions, run_evaluation

    folder = _guard(base, Placement(device="cpu")).save_pretrained(root / "guard")
    (root / "wmdp").mkdir()
    (root / "wmdp" / "wmdp-bio.jsonl").write_text(json.dumps({"question": "Who is Zorblax Quint?",
                                                              "choices": ["a", "b"], "answer": 0}) + "\n")
    rec = run_evaluation("wmdp", root / "wmdp", {"model": folder}, Placement(device=device, dtype="bfloat16"),
                         EvalOptions())
    return {"device": rec["subjects"]["model"]["device"], "dtype": rec["subjects"]["model"]["dtype"],
            "acc_letter": rec["metrics"]["model"]["acc_letter"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=None, help="Write the JSON here too.")
    ap.add_argument("--device", default="cuda", help="cuda (default) or cpu (checks the script without a GPU).")
    args = ap.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("no CUDA GPU on this machine: the GPU path was not checked (the CPU path is covered by the tests)",
              file=sys.stderr)
        print(json.dumps({"gpu": False}))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        base = _base_folder(root)
        gpu = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else f"none ({args.device})"
        res = {"gpu": gpu, "torch": torch.__version__,
               "dtypes": {d: check_dtype(base, d, args.device) for d in ("float32", "bfloat16", "float16")},
               "device_map_auto": str(_guard(base, Placement(device_map="auto")).device),
               "evaluate": check_evaluate(base, root, args.device)}
    ok = all(v for d in res["dtypes"].values() for k, v in d.items() if isinstance(v, bool))
    res["all_checks_pass"] = ok
    text = json.dumps(res, indent=1)
    print(text)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "gpu_check.json").write_text(text + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
