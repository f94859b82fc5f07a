"""Nothing lost, nothing silent (grok commands and the shared file helpers): a second writer of an output folder
is refused, every listed bad input and fault is one line with the stated exit code, and nothing is left
half-written or created before the checks that refuse a command."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys

import pytest
from cli_runner import run_cli

from forgetlab.errors import ForgetlabError
from forgetlab.folders import claim_out_dir
from forgetlab.runs import host_tag, iter_jsonl, read_json, write_folder_atomically

TINY = ["--p", "7", "--width", "8", "--steps", "3", "--quiet"]


def one_line(err: str) -> bool:
    return err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err


def test_a_second_writer_of_a_run_folder_is_refused_and_the_first_result_kept(tmp_path, capsys):
    out = tmp_path / "run"
    with claim_out_dir(out):  # another command is writing this folder right now
        code, stdout, err = run_cli(["grok", "train", *TINY, "--out", str(out)], capsys)
        assert code == 2 and one_line(err) and "writing it now" in err and stdout == ""
        code, _, err = run_cli(["grok", "train", *TINY, "--out", str(out), "--overwrite"], capsys)
        assert code == 2 and "writing it now" in err  # --overwrite does not break a live claim
    assert not out.exists()  # the holder wrote nothing and its folder went with it
    assert run_cli(["grok", "train", *TINY, "--out", str(out)], capsys)[0] == 0
    first = (out / "summary.json").read_text()
    code, _, err = run_cli(["grok", "train", *TINY, "--seed", "5", "--out", str(out)], capsys)
    assert code == 2 and "empty or new folder" in err and (out / "summary.json").read_text() == first
    assert not (out / ".forgetlab.lock").exists()


def test_two_processes_training_into_one_folder(tmp_path):
    """Two real processes on one --out: exactly one result, written whole; the other is refused or finds it."""
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "forgetlab", "grok", "train", *TINY, "--out", str(out)]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(120), *p.communicate()) for p in procs]
    codes = sorted(r[0] for r in results)
    assert codes == [0, 2], results
    winner = next(r for r in results if r[0] == 0)
    loser = next(r for r in results if r[0] == 2)
    assert json.loads(winner[1]) == json.loads((out / "summary.json").read_text())
    assert one_line(loser[2]) and ("writing it now" in loser[2] or "empty or new folder" in loser[2])


def test_a_run_too_large_for_memory_is_refused_before_anything_is_created(tmp_path, capsys):
    out = tmp_path / "never"
    code, _, err = run_cli(["grok", "train", "--p", "9973", "--width", "100000", "--out", str(out)], capsys)
    assert code == 2 and one_line(err) and "GiB" in err and "p/width" in err
    assert not out.exists()


def test_a_full_disk_is_one_line_exit_1_and_leaves_nothing(tmp_path, capsys, monkeypatch):
    import forgetlab.grok.record as record

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "x"))

    monkeypatch.setattr(record, "save_tensors", full)
    out = tmp_path / "run"
    code, _, err = run_cli(["grok", "train", *TINY, "--out", str(out)], capsys)
    assert code == 1 and one_line(err) and "No space left on device" in err
    assert not out.exists() and not list(tmp_path.glob(".run.*"))


def test_prune_refuses_an_unfinished_run(tmp_path, capsys):
    out = tmp_path / "run"
    assert run_cli(["grok", "train", *TINY, "--out", str(out)], capsys)[0] == 0
    (out / "summary.json").unlink()
    code, _, err = run_cli(["grok", "prune", str(out)], capsys)
    assert code == 2 and one_line(err) and "did not finish" in err and not (out / "prune.json").exists()


def test_prune_with_a_config_that_is_not_utf8(tmp_path, capsys):
    out = tmp_path / "run"
    assert run_cli(["grok", "train", *TINY, "--out", str(out)], capsys)[0] == 0
    (out / "config.json").write_bytes(b'{"config": "\xff\xfe"}')
    code, _, err = run_cli(["grok", "prune", str(out)], capsys)
    assert code == 2 and one_line(err) and "not UTF-8" in err


def test_json_and_jsonl_readers_refuse_bad_bytes_and_deep_nesting(tmp_path):
    p = tmp_path / "a.json"
    p.write_bytes(b"\xff\xfe{}")
    with pytest.raises(ForgetlabError, match="not UTF-8"):
        read_json(p)
    p.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ForgetlabError, match="nested too deeply"):
        read_json(p)
    q = tmp_path / "a.jsonl"
    q.write_text('{"prompt": "x"}\n' + '{"a": ' * 100_000 + "1" + "}" * 100_000 + "\n")
    with pytest.raises(ForgetlabError, match=r"line 2.*nested too deeply"):
        list(iter_jsonl(q))


@pytest.mark.parametrize(("args", "words"), [
    (["--grid", "alpha=0.5", "--set", "p=7", "--max-memory", "nan"], "max_memory"),
    (["--grid", "alpha=0.5", "--set", "p=7", "--max-memory", "inf"], "max_memory"),
], ids=["nan", "inf"])
def test_sweep_memory_limit_must_be_finite(tmp_path, capsys, args, words):
    code, _, err = run_cli(["grok", "sweep", "--out", str(tmp_path / "s"), "--quiet", *args], capsys)
    assert code == 2 and one_line(err) and words in err and not (tmp_path / "s").exists()


@pytest.mark.parametrize(("text", "words"), [
    (b"[fixed]\np = 7\n\xff\n", "UTF-8"),
    (b"# nothing but a comment\n", "at least one"),
    (b"[sweep]\nname = 'x'\n", "at least one"),
    (b"[sweep]\nmax_memory_gb = nan\n[grid]\nalpha = [0.5]\n", "max_memory"),
], ids=["not-utf8", "only-a-comment", "only-sweep-settings", "nan-memory"])
def test_bad_sweep_specs_are_one_line(tmp_path, capsys, text, words):
    spec = tmp_path / "spec.toml"
    spec.write_bytes(text)
    code, _, err = run_cli(["grok", "sweep", "--spec", str(spec), "--out", str(tmp_path / "s"), "--quiet"], capsys)
    assert code == 2 and one_line(err) and words in err and not (tmp_path / "s").exists()


def test_a_full_disk_during_a_sweep_is_one_line_exit_1(tmp_path, capsys, monkeypatch):
    """The disk fills while the sweep writes its first run record: exit 1, one line, no record, no temp file."""
    import forgetlab.grok.sweep.store as store

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "s" / "runs"))

    monkeypatch.setattr(store, "atomic_write_json", full)
    code, out, err = run_cli(["grok", "sweep", "--out", str(tmp_path / "s"), "--quiet", "--set", "p=7", "--set",
                              "width=8", "--set", "steps=3", "--grid", "alpha=0.5"], capsys)
    assert code == 1 and one_line(err) and "No space left on device" in err and out == ""
    assert not [p for p in (tmp_path / "s" / "runs").iterdir()]


def test_killed_writers_temp_folders_are_cleaned_live_ones_kept(tmp_path):
    dead = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True).stdout)
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        killed = tmp_path / f".guard.{host_tag()}-{dead}-0123abcd.tmp"
        running = tmp_path / f".guard.{host_tag()}-{live.pid}-4567cdef.tmp"
        other = tmp_path / f".other.{host_tag()}-{dead}-89abcdef.tmp"
        for d in (killed, running, other):
            d.mkdir()
            (d / "half.bin").write_bytes(b"x")
        write_folder_atomically(tmp_path / "guard", lambda d: (d / "f").write_text("1"))
        assert not killed.exists() and running.exists() and other.exists()  # only this folder's, only dead ones
        assert (tmp_path / "guard" / "f").read_text() == "1"
    finally:
        live.kill()
        live.wait()


@pytest.mark.parametrize("out", [".", "", "..", "ABS"])
def test_the_current_folder_or_one_holding_it_is_refused_as_out_and_nothing_is_left(tmp_path, capsys, monkeypatch,
                                                                                      out):
    """`--out . --overwrite` failed on the swap (EBUSY: 'Device or resource busy: .', naming no field) and left an
    empty hidden `.old` folder behind; the current folder and its parents are now refused up front."""
    here = tmp_path / "here"
    here.mkdir()
    (here / "notes.txt").write_text("keep")
    monkeypatch.chdir(here)
    code, stdout, err = run_cli(["grok", "train", *TINY, "--out", str(tmp_path) if out == "ABS" else out,
                                 "--overwrite"], capsys)
    assert code == 2 and one_line(err) and err.startswith("error: out:") and "current" in err and stdout == ""
    assert sorted(p.name for p in here.iterdir()) == ["notes.txt"] and [p.name for p in tmp_path.iterdir()] == ["here"]


def test_a_command_writing_inside_its_out_still_takes_the_current_folder(tmp_path, capsys, monkeypatch):
    """Only commands that swap their folder whole refuse `--out .`; `grok reproduce` (a resumable cache of
    cases) writes files inside it."""
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(["grok", "reproduce", "--cases", "A0", "--out", ".", "--quiet"], capsys)
    assert code == 0, err
    assert (tmp_path / "reproduce.json").is_file()


def test_an_out_that_is_a_link_to_a_folder_is_written_through(tmp_path, capsys):
    """Swapping a folder in whole put it over the link itself ('Is a directory'); the folder the link names is
    replaced and the link kept."""
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    code, _, err = run_cli(["eco", "world", "--out", str(tmp_path / "link"), "--layouts", "wmdp", "--quiet"], capsys)
    assert code == 0, err
    assert (tmp_path / "link").is_symlink() and (tmp_path / "real" / "world.json").is_file()


def test_eco_world_overwrite_replaces_the_whole_world(tmp_path, capsys):
    """`eco world --overwrite` kept the old world's layouts and stray files beside the new world.json (a
    100-author tofu/ next to a 20-author wmdp/); it now swaps the folder whole, and refuses a negative seed and
    a layout named twice on one line."""
    out = tmp_path / "w"
    assert run_cli(["eco", "world", "--out", str(out), "--layouts", "tofu", "--quiet"], capsys)[0] == 0
    (out / "mine.txt").write_text("stray")
    code, _, err = run_cli(["eco", "world", "--out", str(out), "--authors", "20", "--layouts", "wmdp",
                            "--overwrite", "--quiet"], capsys)
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["wmdp", "world.json"]
    for argv, line in ((["--seed", "-1"], "error: seed: got -1; allowed: an integer >= 0\n"),
                       (["--layouts", "tofu,tofu"], "error: layouts: got 'tofu,tofu'; allowed: each layout once")):
        code, _, err = run_cli(["eco", "world", "--out", str(tmp_path / "x"), *argv, "--quiet"], capsys)
        assert code == 2 and err.startswith(line) and not (tmp_path / "x").exists()


def test_a_failed_swap_leaves_no_hidden_old_folder(tmp_path, monkeypatch):
    """The swap's first rename failing (here: made to fail) removes the empty `.old` folder it had reserved."""
    (tmp_path / "g").mkdir()
    (tmp_path / "g" / "f").write_text("old")
    calls = []

    def failing_replace(src, dst):
        calls.append(os.path.basename(dst))
        raise OSError(16, "Device or resource busy")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError):
        write_folder_atomically(tmp_path / "g", lambda d: (d / "f").write_text("new"), replace=lambda old: True)
    monkeypatch.undo()
    assert len(calls) == 1 and calls[0].startswith(".g.") and "old" in calls[0]  # the swap's first rename
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g"] and (tmp_path / "g" / "f").read_text() == "old"


