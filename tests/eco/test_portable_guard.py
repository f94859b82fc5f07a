"""Portable guard folders: the base model referenced relative to the guard or by hub id and commit, always with
checksums; moving both folders keeps the guard loadable; a missing or tampered model is refused."""

import json
import shutil

import pytest
import torch

from forgetlab.eco.base_model import resolve_model
from forgetlab.eco.classify.keyword import KeywordClassifier
from forgetlab.eco.guard import EcoGuard, GuardConfig
from forgetlab.errors import BadInput, ForgetlabError
from forgetlab.testing.tiny_lm import build_tiny_lm, build_tokenizer, save_lm

PROMPTS = ["Who is Zorblax Quint?", "What is the capital of France?"]
GEN = {"max_new_tokens": 4, "min_new_tokens": 4, "do_sample": False}
CFG = GuardConfig(corruption="rand_noise_first_n", strength=3.0, k=16, seed=5)


@pytest.fixture(scope="module")
def tiny():
    tok = build_tokenizer()
    return build_tiny_lm("gpt2", tok, seed=4, hidden=32, layers=1), tok


def _flip_last_byte(path):
    data = path.read_bytes()
    path.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))


def test_moving_guard_and_model_together_keeps_it_loadable(tiny, tmp_path):
    model, tok = tiny
    base = save_lm(model, tok, tmp_path / "site" / "models" / "tiny")
    g = EcoGuard.from_base(base, KeywordClassifier(["zorblax"]), CFG)
    out = g.generate(PROMPTS, **GEN)
    d = g.save_pretrained(tmp_path / "site" / "guards" / "g")
    rec = json.loads((d / "guard.json").read_text())["model"]
    assert rec["kind"] == "local" and rec["path"] == "../../models/tiny" and rec["files"]["model.safetensors"]
    shutil.move(str(tmp_path / "site"), str(tmp_path / "moved"))  # both folders, one move
    loaded = EcoGuard.from_pretrained(tmp_path / "moved" / "guards" / "g")
    assert loaded.model_path == (tmp_path / "moved" / "models" / "tiny").resolve()
    assert torch.equal(loaded.generate(PROMPTS, **GEN), out)
    # the guard moved alone: the model is missing where it was referenced, and the old absolute path is gone too
    shutil.move(str(tmp_path / "moved" / "guards"), str(tmp_path / "alone"))
    with pytest.raises(ForgetlabError, match=r"base model folder is missing \(looked for .*models/tiny"):
        EcoGuard.from_pretrained(tmp_path / "alone" / "g")


def test_guard_moved_alone_finds_the_model_where_it_was(tiny, tmp_path):
    model, tok = tiny
    base = save_lm(model, tok, tmp_path / "models" / "tiny")
    d = EcoGuard.from_base(base, KeywordClassifier(["zorblax"]), CFG).save_pretrained(tmp_path / "g")
    shutil.move(str(d), str(tmp_path / "elsewhere" / "deeper" / "g"))
    assert EcoGuard.from_pretrained(tmp_path / "elsewhere" / "deeper" / "g").model_path == base.resolve()


def test_tampered_or_swapped_model_is_refused(tiny, tmp_path):
    model, tok = tiny
    base = save_lm(model, tok, tmp_path / "m")
    d = EcoGuard.from_base(base, KeywordClassifier(["zorblax"]), CFG).save_pretrained(tmp_path / "g")
    _flip_last_byte(base / "model.safetensors")
    with pytest.raises(ForgetlabError, match=r"model\.safetensors does not match its record"):
        EcoGuard.from_pretrained(d)
    (base / "model.safetensors").unlink()
    with pytest.raises(ForgetlabError, match=r"model\.safetensors is missing"):
        EcoGuard.from_pretrained(d)


def _fake_hub(cache, repo, commit, src):
    """A Hugging Face hub cache holding ``repo`` at ``commit`` (``refs/main`` points at it), as a download leaves."""
    root = cache / f"models--{repo.replace('/', '--')}"
    shutil.copytree(src, root / "snapshots" / commit)
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "main").write_text(commit)


def test_hub_model_reference_with_revision_and_checksums(tiny, tmp_path, monkeypatch):
    import huggingface_hub.constants as hc

    model, tok = tiny
    commit = "0123456789abcdef0123456789abcdef01234567"
    _fake_hub(tmp_path / "hub", "acme/tiny-gpt2", commit, save_lm(model, tok, tmp_path / "src"))
    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(tmp_path / "hub"))
    src = resolve_model("acme/tiny-gpt2")
    assert src.hub_id == "acme/tiny-gpt2" and src.revision == commit
    g = EcoGuard.from_base("acme/tiny-gpt2", KeywordClassifier(["zorblax"]), CFG, revision="main")
    d = g.save_pretrained(tmp_path / "g")
    rec = json.loads((d / "guard.json").read_text())["model"]
    assert rec == {"kind": "hub", "hub_id": "acme/tiny-gpt2", "revision": commit, "files": rec["files"]}
    assert torch.equal(EcoGuard.from_pretrained(d).generate(PROMPTS, **GEN), g.generate(PROMPTS, **GEN))
    _flip_last_byte(tmp_path / "hub" / "models--acme--tiny-gpt2" / "snapshots" / commit / "model.safetensors")
    with pytest.raises(ForgetlabError, match="does not match its record"):
        EcoGuard.from_pretrained(d)
    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(ForgetlabError, match=f"acme/tiny-gpt2 at revision {commit} is not in the local"):
        EcoGuard.from_pretrained(d)
    with pytest.raises(BadInput, match="model"):
        resolve_model("not a model id")
    with pytest.raises(BadInput, match="revision"):
        resolve_model(tmp_path / "src", "v1")


def test_older_guard_records_with_absolute_paths_still_load(tiny, tmp_path):
    model, tok = tiny
    base = save_lm(model, tok, tmp_path / "m")
    d = EcoGuard.from_base(base, KeywordClassifier(["zorblax"]), CFG).save_pretrained(tmp_path / "g")
    meta = json.loads((d / "guard.json").read_text())
    meta["format_version"] = 2  # what forgetlab wrote before format 3: no positions, no guard.sha256
    del meta["config"]["positions"]
    meta["model"] = {"path": str(base.resolve()), "copied": False, "files": meta["model"]["files"]}
    (d / "guard.json").write_text(json.dumps(meta))
    (d / "guard.sha256").unlink()
    assert EcoGuard.from_pretrained(d).model_path == base.resolve()
