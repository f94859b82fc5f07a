"""The reproduce report: rendering, caching of stages, exit status, and the HTML in a real browser."""

import json
import os
import shutil
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pytest

from forgetlab.errors import BadInput
from forgetlab.registry import Registry
from forgetlab.reproduce import stage as stage_module
from forgetlab.reproduce.run import reproduce
from forgetlab.reproduce.stage import Claim, Figure, Stage, StageResult


def _fake_stage(calls: list[str], passed: bool = True):
    def run(folder: Path, scale: str, advance) -> StageResult:
        calls.append(scale)
        fig, ax = plt.subplots()
        ax.plot([0, 1], [0, 1], label="train")
        ax.set_xlabel("step")
        ax.set_ylabel("accuracy")
        ax.legend()
        fig.savefig(folder / "curve.png")
        plt.close(fig)
        advance(1.0)
        claim = Claim("grok", "A1", "test accuracy", "100%", "Sec. 3", "100.0%", ">= 99%", passed,
                      "" if passed else "1.0 points below 99%")
        return StageResult("fake", "Fake stage", "grok", [claim], [Figure("curve.png", "A curve")],
                           {"test_acc": 1.0}, seeds=[0], commands=["forgetlab grok train ..."])

    return run


@pytest.fixture
def fake_stages(monkeypatch):
    calls: list[str] = []
    monkeypatch.setattr(stage_module, "STAGES", Registry("stage", {"fake": Stage(
        "fake", "grok", "Fake stage", {"small": 1, "paper": 1, "smoke": 1}, _fake_stage(calls))}))
    monkeypatch.setattr("forgetlab.reproduce.run.source_digest", lambda: "digest")
    return calls


def test_report_written_and_stage_cached_on_rerun(tmp_path, fake_stages):
    results, paths = reproduce(tmp_path / "r", quiet=True, argv=["reproduce"])
    assert fake_stages == ["small"] and not results[0].cached
    data = json.loads(paths["json"].read_text())
    assert data["passed"] is True and data["claims"][0]["ours"] == "100.0%"
    assert "stages/fake/curve.png" in paths["md"].read_text()
    html = paths["html"].read_text()
    assert "data:image/png;base64," in html and "src='stages/" not in html
    results2, _ = reproduce(tmp_path / "r", quiet=True, argv=["reproduce"])
    assert fake_stages == ["small"], "a finished stage must be reused, not recomputed"
    assert results2[0].cached and results2[0].numbers == {"test_acc": 1.0}
    reproduce(tmp_path / "r", scale="paper", quiet=True, argv=["reproduce"])
    assert fake_stages == ["small", "paper"], "another scale is another cache key"


def test_failed_claim_is_named_with_its_miss(tmp_path, monkeypatch):
    calls: list[str] = []
    monkeypatch.setattr(stage_module, "STAGES", Registry("stage", {"fake": Stage(
        "fake", "grok", "Fake", {"small": 1, "paper": 1, "smoke": 1}, _fake_stage(calls, passed=False))}))
    _, paths = reproduce(tmp_path / "r", quiet=True, argv=[])
    md = paths["md"].read_text()
    assert "## Missed claims" in md and "1.0 points below 99%" in md
    assert json.loads(paths["json"].read_text())["passed"] is False


def test_bad_inputs(tmp_path, fake_stages):
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "x.txt").write_text("not a report")
    with pytest.raises(BadInput, match="out:"):
        reproduce(tmp_path / "other", quiet=True)
    with pytest.raises(BadInput, match="scale"):
        reproduce(tmp_path / "r", scale="huge", quiet=True)
    with pytest.raises(BadInput, match="only"):
        reproduce(tmp_path / "r", only="nope", quiet=True)


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def test_html_report_renders_in_headless_chromium(tmp_path, fake_stages):
    exe = _chromium()
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is required in CI (make test installs it)")
        pytest.skip("chromium not installed")
    playwright = pytest.importorskip("playwright.sync_api")
    _, paths = reproduce(tmp_path / "r", quiet=True, argv=[])
    errors: list[str] = []
    with playwright.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=exe, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run", "--disable-quic"])
        page = browser.new_page()
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(paths["html"].as_uri())
        sizes = page.eval_on_selector_all("img", "imgs => imgs.map(i => [i.complete, i.naturalWidth])")
        title = page.title()
        browser.close()
    assert title == "forgetlab reproduce"
    assert sizes and all(done and width > 0 for done, width in sizes), sizes
    assert errors == []
