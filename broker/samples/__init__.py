"""Synthetic partner messages for a realistic borough scenario (``mash-broker samples``)."""

from broker.samples.generate import RENDERERS, render_all, write_samples
from broker.samples.scenario import (
    Attendance,
    ChildRecord,
    Episode,
    IntelItem,
    Scenario,
    TrackerRow,
    make_scenario,
)

__all__ = [
    "RENDERERS",
    "Attendance",
    "ChildRecord",
    "Episode",
    "IntelItem",
    "Scenario",
    "TrackerRow",
    "make_scenario",
    "render_all",
    "write_samples",
]
