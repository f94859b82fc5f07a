"""Nothing lost, nothing silent (ECO): a guard folder's own description is covered by a checksum kept apart from
it, its paths stay inside the folder or the declared model, loaders refuse anything else on one line; `eco
fit` refuses a second writer, a full disk and an unwritable --out before or without leaving anything behind."""

from __future__ import annotations

import errno
import hashlib
import json

import pytest
import torch
from cli_data import write_inputs
from cli_runner import run_cli

from forgetlab.eco.classify.keyword import KeywordClassifier
from forgetlab.eco.guard import EcoGuard, GuardConfig
from forgetlab.errors import ForgetlabError
from forgetlab.folders import claim_out_dir
from forgetlab.testing.tiny_lm import build_tiny_lm, build_tokenizer, save_lm


def one_line(err: str) -> bool:
    return err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
    tok = build_tokenizer()
    return save_lm(build_tiny_lm("llama", tok, seed=0), tok, tmp_path_factory.mktemp("m") / "base")


def saved(base_dir, folder, copy_model=False):
    guard = EcoGuard.from_base(base_dir, KeywordClassifier(["zorblax"]),
                               GuardConfig("rand_noise_first_n", 4.0, 8, seed=1))
    return guard.save_pretrained(folder, copy_model=copy_model)


def edit(folder, change, reseal=False):
    meta = json.loads((folder / "guard.json").read_text())
    change(meta)
    (folder / "guard.json").write_text(json.dumps(meta))
    if reseal:  # what a deliberate editor would also do: record the checksum again
        digest = hashlib.sha256((folder / "guard.json").read_bytes()).hexdigest()
        (folder / "guard.sha256").write_text(f"{digest}  guard.json\n")


def test_guard_json_is_covered_by_its_own_checksum(base_dir, tmp_path, capsys):
    g = saved(base_dir, tmp_path / "g")
    assert (g / "guard.sha256").read_text().split() == [hashlib.sha256((g / "guard.json").read_bytes()).hexdigest(),
                                                         "guard.json"]
    edit(g, lambda m: m["config"].update(strength=0.0))  # switching the guard off by hand
    with pytest.raises(ForgetlabError, match=r"guard\.json does not match its checksum"):
        EcoGuard.from_pretrained(g)
    capsys.readouterr()
    code, _, err = run_cli(["eco", "classify", "--guard", str(g), "--prompt", "hi"], capsys)
    assert code == 2 and one_line(err) and "guard.sha256" in err
    (g / "guard.sha256").unlink()
    with pytest.raises(ForgetlabError, match=r"guard\.sha256 is missing"):
        EcoGuard.from_pretrained(g)


@pytest.mark.parametrize(("change", "words"), [
    (lambda m: m["model"].update(path="../.."), r"config\.json is missing"),
    (lambda m: m["model"].update(path="/"), "/config.json is missing"),
    (lambda m: m["model"].update(files={}), "lists no config.json"),
    (lambda m: m["files"].update({"../../etc/passwd": "0" * 64}), "not a path inside the folder"),
    (lambda m: m["files"].update({"/etc/passwd": "0" * 64}), "not a path inside the folder"),
    (lambda m: m["config"].update(strength="4"), "config.strength"),
    (lambda m: m["config"].update(k=2.5), "config.k"),
    (lambda m: m["config"].update(flag_entities="yes"), "config.flag_entities"),
    (lambda m: m["config"].update(strength=-1.0), "config.strength"),
    (lambda m: m["config"].update(extra=1), "unknown config field"),
    (lambda m: m.update(classifier_type=7), "classifier_type"),
    (lambda m: m.update(files=[]), "files"),
    (lambda m: m.update(model="elsewhere"), "model"),
    (lambda m: m.update(format_version="3"), "format_version"),
], ids=["model-path-dotdot", "model-path-root", "model-files-empty", "files-dotdot", "files-absolute",
        "strength-string", "k-float", "flag-entities-string", "strength-negative", "unknown-config-field",
        "classifier-type-int", "files-list", "model-string", "format-version-string"])
def test_a_resealed_but_wrong_record_is_still_refused_on_one_line(base_dir, tmp_path, capsys, change, words):
    g = saved(base_dir, tmp_path / "g")
    edit(g, change, reseal=True)
    with pytest.raises(ForgetlabError, match=words):
        EcoGuard.from_pretrained(g)
    capsys.readouterr()
    code, _, err = run_cli(["eco", "generate", "--guard", str(g), "--prompt", "hi", "--quiet"], capsys)
    assert code == 2 and one_line(err)


def test_a_copied_model_must_stay_inside_the_guard_folder(base_dir, tmp_path):
    g = saved(base_dir, tmp_path / "g", copy_model=True)
    edit(g, lambda m: m["model"].update(path="../../somewhere"), reseal=True)
    with pytest.raises(ForgetlabError, match="not a path inside the folder"):
        EcoGuard.from_pretrained(g)


