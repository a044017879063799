"""The package's layers, checked on its import graph (every import statement, including those
inside functions and under ``TYPE_CHECKING``, so a lazy import cannot hide a cycle).

From the bottom up (``../shared/DESIGN.md``)::

    schema, resources  <  workload  <  hardware  <  config  <  sim  <  analysis  <  env
                       <  plots  <  study  <  cli

A module imports only modules of its own layer or of layers below it; no two modules import
each other, even indirectly; no module imports another module's private (``_name``) names; the
core never imports ``baselines``, ``agents``, torch or stable-baselines3 (the command line, at
the top, may import ``agents``). The package's ``__init__`` is the public facade and is exempt.
"""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "llm_serving_env"
LAYERS: tuple[tuple[str, ...], ...] = (
    ("schema", "resources"),
    ("workload",),
    ("hardware",),
    ("config",),
    ("sim",),
    ("analysis",),
    ("env",),
    ("plots",),
    ("study",),
    ("cli",),
)
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}
FORBIDDEN_IN_CORE = ("baselines", "agents", "torch", "stable_baselines3", "sb3_contrib")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules(top: str) -> dict[str, Path]:
    return {module_name(p): p for p in sorted((ROOT / top).rglob("*.py"))}


CORE = modules(PACKAGE)


def imports_of(path: Path, name: str) -> list[tuple[str, list[str], int]]:
    """(imported module, names taken from it, line) for every import in the file; relative
    imports resolved against ``name``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_package = path.name == "__init__.py"
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, [], node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                base = name.split(".")
                base = base if is_package else base[:-1]
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([module] if module else []))
            found.append((module, [alias.name for alias in node.names], node.lineno))
    return found


def resolve(module: str, names: list[str]) -> list[str]:
    """The core modules an import statement depends on: ``from pkg import sub`` names the
    submodule ``pkg.sub`` when it exists, else the package itself."""
    targets = []
    for taken in names or [""]:
        sub = f"{module}.{taken}"
        targets.append(sub if taken and sub in CORE else module)
    return [t for t in targets if t in CORE]


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


GRAPH: dict[str, set[str]] = {
    name: {t for module, taken, _ in imports_of(path, name) for t in resolve(module, taken)}
    - {name}
    for name, path in CORE.items()
}


def test_every_core_module_has_a_layer() -> None:
    unplaced = sorted({layer_of(m) for m in CORE if m != PACKAGE} - set(RANK))
    assert not unplaced, f"folders or modules with no layer in LAYERS: {unplaced}"


@pytest.mark.parametrize("name", sorted(m for m in CORE if m != PACKAGE))
def test_imports_only_its_own_layer_and_below(name: str) -> None:
    rank = RANK[layer_of(name)]
    upward = []
    for module, taken, line in imports_of(CORE[name], name):
        for target in resolve(module, taken):
            if target == PACKAGE:
                upward.append(f"line {line}: the package facade {PACKAGE!r}")
            elif RANK[layer_of(target)] > rank:
                upward.append(f"line {line}: {target} (layer {layer_of(target)!r})")
    assert not upward, f"{name} imports from layers above it: {upward}"


def test_no_import_cycles() -> None:
    graph = {name: deps for name, deps in GRAPH.items() if name != PACKAGE}
    try:
        tuple(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as err:
        pytest.fail(f"import cycle: {' -> '.join(err.args[1])}")


def test_a_cycle_is_detected() -> None:
    """The cycle check itself can fail."""
    with pytest.raises(graphlib.CycleError):
        tuple(graphlib.TopologicalSorter({"a": {"b"}, "b": {"a"}}).static_order())


def test_no_private_names_across_modules() -> None:
    offenders = []
    for top in (PACKAGE, "baselines", "agents"):
        for name, path in modules(top).items():
            for module, taken, line in imports_of(path, name):
                private = [t for t in taken if t.startswith("_") and not t.startswith("__")]
                if private and module != name:
                    offenders.append(f"{name} line {line}: {private} from {module}")
    assert not offenders, offenders


def test_core_does_not_import_plugins_or_learning_libraries() -> None:
    offenders = []
    for name, path in CORE.items():
        allowed = ("agents",) if name == f"{PACKAGE}.cli" else ()
        for module, _, line in imports_of(path, name):
            top = module.split(".")[0]
            if top in FORBIDDEN_IN_CORE and top not in allowed:
                offenders.append(f"{name} line {line}: {module}")
    assert not offenders, offenders


def test_baselines_use_only_the_engine_and_below() -> None:
    """A scheduler sees the engine's interface, not the analysis, env, plots or study layers."""
    limit = RANK["sim"]
    offenders = []
    for name, path in modules("baselines").items():
        for module, taken, line in imports_of(path, name):
            if module.split(".")[0] == "agents":
                offenders.append(f"{name} line {line}: {module}")
            for target in resolve(module, taken):
                if target == PACKAGE or RANK[layer_of(target)] > limit:
                    offenders.append(f"{name} line {line}: {target}")
    assert not offenders, offenders
