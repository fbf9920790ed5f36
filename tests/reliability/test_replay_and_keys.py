"""Replays (item 10) and the key lifecycle (item 11) through the real MASH intake.

A replayed disclosure is never applied twice, inside its lifetime or after it; tokens
from expired, not-yet-valid, revoked or unknown keys are refused; and rotating keys
while disclosures are queued loses nothing.

The running service reads the key registry once, at start (``Service.load``): it does
not pick up a rotation until it is restarted. The tests below exercise the restart path,
and show what happens when the signer is restarted before the verifier (refused tokens
are dead-lettered and audited, and re-driven once the intake has restarted).
"""

from __future__ import annotations

import asyncio
import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from joserfc.jwk import OKPKey
from sqlalchemy import select
from sqlmodel import col

from broker.db import DbReplayStore, session_scope
from broker.envelope import EnvelopeLimits
from broker.keys import (
    JWKS_FILE,
    generate_party_keys,
    private_key_path,
    revoke_key,
    rotate_party_keys,
)
from broker.messaging import list_dead_letters, redrive
from broker.models import AuditKind, MashAlert, OutboxMessage, RawMessage
from broker.outbox import outbox_backlog
from broker.runtime import Runtime
from broker.service import Service
from tests.integration.helpers import publish_native
from tests.reliability import forge
from tests.reliability.conftest import make_settings
from tests.reliability.helpers import (
    MASH,
    alerts,
    audit_kinds,
    audit_verifies,
    count,
    dead_lettered,
    eventually,
    expected_mash_alerts,
    mash_events,
    native_items,
    publish_disclosures,
    seal_for,
    stored_event_ids,
)
from tests.reliability.test_forged_disclosures import Forger

pytestmark = [pytest.mark.rabbitmq]


# --- replays ---------------------------------------------------------------------------------


async def test_replays_inside_and_outside_the_window_are_never_applied(
    db_url: str, amqp_url: str, keys_dir: Path
) -> None:
    # No clock skew, so a token's window closes exactly at its expiry.
    service = Service.load(make_settings(db_url, amqp_url, keys_dir, clock_skew_seconds=0))
    try:
        await _replays(service)
    finally:
        service.engine.dispose()


async def _replays(service: Service) -> None:
    (event_a, disclosure_a), (event_s, disclosure_s), *_ = mash_events(service)
    a_sealed = seal_for(service, event_a, disclosure_a)
    a = a_sealed.token.encode()
    # Long enough to be opened in time on a busy machine, short enough to wait out. Sealed
    # once the intake listens: starting it may take seconds when the machine is loaded.
    short = EnvelopeLimits(lifetime=timedelta(seconds=6), clock_skew=timedelta(0))

    async with Runtime(service, ["intake"]) as runtime:
        consumer = runtime.consumers[0]
        short_sealed = seal_for(service, event_s, disclosure_s, limits=short)
        s = short_sealed.token.encode()

        def handled() -> int:
            return consumer.stats.acked + consumer.stats.rejected

        # As the relay publishes them: the message id is the token id.
        await publish_disclosures(service, [(a_sealed.jti, a), (short_sealed.jti, s)])
        await eventually(lambda: alerts(service) == 2, what="both originals stored")
        inside = [
            (a_sealed.jti, a),  # the same message again: a redelivery, acked, no new effect
            *[(f"a-replay-{n}", a) for n in range(20)],  # the same token, new message ids
            ("a-resealed", seal_for(service, event_a, disclosure_a).token.encode()),
        ]
        before = handled()
        await publish_disclosures(service, inside)
        await eventually(
            lambda: handled() - before == len(inside),
            what=lambda: f"inside replays ({consumer.stats}, {consumer.in_flight} in flight)",
        )

        # Outside the window: the short token has expired and its id has been forgotten.
        wait = (short_sealed.expires_at - datetime.now(UTC)).total_seconds()
        await asyncio.sleep(max(0.0, wait) + 1.0)
        assert DbReplayStore(service.engine).prune() >= 1
        outside = [("s-replay-after-expiry", s), (short_sealed.jti, s)]
        before = handled()
        await publish_disclosures(service, outside)
        await eventually(lambda: handled() - before == len(outside), what="outside replays")

    assert alerts(service) == 2
    assert audit_kinds(service)[AuditKind.DELIVERED] == 2
    refused = dead_lettered(service)
    assert refused == {
        **{f"a-replay-{n}": "replay" for n in range(20)},
        "s-replay-after-expiry": "claims_invalid",
    }
    audit_verifies(service)