def test_a_guard_moved_with_a_relative_model_reference_still_loads(base_dir, tmp_path):
    """The checksum covers guard.json whatever its model reference says: a relative one (issue 15's portable
    guards) is resolved against the guard folder."""
    import shutil

    shutil.copytree(base_dir, tmp_path / "pair" / "base")
    g = saved(tmp_path / "pair" / "base", tmp_path / "pair" / "guard")
    edit(g, lambda m: m["model"].update(path="../base"), reseal=True)
    shutil.move(tmp_path / "pair", tmp_path / "moved")
    assert EcoGuard.from_pretrained(tmp_path / "moved" / "guard").classify(["zorblax?"]).tolist() == [True]


def test_a_pickle_bin_base_model_is_one_line(tmp_path, capsys, base_dir):
    import shutil

    bad = tmp_path / "pickled"
    shutil.copytree(base_dir, bad)
    (bad / "model.safetensors").unlink()
    torch.save({"not": "weights", "fn": print}, bad / "pytorch_model.bin")  # a pickle torch refuses to run
    inputs = write_inputs(tmp_path / "in")
    code, _, err = run_cli(["eco", "fit", "--model", str(bad), "--forget", str(inputs["forget"]), "--retain",
                            str(inputs["retain"]), "--strength", "1", "--quiet", "--out", str(tmp_path / "g")],
                           capsys)
    assert code == 2 and one_line(err) and "model" in err
    assert not (tmp_path / "g").exists()  # the claimed folder went away with the failure


def fit_argv(inputs, base_dir, out, *more):
    return ["eco", "fit", "--model", str(base_dir), "--forget", str(inputs["forget"]), "--retain",
            str(inputs["retain"]), "--strength", "1", "--fpr", "0.1", "--quiet", "--out", str(out), *more]


def _no_training(monkeypatch):
    import forgetlab.eco.cli as eco_cli

    def never(*a, **k):
        raise AssertionError("the guard must not be built before --out is claimed")

    monkeypatch.setattr(eco_cli, "_build_guard", never)


def test_fit_refuses_a_second_writer_before_any_work(tmp_path, capsys, base_dir, monkeypatch):
    _no_training(monkeypatch)
    inputs = write_inputs(tmp_path / "in")
    with claim_out_dir(tmp_path / "g"):
        code, _, err = run_cli(fit_argv(inputs, base_dir, tmp_path / "g"), capsys)
    assert code == 2 and one_line(err) and "writing it now" in err


def test_fit_refuses_an_unwritable_out_before_any_work(tmp_path, capsys, base_dir, monkeypatch):
    import forgetlab.folders as folders

    _no_training(monkeypatch)
    inputs = write_inputs(tmp_path / "in")

    def read_only(*a, **k):
        raise OSError(errno.EROFS, "Read-only file system", str(tmp_path / "ro"))

    monkeypatch.setattr(folders, "_lock", read_only)
    code, _, err = run_cli(fit_argv(inputs, base_dir, tmp_path / "ro"), capsys)
    assert code == 1 and one_line(err) and "Read-only file system" in err


def test_fit_on_a_full_disk_is_exit_1_and_leaves_no_folder(tmp_path, capsys, base_dir, monkeypatch):
    def full(self, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(EcoGuard, "save_pretrained", full)
    inputs = write_inputs(tmp_path / "in")
    code, _, err = run_cli(fit_argv(inputs, base_dir, tmp_path / "g"), capsys)
    assert code == 1 and one_line(err) and "No space left" in err
    assert not (tmp_path / "g").exists() and not list(tmp_path.glob(".g.*"))


def test_a_deeply_nested_jsonl_line_is_one_line(tmp_path, capsys, base_dir):
    inputs = write_inputs(tmp_path / "in")
    inputs["forget"].write_text('{"prompt": "x"}\n' + "[" * 50_000 + "]" * 50_000 + "\n")
    code, _, err = run_cli(fit_argv(inputs, base_dir, tmp_path / "g"), capsys)
    assert code == 2 and one_line(err) and "line 2" in err and not (tmp_path / "g").exists()


def test_fit_into_an_existing_empty_folder_writes_the_guard(tmp_path, capsys, base_dir):
    """An empty --out folder (made by the user beforehand) is a new folder: the fit writes its guard there,
    rather than training first and refusing the folder afterwards."""
    inputs = write_inputs(tmp_path / "in")
    (tmp_path / "g").mkdir()
    code, out, err = run_cli(fit_argv(inputs, base_dir, tmp_path / "g"), capsys)
    assert code == 0, err
    assert json.loads(out)["guard"] == str(tmp_path / "g")
    assert EcoGuard.from_pretrained(tmp_path / "g").config.strength == 1.0
