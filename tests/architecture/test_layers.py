"""The dependency rule holds, and breaking it fails: import-linter's contracts (pyproject.toml) on the real tree
and on a copy with one upward import added."""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _lint(tree: Path) -> subprocess.CompletedProcess:
    """Run lint-imports with the project's contracts on the ``forgetlab`` package found under ``tree``."""
    exe = Path(sys.executable).with_name("lint-imports")
    return subprocess.run([str(exe), "--config", str(ROOT / "pyproject.toml"), "--no-cache"], cwd=tree,
                          env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True,
                          timeout=300)


def test_contracts_hold_on_the_tree():
    res = _lint(ROOT)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "broken" in res.stdout and "0 broken" in res.stdout


def _copy_with(tmp_path: Path, module: str, line: str) -> Path:
    tree = tmp_path / "tree"
    shutil.copytree(ROOT / "forgetlab", tree / "forgetlab", ignore=shutil.ignore_patterns("__pycache__"))
    target = tree / module
    target.write_text(target.read_text() + f"\n{line}\n")
    return tree


def test_an_upward_import_breaks_the_layers(tmp_path):
    res = _lint(_copy_with(tmp_path, "forgetlab/eco/hooks.py", "import forgetlab.unlearning.metrics  # noqa"))
    assert res.returncode != 0
    assert "One-way layers" in res.stdout and "BROKEN" in res.stdout
    assert "forgetlab.eco.hooks -> forgetlab.unlearning.metrics" in res.stdout


def test_a_cycle_inside_a_package_is_refused(tmp_path):
    line = "def _late():\n    from . import guard  # noqa"  # hidden inside a function: still an import
    res = _lint(_copy_with(tmp_path, "forgetlab/eco/hooks.py", line))
    assert res.returncode != 0 and "No import cycles" in res.stdout


HEAVY = ("torch", "transformers", "numpy", "safetensors", "matplotlib", "scipy", "pandas")


def test_the_command_line_starts_without_torch():
    """Building every command (as `forgetlab --help` does) imports none of the heavy libraries: the modules the
    CLI reaches at start-up (configs, registries, cli.py files) stay free of them, so help and bad-input errors
    answer at once. A fresh interpreter, since this test process has imported torch already."""
    probe = ("import sys\nfrom forgetlab import cli\ncli._mount_subcommands()\ncli.command()\n"
             f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    res = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"
