"""`forgetlab eco serve`: one command serves a saved guard; bad options are one line and exit code 2."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import httpx
import pytest
from serve_helpers import FORGET_WORD, base_greedy

from forgetlab.cli import main
from forgetlab.eco.serve.http import FLAG_HEADER

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.mark.parametrize(("args", "needle"), [
    (["--guard", "/nonexistent/guard"], "guard"),
    (["--max-tokens", "0"], "max_tokens"),
    (["--max-concurrent", "-3"], "max_concurrent"),
    (["--backend", "tgi"], "transformers, vllm"),
    (["--port", "70000"], "port"),
])
def test_bad_options_are_one_line_exit_2(guard_dirs, capsys, args, needle):
    argv = ["eco", "serve", "--guard", str(guard_dirs[1]), *args]
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err and needle in err
    assert "Traceback" not in err


@pytest.mark.parametrize(("args", "line"), [
    (["--api-key", ""], "error: api_key: got ''; allowed: a non-empty key"),
    (["--model-name", " "], "error: model_name: got ' '; allowed: a non-empty model id"),
    (["--host", "999.1.1.1"], "error: host: got '999.1.1.1'; allowed: an address or name of this machine"),
    (["--port", "BUSY"], "error: port: got BUSY; allowed: a free TCP port"),
])
def test_an_empty_key_or_name_or_a_port_it_cannot_bind_is_refused_before_the_model_loads(
        capsys, monkeypatch, tmp_path, args, line):
    """An empty --api-key (an unset "$KEY") served without authentication and an empty --model-name fell back to
    the folder's name, silently; a busy port or unknown host surfaced as uvicorn's log lines and exit 3 after
    the model had loaded. Each is now one line, exit 2, before any load (the guard here does not exist)."""
    monkeypatch.delenv("FORGETLAB_API_KEY", raising=False)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        argv = ["eco", "serve", "--guard", str(tmp_path / "no-guard"), *[port if a == "BUSY" else a for a in args]]
        with pytest.raises(SystemExit) as exc:
            main(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.startswith(line.replace("BUSY", port)) and err.count("\n") == 1


def test_an_empty_key_in_the_environment_is_refused_too(capsys, monkeypatch, tmp_path):
    """click reads FORGETLAB_API_KEY="" as unset, which served without authentication."""
    monkeypatch.setenv("FORGETLAB_API_KEY", "")
    with pytest.raises(SystemExit) as exc:
        main(["eco", "serve", "--guard", str(tmp_path / "no-guard"), "--port", "0"])
    assert exc.value.code == 2 and capsys.readouterr().err.startswith("error: api_key: got ''")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_serve_command_end_to_end(guard_dirs, tiny_model, tiny_tokenizer):
    port = _free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "FORGETLAB_API_KEY": "k"}
    argv = ["eco", "serve", "--guard", str(guard_dirs[1]), "--port", str(port), "--model-name", "g",
            "--log-level", "info"]
    # the real entry point, in a fresh process
    proc = subprocess.Popen([sys.executable, "-m", "forgetlab", *argv], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, proc.stderr.read().decode()
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "server did not come up"
            time.sleep(0.2)
        assert httpx.get(url + "/v1/models", timeout=30).status_code == 401  # the key from the environment
        with httpx.Client(base_url=url, timeout=60, headers={"Authorization": "Bearer k"}) as http:
            assert http.get("/v1/models").json()["data"][0]["id"] == "g"
            r = http.post("/v1/completions", json={"model": "g", "prompt": "Paris is", "max_tokens": 6,
                                                   "temperature": 0})
            assert r.status_code == 200 and r.headers[FLAG_HEADER] == "false"
            ids = tiny_tokenizer("Paris is")["input_ids"]
            assert r.json()["choices"][0]["text"] == base_greedy(tiny_model, tiny_tokenizer, ids, 6)
            f = http.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": FORGET_WORD}],
                                                        "max_tokens": 3})
            assert f.status_code == 200 and f.headers[FLAG_HEADER] == "true"
    finally:
        proc.terminate()
        try:
            out, err = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
    # a server has no result: stdout stays empty; status and the access log are on stderr
    assert out == b"" and b"POST /v1/completions" in err
