"""Fixtures for the policy tests: the shipped agreement and a fixed decision time."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from broker.policy import Agreement, load_agreement

#: The agreement the project ships, which these tests read like a specification.
AGREEMENT_PATH = Path(__file__).resolve().parents[3] / "policy" / "agreement.yaml"

#: Decisions are made at a fixed instant inside the agreement's period.
AT = datetime(2026, 11, 20, 22, 0, tzinfo=UTC)


@pytest.fixture(scope="session")
def agreement() -> Agreement:
    """The shipped agreement, loaded once."""
    return load_agreement(AGREEMENT_PATH)


@pytest.fixture(autouse=True)
def _soak_only_when_asked(request: pytest.FixtureRequest) -> None:
    """Soak tests run only when selected with ``-m soak`` (the default suite stays fast)."""
    if request.node.get_closest_marker("soak") and "soak" not in (
        request.config.option.markexpr or ""
    ):
        pytest.skip("soak: run with -m soak")
