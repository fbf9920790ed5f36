"""Each package's ``__all__`` names exactly its public members, and each name resolves."""

from __future__ import annotations

import importlib
import pkgutil
import types

import pytest

import adapters
import broker
import schemas

ROOTS = (broker, adapters, schemas)


def _packages() -> list[str]:
    names = []
    for root in ROOTS:
        names.append(root.__name__)
        for info in pkgutil.walk_packages(root.__path__, prefix=f"{root.__name__}."):
            if info.ispkg:
                names.append(info.name)
    return sorted(names)


@pytest.mark.parametrize("package_name", _packages())
def test_all_is_complete_and_resolves(package_name: str) -> None:
    package = importlib.import_module(package_name)
    exported = getattr(package, "__all__", None)
    assert exported is not None, f"{package_name} has no __all__"
    for name in exported:
        assert hasattr(package, name), f"{package_name}.__all__ names missing {name}"
    public = {
        name
        for name, value in vars(package).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and name not in {"annotations"}
    }
    assert public <= set(exported), f"{package_name}: not in __all__: {public - set(exported)}"
