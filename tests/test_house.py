"""The house's structure, held by tests: layers, no circles, public names, one registry per concept.

Each package may import only packages of a lower layer (and its own modules), and only their
public names; the check catalogue and the check functions name the same checks; no command-line
tool pulls pytest in; every package says in its first words what it is.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from contracts import CATALOG
from scenarios import CHECKS

ROOT = Path(__file__).resolve().parents[1]
# Lower layers first: a package imports only from layers below its own.
LAYERS = {
    "contracts": 0,
    "mockllm": 1,
    "reports": 1,
    "reference_server": 2,
    "scenarios": 3,
    "loadtests": 3,
    "demo": 4,
    "bench": 4,
}
CLIS = ("mockllm", "reference_server", "scenarios", "loadtests", "reports", "demo")


def _modules() -> dict[str, Path]:
    found = {}
    for package in LAYERS:
        for path in sorted((ROOT / package).rglob("*.py")):
            if path.name.startswith("test_"):
                continue  # bench's pytest-benchmark file is a test
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


MODULES = _modules()


def _imports(module: str, path: Path) -> Iterator[tuple[int, str]]:
    """(line, absolute module name) of every import in the file, function-level ones included."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                name = ".".join([*base, *([node.module] if node.module else [])])
            else:
                name = node.module or ""
            yield node.lineno, name
            for alias in node.names:  # `from pkg import module` imports that module
                if f"{name}.{alias.name}" in MODULES:
                    yield node.lineno, f"{name}.{alias.name}"


def _edges() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for module, path in MODULES.items():
        for _, name in _imports(module, path):
            if name in MODULES and name != module:
                edges.setdefault(module, set()).add(name)
    return edges


def test_no_import_goes_up_a_layer_or_sideways() -> None:
    wrong = []
    for module, path in MODULES.items():
        own = module.split(".")[0]
        for line, name in _imports(module, path):
            other = name.split(".")[0]
            if other in LAYERS and other != own and LAYERS[other] >= LAYERS[own]:
                wrong.append(f"{path.relative_to(ROOT)}:{line}: {own} (layer {LAYERS[own]}) imports {name}")
    assert wrong == []


def test_no_import_of_another_packages_private_module() -> None:
    wrong = []
    for module, path in MODULES.items():
        own = module.split(".")[0]
        for line, name in _imports(module, path):
            top, *rest = name.split(".")
            if top in LAYERS and top != own and any(p.startswith("_") and not p.startswith("__") for p in rest):
                wrong.append(f"{path.relative_to(ROOT)}:{line}: imports {name}")
    assert wrong == []


def test_the_import_graph_has_no_circle() -> None:
    edges = _edges()
    state: dict[str, int] = {}  # 1: on the path, 2: done
    circles = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(edges.get(module, ())):
            if state.get(target) == 1:
                circles.append(" -> ".join([*path[path.index(target) :], target]))
            elif target not in state:
                visit(target, [*path, target])
        state[module] = 2

    for module in sorted(MODULES):
        if module not in state:
            visit(module, [module])
    assert circles == []


def test_the_check_functions_and_the_catalogue_name_the_same_checks() -> None:
    assert set(CHECKS) == set(CATALOG)


@pytest.mark.parametrize("package", [p for p in LAYERS if (ROOT / p / "__init__.py").exists()])
def test_every_package_says_what_it_is(package: str) -> None:
    doc = ast.get_docstring(ast.parse((ROOT / package / "__init__.py").read_text(encoding="utf-8"))) or ""
    assert len(doc.split()) >= 8 and "not built yet" not in doc.lower()


def test_no_command_line_tool_imports_pytest() -> None:
    code = f"import sys\nfor name in {CLIS!r}: __import__(name + '.__main__')\nprint('pytest' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_no_database_file_is_tracked() -> None:
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    if not tracked:
        pytest.skip("not a git checkout")
    assert [f for f in tracked if f.endswith((".sqlite3", ".sqlite", ".db"))] == []
