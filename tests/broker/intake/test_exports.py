"""Every intake module names its public API in ``__all__``, and the package re-exports it all."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil

import pytest

import broker.intake

MODULES = sorted(
    info.name
    for info in pkgutil.iter_modules(broker.intake.__path__, prefix="broker.intake.")
    if not info.name.rsplit(".", 1)[-1].startswith("_")
)


def _defined_names(module: object) -> set[str]:
    """Public names a module binds at top level itself (not by import)."""
    tree = ast.parse(inspect.getsource(module))  # type: ignore[arg-type]
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return {n for n in names if not n.startswith("_")}


@pytest.mark.parametrize("name", MODULES)
def test_module_all_is_complete_and_reexported(name: str) -> None:
    module = importlib.import_module(name)
    exported = set(module.__all__)
    assert _defined_names(module) <= exported
    assert all(hasattr(module, n) for n in exported)
    if name not in broker.intake.SERVICE_MODULES:
        assert exported <= set(broker.intake.__all__)


def test_package_all_resolves() -> None:
    assert len(MODULES) >= 8
    assert all(hasattr(broker.intake, n) for n in broker.intake.__all__)