# --- keys that must not be used ----------------------------------------------------------------


def _add_keys(keys_dir: Path, party: str, *, now: datetime, validity: timedelta) -> dict[str, str]:
    """Register extra keys for ``party`` with the given validity; kid by use."""
    scratch = keys_dir.parent / f"scratch-{party}-{int(now.timestamp())}"
    sig, enc = generate_party_keys(scratch, party, now=now, validity=validity)
    registry = json.loads((keys_dir / JWKS_FILE).read_text())
    registry["keys"] += json.loads((scratch / JWKS_FILE).read_text())["keys"]
    (keys_dir / JWKS_FILE).write_text(json.dumps(registry))
    for path in (scratch / "private" / party).iterdir():
        shutil.copy2(path, keys_dir / "private" / party / path.name)
    shutil.rmtree(scratch)
    return {"sig": sig.kid, "enc": enc.kid}


async def test_expired_not_yet_valid_revoked_and_unknown_keys_are_refused(
    db_url: str, amqp_url: str, keys_dir: Path
) -> None:
    now = datetime.now(UTC)
    states = {
        "expired": _add_states(keys_dir, now - timedelta(days=2), timedelta(days=1)),
        "not-yet-valid": _add_states(keys_dir, now + timedelta(days=30), timedelta(days=365)),
        "revoked": _add_states(keys_dir, now - timedelta(days=1), timedelta(days=365)),
    }
    for kid in states["revoked"].values():
        revoke_key(keys_dir, kid, now=now)
    service = Service.load(make_settings(db_url, amqp_url, keys_dir))
    try:
        cases = _key_cases(service, states, now)
        await publish_disclosures(service, list(cases.items()))
        async with Runtime(service, ["intake"]) as runtime:
            consumer = runtime.consumers[0]
            await eventually(lambda: consumer.stats.rejected + consumer.stats.acked >= len(cases))
        assert alerts(service) == 0
        assert dead_lettered(service) == dict.fromkeys(cases, "unknown_key")
        audit_verifies(service)
    finally:
        service.engine.dispose()


def _add_states(keys_dir: Path, now: datetime, validity: timedelta) -> dict[str, str]:
    broker = _add_keys(keys_dir, "wam-broker", now=now, validity=validity)
    mash = _add_keys(keys_dir, MASH, now=now, validity=validity)
    return {"broker-sig": broker["sig"], "mash-enc": mash["enc"]}


def _key_cases(
    service: Service, states: dict[str, dict[str, str]], now: datetime
) -> dict[str, bytes]:
    f = Forger.make(service)
    cases: dict[str, bytes] = {}
    for state, kids in states.items():
        sig_record = service.registry.get(kids["broker-sig"])
        private = forge.ed25519_private(_private(service, "wam-broker", sig_record.kid))
        # Issued while the key was valid (or now, for the future key), and not expired
        # itself: only the key's own state is wrong.
        iat = {
            "expired": sig_record.nbf + 60,
            "not-yet-valid": int(now.timestamp()),
            "revoked": int(now.timestamp()) - 3600,
        }[state]
        claims = f.fresh_claims(iat=iat, exp=iat + 6 * 86400)
        signed = forge.sign(claims, private, {**forge.JWS_HEADER, "kid": sig_record.kid})
        cases[f"signed-by-{state}-key"] = f.token(signed)
        enc_record = service.registry.get(kids["mash-enc"])
        cases[f"encrypted-to-{state}-key"] = forge.encrypt(
            f.signed(),
            forge.x25519_public(enc_record.public),
            {**forge.JWE_HEADER, "kid": enc_record.kid},
        )
    rogue = Ed25519PrivateKey.generate()
    cases["signed-by-unknown-key"] = f.token(
        forge.sign(f.fresh_claims(), rogue, {**forge.JWS_HEADER, "kid": "wam-broker-unknown"})
    )
    cases["encrypted-to-unknown-key"] = forge.encrypt(
        f.signed(),
        X25519PrivateKey.generate().public_key(),
        {**forge.JWE_HEADER, "kid": "wam-mash-unknown"},
    )
    return cases


