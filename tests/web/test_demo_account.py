"""The serving demo's member of staff: made once, a new password each run, both roles."""

from __future__ import annotations

import pytest

from broker.api.auth import AccountStore, CredentialRefused, Role
from broker.demo import DEMO_STAFF, _demo_account
from broker.service import Service


def test_the_demo_account_is_made_then_given_a_new_password(web_service: Service) -> None:
    first = _demo_account(web_service)
    second = _demo_account(web_service)
    assert first != second
    store = AccountStore(web_service.sessions)
    identity, _ = store.authenticate(DEMO_STAFF, second)
    assert identity.roles == frozenset({Role.INTAKE, Role.MANAGER})
    with pytest.raises(CredentialRefused):
        store.authenticate(DEMO_STAFF, first)
