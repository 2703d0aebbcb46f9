"""Code a newcomer can live in: every module says what it is for in its first line."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
MODULES = sorted(
    p for package in ("hub", "connectors", "workers", "personalize_hub", "local_personalize") for p in (ROOT / package).rglob("*.py")
)


@pytest.mark.parametrize("path", MODULES, ids=[str(p.relative_to(ROOT)) for p in MODULES])
def test_module_opens_with_a_one_line_docstring(path):
    tree = ast.parse(path.read_text())
    doc = ast.get_docstring(tree)
    if path.name == "__init__.py" and not tree.body:
        return  # an empty package marker
    assert doc, f"{path.relative_to(ROOT)} has no module docstring"
    assert doc.splitlines()[0].strip(), "the first line says what the module is for"
