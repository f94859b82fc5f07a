"""The code stays readable: no function in ``forgetlab/`` has a body over 60 lines (signature and docstring
not counted), and every module says what it is for in a docstring."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2] / "forgetlab"
MAX_BODY_LINES = 60


def _functions(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node


def _body_lines(fn: ast.FunctionDef) -> int:
    body = fn.body
    if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant):
        body = body[1:]  # the docstring
    if not body:
        return 0
    return body[-1].end_lineno - body[0].lineno + 1


def test_no_long_functions():
    long = []
    for path in sorted(ROOT.rglob("*.py")):
        for fn in _functions(ast.parse(path.read_text())):
            n = _body_lines(fn)
            if n > MAX_BODY_LINES:
                long.append(f"{path.relative_to(ROOT.parent)}:{fn.lineno} {fn.name} ({n} lines)")
    assert not long, "split these into named steps: " + "; ".join(long)


def test_every_module_has_a_docstring():
    missing = [str(p.relative_to(ROOT.parent)) for p in sorted(ROOT.rglob("*.py"))
               if ast.get_docstring(ast.parse(p.read_text())) is None]
    assert not missing, "modules without a docstring: " + ", ".join(missing)
