"""Two boroughs' brokers for the cross-border tests: keys, settings, records, sealing."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from broker import envelope
from broker.crossborder import import_neighbour_keys
from broker.keys import KeyRegistry, PartyKeys, generate_party_keys
from broker.policy import Agreement, PartyKind, compile_policy, load_agreement
from broker.settings import (
    AmqpSettings,
    CrossBorderSettings,
    CryptoSettings,
    DatabaseSettings,
    IntakeSettings,
    Settings,
)
from schemas import Event, Provenance
from schemas.common import make_test_nhs_number

ROOT = Path(__file__).resolve().parents[2]
#: Borough A: Windsor and Maidenhead, the shipped agreement.
AGREEMENT_A = ROOT / "policy" / "agreement.yaml"
#: Borough B: Slough, a small agreement written for these tests.
AGREEMENT_B = Path(__file__).with_name("slough-agreement.yaml")

WINDSOR, SLOUGH, READING = "E06000040", "E06000039", "E06000038"
PARTY_A, PARTY_B = "wam-broker", "slough-broker"


@dataclass(frozen=True)
class BoroughKeys:
    """Key directories: each broker's own, and a stranger's that no registry trusts."""

    a: Path
    b: Path
    #: Keys of a forger claiming to be wam-broker, never exchanged with anyone.
    forger: Path


def make_borough_keys(base: Path) -> BoroughKeys:
    """Each borough makes its own keys; the two brokers then swap public keys only."""
    a, b, forger, bracknell = (base / name for name in ("a", "b", "forger", "bracknell"))
    for directory, own, agreement in ((a, PARTY_A, AGREEMENT_A), (b, PARTY_B, AGREEMENT_B)):
        parties = load_agreement(agreement).parties
        for party in [own, *(p.id for p in parties if p.kind is not PartyKind.NEIGHBOURING_BROKER)]:
            generate_party_keys(directory, party)
    generate_party_keys(bracknell, "bracknell-broker")
    generate_party_keys(forger, PARTY_A)
    # The exchange docs/operations.md describes: `keys export --party X` on one side,
    # `crossborder import-keys X FILE` on the other.
    import_neighbour_keys(b, KeyRegistry.load(a).to_jwks(PARTY_A), party=PARTY_A)
    import_neighbour_keys(a, KeyRegistry.load(b).to_jwks(PARTY_B), party=PARTY_B)
    import_neighbour_keys(
        a, KeyRegistry.load(bracknell).to_jwks("bracknell-broker"), party="bracknell-broker"
    )
    return BoroughKeys(a=a, b=b, forger=forger)


def borough_settings(*, side: str, keys: BoroughKeys, amqp_url: str, db_url: str) -> Settings:
    """Settings of broker A (Windsor and Maidenhead) or B (Slough)."""
    a = side == "a"
    return Settings(
        _env_file=None,
        environment="test",
        borough=WINDSOR if a else SLOUGH,
        agreement_path=AGREEMENT_A if a else AGREEMENT_B,
        amqp=AmqpSettings(url=SecretStr(amqp_url), timeout_seconds=5, delivery_limit=3),
        database=DatabaseSettings(url=SecretStr(db_url)),
        crypto=CryptoSettings(
            keys_dir=keys.a if a else keys.b, service_party=PARTY_A if a else PARTY_B
        ),
        crossborder=CrossBorderSettings(reconnect_delay_seconds=1, prefetch=10),
        intake=IntakeSettings(mash_party="wam-mash" if a else "slough-mash"),
    )


# --------------------------------------------------------------------------- police records


def _at(hours_ago: float) -> str:
    return (datetime.now(UTC) - timedelta(hours=hours_ago)).isoformat(timespec="seconds")


def _person(n: int, lives_in: str) -> dict[str, Any]:
    return {
        "forenames": f"Testchild{n}",
        "surname": "Crossfield",
        "date_of_birth": "2011-05-0" + str(1 + n % 9),
        "sex": "F",
        "police_person_ref": f"XB/{n:04d}",
        "nhs_number": make_test_nhs_number(7000 + n),
        "address": {
            "lines": [f"{n} Example Row"],
            "town": "Exampletown",
            "postcode": "SL1 1AA",
            "local_authority": lives_in,
        },
    }


def police_report(n: int, *, lives_in: str = SLOUGH, missing_from: str = SLOUGH) -> bytes:
    """A missing report: child ``n`` lives in ``lives_in``, last seen in Windsor, high risk."""
    return _dump(
        {
            "format_version": 1,
            "record_type": "missing_report",
            "record_id": f"XB-{n:04d}-R",
            "force_code": "43",
            "source_system": "niche-rms",
            "occurrence_ref": f"43/XB/{n:04d}",
            "episode_ref": f"EP-XB-{n:04d}",
            "missing_person": _person(n, lives_in),
            "report": {
                "reported_at": _at(3),
                "risk_grade": "HIGH",
                "last_seen": {
                    "description": "Riverside walk by the bridge",
                    "local_authority": WINDSOR,
                    "time": _at(4),
                },
                "missing_from": missing_from,
                "circumstances": "Did not return from school; phone switched off.",
            },
        }
    )


def police_found(n: int, *, lives_in: str = SLOUGH) -> bytes:
    """Child ``n`` found in Windsor by the police."""
    return _dump(
        {
            "format_version": 1,
            "record_type": "missing_found",
            "record_id": f"XB-{n:04d}-F",
            "force_code": "43",
            "source_system": "niche-rms",
            "occurrence_ref": f"43/XB/{n:04d}",
            "episode_ref": f"EP-XB-{n:04d}",
            "missing_person": _person(n, lives_in),
            "found": {
                "found_at": _at(1),
                "place": {"description": "Bus station", "local_authority": WINDSOR},
                "found_by": "POLICE",
                "returned_at": _at(0.5),
            },
        }
    )


def _dump(record: dict[str, Any]) -> bytes:
    return json.dumps(record).encode()


# --------------------------------------------------------------------------- sealing


def missing_found_event(*, lives_in: str = SLOUGH, placed_by: str | None = None) -> Event:
    """A canonical missing-found event of a child living in ``lives_in``, found in Windsor."""
    now = datetime.now(UTC)
    subject: dict[str, Any] = {
        "given_name": "Testchild",
        "family_name": "Crossfield",
        "date_of_birth": "2011-05-01",
        "nhs_number": make_test_nhs_number(7777),
        "home_address": {
            "lines": ["1 Example Row"],
            "postcode": "SL1 1AA",
            "local_authority": lives_in,
        },
    }
    if placed_by is not None:
        subject["looked_after"] = {"responsible_authority": placed_by, "placed_in": lives_in}
    return Event.model_validate(
        {
            "metadata": {
                "event_id": str(uuid.uuid4()),
                "occurred_at": (now - timedelta(hours=1)).isoformat(),
                "recorded_at": now.isoformat(),
                "source": {"agency": "tvp-police", "system": "niche-rms", "reference": "XB-1-F"},
                "correlation_id": "EP-XB-0001",
                "lawful_basis": "ca-2004-s11",
            },
            "subject": subject,
            "body": {
                "type": "missing.found",
                "episode_id": "EP-XB-0001",
                "found_at": (now - timedelta(hours=1)).isoformat(),
                "found_place": {"description": "Bus station", "local_authority": WINDSOR},
                "found_by": "police",
            },
        }
    )


def disclosure_to_b(agreement_a: Agreement, event: Event) -> dict[str, Any]:
    """What A's agreement discloses of ``event`` to Slough's broker (the minimised event)."""
    decision = compile_policy(agreement_a).evaluate(event, datetime.now(UTC))
    return decision.require(PARTY_B).event


def filled_paths(document: Mapping[str, Any], prefix: str = "") -> set[str]:
    """The paths of the fields that hold a value (not null, not an empty list) in a document.

    A canonical event written out in full lists every optional field, empty; what matters
    for minimisation is which fields carry data.
    """
    found: set[str] = set()
    for key, value in document.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            found |= filled_paths(value, f"{path}.")
        elif isinstance(value, list) and any(isinstance(v, dict) for v in value):
            for item in value:
                found |= filled_paths(item, f"{path}.")
        elif value is not None and value != []:
            found.add(path)
    return found


def seal_to_b(
    event: dict[str, Any],
    *,
    sender: PartyKeys,
    registry: KeyRegistry,
    event_id: uuid.UUID,
    rule_id: str = "cross-border-missing",
    jti: str | None = None,
) -> str:
    """Seal a minimised event as ``sender`` for slough-broker."""
    return envelope.seal(
        event,
        sender=sender,
        recipient=PARTY_B,
        registry=registry,
        rule_id=rule_id,
        lawful_basis="ca-2004-s11",
        purpose="So that the neighbouring borough can meet its own duties to the child.",
        provenance=Provenance(
            source_agency="tvp-police", source_event_id=event_id, original_sha256="0" * 64
        ),
        jti=jti,
    ).token
