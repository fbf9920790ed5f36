"""Render the scenario into every partner's native format and write the files."""

from __future__ import annotations

import importlib
from pathlib import Path

from broker.samples.scenario import make_scenario

__all__ = ["RENDERERS", "render_all", "write_samples"]

#: Modules with ``render(scenario) -> dict[str, bytes]``, one per partner format family.
RENDERERS = ("broker.samples.police", "broker.samples.health", "broker.samples.paris")


def render_all(seed: int) -> dict[str, bytes]:
    """Every sample file for ``seed``: relative path → native bytes."""
    scenario = make_scenario(seed)
    files: dict[str, bytes] = {}
    for module_name in RENDERERS:
        render = importlib.import_module(module_name).render
        rendered: dict[str, bytes] = render(scenario)
        clash = files.keys() & rendered.keys()
        if clash:
            raise ValueError(f"{module_name} renders files another renderer wrote: {sorted(clash)}")
        files.update(rendered)
    return files


def write_samples(seed: int, directory: Path) -> list[Path]:
    """Write every sample file for ``seed`` under ``directory``; return the paths written."""
    written = []
    for relative, data in sorted(render_all(seed).items()):
        path = directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        written.append(path)
    return written
