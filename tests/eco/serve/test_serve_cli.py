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
