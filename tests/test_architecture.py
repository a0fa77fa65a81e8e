"""The package's import graph: no cycle, and nothing imports upward.

Read from the source (every import statement, those inside functions included), so
a lazy import that hides a cycle at run time still counts.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "confio_kms"

# Bottom to top. A module may import only modules of its own layer or below.
LAYERS: list[set[str]] = [
    {"exceptions", "networks", "redaction", "reporting", "models", "progress"},
    {"validation", "config", "chain", "sandbox", "sandbox_ed25519"},
    {"aws", "coalescing"},
    {"keys"},
    {"iam", "permissions", "cloudtrail"},
    {"envelope", "native"},
    {"kinds"},
    {"policy", "audit", "cache", "cost"},
    {"signing"},
    {"signer", "rotation"},
    {"manager", "multisig"},
    {"conf"},
    {"sponsor", "checks", "compat", "admin", "apps", "doctor", "management.base"},
    {"management.commands.*"},
]


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE).with_suffix("")
        if relative.parts[0] == "migrations" or relative.name == "__init__":
            continue
        found[".".join(relative.parts)] = path
    return found


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    package = name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                target = ".".join([*base, *([node.module] if node.module else [])])
            elif (node.module or "").startswith("confio_kms."):
                target = node.module.removeprefix("confio_kms.")  # type: ignore[union-attr]
            else:
                continue
            subs = {f"{target}.{a.name}".lstrip(".") for a in node.names}
            found |= (subs & known) or ({target} & known)
        elif isinstance(node, ast.Import):
            found |= {a.name.removeprefix("confio_kms.") for a in node.names} & known
    return found - {name}


def layer(name: str) -> int:
    for index, members in enumerate(LAYERS):
        if name in members or (name.startswith("management.commands.") and index == 12):
            return index
    raise AssertionError(f"confio_kms.{name} is in no layer: add it to LAYERS")


def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imports(name, path, set(found)) for name, path in found.items()}


def test_every_module_has_a_layer() -> None:
    for name in graph():
        layer(name)


def test_nothing_imports_upward() -> None:
    upward = [
        f"{name} (layer {layer(name)}) imports {dep} (layer {layer(dep)})"
        for name, deps in graph().items()
        for dep in deps
        if layer(dep) > layer(name)
    ]
    assert upward == []


def test_the_import_graph_has_no_cycle() -> None:
    edges = graph()
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        assert name not in path, "import cycle: " + " -> ".join([*path, name])
        if name in done:
            return
        for dep in sorted(edges[name]):
            visit(dep, [*path, name])
        done.add(name)

    for name in sorted(edges):
        visit(name, [])


def test_the_check_sees_imports_inside_functions() -> None:
    # policy imports the sandbox lazily, inside from_settings: the graph must have it.
    assert "sandbox" in graph()["policy"]
