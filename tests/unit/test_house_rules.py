"""The size rules of the house, checked: no module over ~300 lines, no function over ~60 (tests aside).
The import rules are import-linter's (pyproject.toml), run by scripts/test.sh."""

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MAX_MODULE_LINES = 320
MAX_FUNCTION_LINES = 65


def _modules() -> list[Path]:
    found = []
    for top in ("server", "client", "stt_common", "scripts"):
        found += [p for p in (REPO / top).rglob("*.py") if "whisper.cpp" not in p.parts and "migrations" not in p.parts]
    return sorted(found)


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(REPO)))
def test_module_and_function_sizes(path):
    source = path.read_text()
    assert source.count("\n") <= MAX_MODULE_LINES, f"{path.name}: {source.count(chr(10))} lines"
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            assert length <= MAX_FUNCTION_LINES, f"{path.name}:{node.lineno} {node.name} is {length} lines"
