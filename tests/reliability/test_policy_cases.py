"""Policy under random (event, agreement) cases (item 12): nothing outside the agreement.

Reuses the policy suite's strategies and its oracle (tests/broker/policy): every decision
is checked against a plain re-statement of the agreement: no recipient the agreement does
not name for the event, no field outside that recipient's allow-list, nothing that was not
in the event. 1,000 cases by default; ``pytest -m soak`` runs 100,000 in seeded batches.
"""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import HealthCheck, given, settings

from broker.policy import Agreement
from schemas import Event
from tests.broker.policy.strategies import agreements, events, instants
from tests.broker.policy.test_properties import _property, run_seeded_batch

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


#: The soak's 100,000 cases, in seeded batches of 2,000 (about 30 s of a core each): one
#: hypothesis run of 100,000 examples grew past 2 GB and did not finish in 90 minutes.
#: Seeds start at 1,000 so these cases differ from the policy suite's own soak.
SOAK_BATCHES = 50
SOAK_BATCH_SIZE = 2_000


@pytest.mark.soak
@pytest.mark.parametrize("batch", range(SOAK_BATCHES))
def test_a_hundred_thousand_random_cases_share_only_as_agreed(batch: int) -> None:
    run_seeded_batch(1_000 + batch, SOAK_BATCH_SIZE)
