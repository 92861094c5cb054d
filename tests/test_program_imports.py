"""The Pulumi program (`__main__.py`, `components/`) never imports `tools/` or `tests/`, not even inside a function.

`pulumi up` runs the program with requirements.txt only; tools/ holds offline and CI helpers with their own
dependencies. Checked on the syntax tree, so a lazy import inside a hook counts too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PROGRAM_FILES = sorted([REPO / "__main__.py", *(REPO / "components").glob("*.py")])
FORBIDDEN = ("tools", "tests")


def forbidden_imports(source: str) -> list[str]:
    """`line: module` for every import of a forbidden package in `source`."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [node.module]
        else:
            continue
        found += [f"{node.lineno}: {m}" for m in modules if m.split(".")[0] in FORBIDDEN]
    return found


@pytest.mark.parametrize("path", PROGRAM_FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_program_file_imports_nothing_from_tools_or_tests(path: Path) -> None:
    assert forbidden_imports(path.read_text()) == []


def test_the_check_sees_imports_inside_functions_and_from_imports() -> None:
    source = "import os\n\ndef hook():\n    from tools.verify import verify_endpoint\n    import tests.lifecycle\n"
    assert forbidden_imports(source) == ["4: tools.verify", "5: tests.lifecycle"]
    assert forbidden_imports("from toolsy import x\nfrom . import tools\n") == []
