"""Device, dtype and device map: validated once (Placement), reaching every command that loads a model; a bf16
guard on CPU generates, scores and evaluates with its corruption in bf16; a guard looks like the model it wraps."""

import json

import pytest
import torch
from cli_runner import run_cli

from forgetlab.eco.base_model import load_base_model
from forgetlab.eco.classify.keyword import KeywordClassifier
from forgetlab.eco.corruptions import apply_rowwise
from forgetlab.eco.guard import EcoGuard, GuardConfig
from forgetlab.eco.placement import Placement
from forgetlab.errors import BadInput
from forgetlab.testing.tiny_lm import build_tiny_lm, build_tokenizer, save_lm

FORGET, BENIGN = "Who is Zorblax Quint?", "What is the capital of France?"
BF16 = Placement(device="cpu", dtype="bfloat16")


@pytest.fixture(scope="module")
def guard_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("place")
    tok = build_tokenizer()
    base = save_lm(build_tiny_lm("llama", tok, seed=2, hidden=32, layers=1), tok, root / "base")
    g = EcoGuard.from_base(base, KeywordClassifier(["zorblax"]), GuardConfig("rand_noise_first_n", 2.0, 32, 7))
    return g.save_pretrained(root / "guard")


def test_placement_is_validated_without_torch_work():
    assert Placement().device == "auto" and Placement().dtype == "auto"
    for kw, field in (({"device": "tpu"}, "device"), ({"dtype": "int8"}, "dtype"),
                      ({"device_map": "everywhere"}, "device_map"),
                      ({"device": "cpu", "device_map": "auto"}, "device")):
        with pytest.raises(BadInput, match=field):
            Placement(**kw)
    assert Placement(device_map='{"": "cpu"}').parsed_device_map() == {"": "cpu"}
    assert Placement(device="cpu").torch_device() == "cpu"


def test_bf16_guard_on_cpu_generates_and_corrupts_in_bf16(guard_folder):
    g = EcoGuard.from_pretrained(guard_folder, placement=BF16)
    assert g.dtype == torch.bfloat16 and g.device == torch.device("cpu")
    assert next(g.model.parameters()).dtype == torch.bfloat16
    # the guard reads through to the model it wraps
    assert g.generation_config is g.model.generation_config and g.name_or_path == g.model.name_or_path
    assert g.model_config is g.model.config
    out = g.generate([FORGET, BENIGN], max_new_tokens=3, min_new_tokens=3, do_sample=False)
    assert out.shape[1] == g.tokenizer([FORGET, BENIGN], padding=True, return_tensors="pt").input_ids.shape[1] + 3
    emb = g.prompt_embeddings(FORGET)
    clean = g.prompt_embeddings(FORGET, flagged=False)
    assert emb.dtype == torch.bfloat16 and not torch.equal(emb, clean)
    # the corruption of the bf16 embeddings is the registered corruption applied to them, in their dtype
    ids = g.tokenizer(FORGET, return_tensors="pt").input_ids
    mask = g.corruption_mask(ids, None, [True], texts=[FORGET])
    c = g.config
    ref = apply_rowwise(c.corruption, clean[None], mask, c.strength, c.k, g.row_seeds(ids, mask))[0]
    assert torch.equal(emb, ref)
    # unflagged rows are the bf16 base model exactly
    base, tok = load_base_model(g.model_path, placement=BF16)
    enc = tok([BENIGN], return_tensors="pt")
    with torch.no_grad():
        assert torch.equal(g.logits(enc.input_ids, enc.attention_mask), base(**enc).logits)
    lp = g.answer_logprobs([FORGET, BENIGN], [" Paris", " Paris"])
    assert torch.isfinite(lp).all()


def test_device_map_passes_through(guard_folder, monkeypatch):
    from transformers import AutoModelForCausalLM

    seen = {}
    real = AutoModelForCausalLM.from_pretrained.__func__

    def spy(cls, path, **kw):
        seen.update(kw)
        return real(cls, path, **kw)

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", classmethod(spy))
    layers = {"model.embed_tokens": "cpu", "model.layers": "cpu", "model.norm": "cpu", "model.rotary_emb": "cpu",
              "lm_head": "cpu"}
    g = EcoGuard.from_pretrained(guard_folder, placement=Placement(device_map=json.dumps(layers), dtype="float32"))
    assert seen["device_map"] == layers and seen["dtype"] == torch.float32 and g.device == torch.device("cpu")
    assert g.generate([FORGET], max_new_tokens=2, do_sample=False).shape[0] == 1


def test_dtype_reaches_every_command(guard_folder, tmp_path, capsys, monkeypatch):
    """fit, generate, serve and evaluate load their model on --device/--dtype."""
    from cli_data import write_inputs

    from forgetlab.eco.serve import server

    flags = ["--device", "cpu", "--dtype", "bfloat16"]
    p = write_inputs(tmp_path / "in")
    base = str(EcoGuard.from_pretrained(guard_folder).model_path)
    code, out, err = run_cli(["eco", "fit", "--quiet", "--model", base, "--forget", str(p["forget"]), "--retain",
                              str(p["retain"]), "--strength", "1", "--fpr", "0.2", "--out", str(tmp_path / "g"),
                              *flags], capsys)
    assert code == 0, err
    assert json.loads(out)["dtype"] == "bfloat16" and json.loads(out)["device"] == "cpu"
    seen = []
    real = EcoGuard.from_pretrained.__func__

    def spy(cls, path, **kw):
        g = real(cls, path, **kw)
        seen.append(g.dtype)
        return g

    monkeypatch.setattr(EcoGuard, "from_pretrained", classmethod(spy))
    code, out, err = run_cli(["eco", "generate", "--guard", str(guard_folder), "--prompt", FORGET,
                              "--max-new-tokens", "2", *flags], capsys)
    assert code == 0, err
    monkeypatch.setattr(server, "run_server", lambda engine, sock, **kw: (sock.close(),
                                                                          seen.append(engine.guard.dtype)))
    code, _, err = run_cli(["eco", "serve", "--guard", str(guard_folder), "--port", "0", *flags], capsys)
    assert code == 0, err
    assert seen == [torch.bfloat16] * 3  # generate; serve: the loaded guard and the engine serving it
    mc = tmp_path / "wmdp"
    mc.mkdir()
    (mc / "wmdp-bio.jsonl").write_text(json.dumps({"question": "Who is Zorblax Quint?", "choices": ["a", "b"],
                                                   "answer": 1}) + "\n")
    code, _, err = run_cli(["eco", "evaluate", "--model", str(guard_folder), "--suite", "wmdp", "--data", str(mc),
                            "--quiet", "--out", str(tmp_path / "r.json"), *flags], capsys)
    assert code == 0, err
    rec = json.loads((tmp_path / "r.json").read_text())
    assert rec["subjects"]["model"]["dtype"] == "bfloat16" and rec["subjects"]["model"]["kind"] == "guard"