def _private(service: Service, party: str, kid: str) -> OKPKey:
    return OKPKey.import_key(json.loads(private_key_path(service.keys_dir, party, kid).read_text()))


# --- rotation with disclosures in flight --------------------------------------------------------


async def test_rotation_with_disclosures_queued_loses_nothing(
    db_url: str, amqp_url: str, keys_dir: Path
) -> None:
    """Rotate the MASH's and the broker's keys while disclosures wait in the MASH queue and
    more are sealed by a service that has not yet seen the rotation; restart; all arrive."""
    settings = make_settings(db_url, amqp_url, keys_dir)
    before = Service.load(settings)
    try:
        async with Runtime(before, ["ingest", "relay"]) as runtime:
            await publish_native(before, native_items(1))
            first = len(native_items(1))
            await eventually(lambda: _drained(before, first), within=60, what="first batch relayed")
            rotate_party_keys(keys_dir, MASH)
            rotate_party_keys(keys_dir, "wam-broker")
            # Still running on the registry it loaded: it seals to the old keys.
            await publish_native(before, native_items(2))
            both = first + len(native_items(2))
            await eventually(lambda: _drained(before, both), within=60, what="second batch relayed")
            assert runtime.relay is not None
        old_mash_kid = before.registry.encryption_key(MASH).kid
    finally:
        before.engine.dispose()

    after = Service.load(settings)
    try:
        assert after.registry.encryption_key(MASH).kid != old_mash_kid
        async with Runtime(after, ("ingest", "relay", "intake")):
            await publish_native(after, native_items(3))
            expected = expected_mash_alerts(after, (1, 2, 3))
            ingested = sum(len(native_items(seed)) for seed in (1, 2, 3))
            await eventually(
                lambda: alerts(after) == len(expected) and _drained(after, ingested),
                within=90,
                what=f"{len(expected)} alerts",
            )
        assert sorted(map(str, stored_event_ids(after))) == sorted(map(str, expected))
        assert dead_lettered(after) == {}
        audit_verifies(after)
    finally:
        after.engine.dispose()


async def test_signer_restarted_before_the_intake_dead_letters_then_redrives(
    db_url: str, amqp_url: str, keys_dir: Path
) -> None:
    """The wrong order: the broker signs with its new key while the intake still runs on the
    old registry. Those disclosures are refused (unknown key), dead-lettered and audited;
    once the intake restarts, re-driving the dead-letter queue delivers every one."""
    settings = make_settings(db_url, amqp_url, keys_dir)
    old = Service.load(settings)
    try:
        async with Runtime(old, ["intake"]) as intake:
            rotate_party_keys(keys_dir, "wam-broker")
            new = Service.load(settings)
            expected = expected_mash_alerts(new, (1,))
            async with Runtime(new, ["ingest", "relay"]):
                await publish_native(new, native_items(1))
                consumer = intake.consumers[0]
                await eventually(
                    lambda: _drained(new, len(native_items(1))), within=60, what="relayed"
                )
                sent = count(new, OutboxMessage, col(OutboxMessage.recipient) == MASH)
                await eventually(lambda: consumer.stats.rejected >= sent, what="refusals")
        assert alerts(old) == 0
        refused = dead_lettered(old)
        assert len(refused) == sent
        assert set(refused.values()) == {"unknown_key"}
        async with Runtime(new, ["intake"]):
            queue = new.topology.recipient_queues[MASH]
            result = await redrive(settings.amqp, queue)
            assert result.moved >= sent
            await eventually(lambda: alerts(new) == len(expected), what="re-driven alerts")
        # Dead-lettering is at least once: a refusal whose copy (with its reason) was not
        # confirmed in time is also rejected to the broker, which dead-letters the original,
        # and the copy may still land. Such a second letter, moved or left behind, is of a
        # disclosure delivered once all the same.
        with session_scope(new.sessions) as session:
            delivered = set(session.execute(select(col(MashAlert.jti))).scalars())
        left = await list_dead_letters(settings.amqp, queue)
        assert {letter.message_id for letter in left.letters} <= delivered
        audit_verifies(new)
        new.engine.dispose()
    finally:
        old.engine.dispose()


def _drained(service: Service, ingested: int) -> bool:
    """Every one of ``ingested`` native messages stored, and what they caused published
    (not only the first batch's: the backlog is also empty between two batches)."""
    return count(service, RawMessage) == ingested and outbox_backlog(service) == 0
