"""The committed samples are what the generator makes, and every one translates."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters import AdapterContext, get_adapter
from broker.samples import render_all
from broker.samples.catalogue import adapter_for, sender_for

SAMPLES = Path(__file__).resolve().parents[1] / "samples"


def _committed() -> dict[str, bytes]:
    return {
        p.relative_to(SAMPLES).as_posix(): p.read_bytes()
        for p in SAMPLES.rglob("*")
        if p.is_file() and p.name != "README.md"
    }


def test_committed_samples_match_the_generator() -> None:
    assert _committed() == render_all(1), "run: mash-broker samples generate --seed 1"


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_sample_translates(seed: int) -> None:
    for relative, raw in render_all(seed).items():
        adapter = get_adapter(adapter_for(relative))
        context = AdapterContext(source_agency=sender_for(adapter.name))
        assert adapter.parse(raw, context), relative


def test_the_scenario_has_what_the_readme_promises() -> None:
    files = render_all(1)
    adapters = {adapter_for(name) for name in files}
    assert adapters == {"police", "hl7v2", "fhir", "paris-csv", "paris-xml"}
    police = get_adapter("police")
    found_here_from_slough = []
    for name, raw in files.items():
        if adapter_for(name) == "police" and name.endswith("found.json"):
            for event in police.parse(raw, AdapterContext(source_agency="tvp-police")):
                subject = event.subject
                if subject and subject.home_authority == "E06000039":
                    found_here_from_slough.append(event)
    assert found_here_from_slough, "a child from Slough is found in Windsor and Maidenhead"


def test_unknown_sample_paths_are_refused() -> None:
    with pytest.raises(ValueError, match="not a sample path"):
        adapter_for("notes/readme.txt")
