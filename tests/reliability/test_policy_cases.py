"""Policy under random (event, agreement) cases (item 12): nothing outside the agreement.

Reuses the policy suite's strategies and its oracle (tests/broker/policy): every decision
is checked against a plain re-statement of the agreement: no recipient the agreement does
not name for the event, no field outside that recipient's allow-list, nothing that was not
in the event. 1,000 cases by default; ``pytest -m soak`` runs 100,000.
"""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import HealthCheck, given, settings

from broker.policy import Agreement
from schemas import Event
from tests.broker.policy.strategies import agreements, events, instants
from tests.broker.policy.test_properties import _property

#: Cases in the default run: about 15 s of one core. The issue's 100,000 run under soak.
DEFAULT_CASES = 1_000


def _cases(count: int) -> settings:
    return settings(
        max_examples=count,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )


@_cases(DEFAULT_CASES)
@given(agreement=agreements(), event=events(), at=instants)
def test_random_cases_share_only_as_agreed(
    agreement: Agreement, event: Event, at: datetime
) -> None:
    _property(agreement, event, at)


@pytest.mark.soak
@_cases(100_000)
@given(agreement=agreements(), event=events(), at=instants)
def test_a_hundred_thousand_random_cases_share_only_as_agreed(
    agreement: Agreement, event: Event, at: datetime
) -> None:
    _property(agreement, event, at)