def test_an_existing_empty_folder_is_replaced_by_a_folder_write(tmp_path):
    (tmp_path / "g").mkdir()
    assert write_folder_atomically(tmp_path / "g", lambda d: (d / "f").write_text("1"), replace=lambda old: False)
    assert (tmp_path / "g" / "f").read_text() == "1"


def test_os_errors_reaching_the_command_line_are_one_line(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, _, err = run_cli(["grok", "train", *TINY, "--out", str(blocker / "sub")], capsys)
    assert code == 2 and one_line(err)
    assert err.startswith(f"error: out: got '{blocker / 'sub'}'; allowed: a folder this user can create and write")
    assert not os.path.exists(blocker / "sub")


def test_an_os_error_on_a_hidden_temporary_file_names_the_file_asked_for(tmp_path):
    """'Is a directory: .rr2.5bce98-18179-294d6ca9.tmp' named our hidden temporary file; the line names the
    path the command was writing."""
    from forgetlab.cli import os_error_line
    from forgetlab.runs import make_temp

    tmp = make_temp(tmp_path, "report.md")
    line = os_error_line(IsADirectoryError(21, "Is a directory", str(tmp)))
    assert line == f"Is a directory: {tmp_path / 'report.md'}"
    folder = make_temp(tmp_path, "run", folder=True)  # a file inside a hidden folder names the folder asked for
    assert os_error_line(PermissionError(13, "Permission denied", str(folder / "model.safetensors"))) == (
        f"Permission denied: {tmp_path / 'run' / 'model.safetensors'}")
    assert os_error_line(OSError(9, "Bad file descriptor", 999)) == "Bad file descriptor: 999"  # not a path
    assert os_error_line(FileNotFoundError(2, "No such file", b"/x")) == "No such file: /x"


@pytest.mark.parametrize("signum, code, line", [(2, 130, "error: interrupted"), (15, 143, "error: terminated")])
def test_ctrl_c_or_sigterm_says_so_exits_128_plus_n_and_leaves_no_folder(tmp_path, signum, code, line):
    """SIGINT while training: one line on stderr (it was silent), the shell's 130, the claimed folder gone.
    SIGTERM (timeout, kill, a scheduler) likewise, with 143: it used to kill the process and leave the folder
    holding only its lock file."""
    import signal
    import time

    from forgetlab.runs import LOCK_NAME

    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "forgetlab", "grok", "train", "--p", "31", "--width", "32",
                             "--steps", "1000000", "--quiet", "--threads", "1", "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            # a test run started in the background (`make test &`) inherits SIGINT ignored, and
                            # Python then installs no handler: give the child the default, as a terminal does
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 60
        while not (out / LOCK_NAME).exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert (out / LOCK_NAME).exists(), "the command never claimed its folder"
        time.sleep(0.5)  # inside the training loop
        proc.send_signal(signum)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()  # a no-op when it ended; else it would keep training a million steps
        proc.wait()
    assert proc.returncode == code and stdout == "" and stderr.strip() == line
    assert not out.exists()
