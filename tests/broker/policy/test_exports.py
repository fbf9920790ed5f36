"""``broker.policy`` exports exactly what its modules declare public."""

from __future__ import annotations

import importlib
import pkgutil

import broker.policy


def test_the_package_exports_every_modules_public_names() -> None:
    declared: set[str] = set()
    for info in pkgutil.iter_modules(broker.policy.__path__):
        module = importlib.import_module(f"broker.policy.{info.name}")
        for name in module.__all__:
            assert hasattr(module, name), f"{info.name}.__all__ names missing {name}"
        declared |= set(module.__all__)
    assert set(broker.policy.__all__) == declared
