"""The layers stay as docs/architecture.md draws them: nothing imports upward, and no module import cycles."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).parents[2]
LAYERS = ("hub", "connectors", "workers", "personalize_hub")
# What each layer may import of the project; the vendor libraries the engine must not name.
ALLOWED = {"hub": {"hub"}, "connectors": {"hub", "connectors"},
           "workers": {"hub", "connectors", "workers"}, "personalize_hub": set(LAYERS)}
VENDOR_LIBRARIES = {"boto3", "botocore", "aiobotocore", "aiokafka", "celery", "kombu", "confluent_kafka"}


def _modules() -> dict[str, Path]:
    modules = {}
    for layer in LAYERS:
        for path in (ROOT / layer).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            modules[name.removesuffix(".__init__")] = path
    return modules


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """Every module `name` imports (at any depth of its body), as written: `from a import b` counts a.b if a.b
    is a module, else a."""
    found = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
            found |= {f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names}
    return found


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def test_no_layer_imports_a_layer_above_it():
    upward = sorted(f"{name} → {target}" for name, targets in GRAPH.items() for target in targets
                    if target.split(".")[0] in LAYERS and target.split(".")[0] not in ALLOWED[name.split(".")[0]])
    assert not upward


def test_nothing_below_the_application_imports_it():
    """The application composes hub, connectors and workers; none of them imports it, not even lazily inside a
    function or by name through importlib (workers reach it through an entry point, workers/context.py)."""
    below = ("hub", "connectors", "workers")
    named = sorted(f"{name} → {target}" for name, targets in GRAPH.items() if name.split(".")[0] in below
                   for target in targets if target.split(".")[0] == "personalize_hub")
    by_name = sorted(name for name, path in MODULES.items() if name.split(".")[0] in below
                     for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.Call)
                     and _called(node) in ("import_module", "__import__") and node.args
                     and isinstance(node.args[0], ast.Constant) and str(node.args[0].value).startswith("personalize_hub"))
    assert not named and not by_name


def test_no_two_layers_import_each_other():
    between = {(name.split(".")[0], target.split(".")[0]) for name, targets in GRAPH.items() for target in targets
               if target.split(".")[0] in LAYERS and target.split(".")[0] != name.split(".")[0]}
    assert not sorted((a, b) for a, b in between if (b, a) in between)


def _called(call: ast.Call) -> str | None:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None


def test_the_engine_names_no_vendor_library():
    named = sorted(f"{name} → {target}" for name, targets in GRAPH.items() if name.split(".")[0] == "hub"
                   for target in targets if target.split(".")[0] in VENDOR_LIBRARIES)
    assert not named


def test_no_module_import_cycles():
    def project(target: str) -> str | None:
        while target and target not in MODULES:
            target = target.rpartition(".")[0]
        return target or None

    edges = {name: {t for t in map(project, targets) if t and t != name} for name, targets in GRAPH.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in edges[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in edges:
        if node not in index:
            visit(node)
    assert not cycles


def test_the_synthetic_shop_imports_no_project_package():
    """synthetic_shop serves tests, benches, local_personalize and the demo alike, so it may import none of them."""
    path = ROOT / "synthetic_shop" / "__init__.py"
    named = sorted(target for target in _imports("synthetic_shop", path)
                   if target.split(".")[0] in (*LAYERS, "local_personalize", "bench", "tests"))
    assert not named
