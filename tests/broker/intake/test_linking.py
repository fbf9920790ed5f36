"""Linking children (strong ids, careful name matches, conflicts) and grouping episodes."""

from __future__ import annotations

from datetime import date
from uuid import UUID

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.exceptions import ConfigurationError
from broker.intake import (
    WEAK_FIELDS,
    ChildIdentity,
    Conflict,
    Linked,
    NoMatch,
    PossibleMatch,
    blind_identity,
    compare,
    episode_key,
    group_by_episode,
    identity_of,
    link_child,
    normalise_name,
    same_child,
)
from schemas.events import (
    CseLevel,
    CseScreening,
    Intelligence,
    MissingFound,
    MissingReported,
    RiskGrade,
    Vehicle,
)
from tests.broker.intake.factories import child, event, utc

KEY = b"k" * 32


def known(child_key: str, **kwargs: object) -> ChildIdentity:
    return identity_of(child(**kwargs), child_key)  # type: ignore[arg-type]


# --- strong identifiers ----------------------------------------------------------------


def test_equal_nhs_number_links() -> None:
    result = compare(identity_of(child(nhs=7)), known("c1", nhs=7, given="Other"))
    assert result == Linked("c1", "nhs_number", ("nhs_number",))


def test_any_one_strong_identifier_links() -> None:
    subject = identity_of(child(nhs=None, paris="P-200001", police="TVP/P/1"))
    assert compare(subject, known("c1", nhs=8, paris="P-200001")) == Linked(
        "c1", "paris_id", ("paris_id",)
    )
    assert compare(subject, known("c2", nhs=None, police="TVP/P/1")) == Linked(
        "c2", "police_person_ref", ("police_person_ref",)
    )


def test_a_link_names_every_agreeing_identifier_and_the_first_by_precedence() -> None:
    subject = identity_of(child(nhs=7, paris="P-200001"))
    result = compare(subject, known("c1", nhs=7, paris="P-200001"))
    assert result == Linked("c1", "nhs_number", ("nhs_number", "paris_id"))


def test_conflicting_strong_identifiers_are_flagged_not_linked() -> None:
    subject = identity_of(child(nhs=7, paris="P-200001"))
    result = compare(subject, known("c1", nhs=7, paris="P-200002"))
    assert result == Conflict(("c1",), ("nhs_number",), ("paris_id",))
    assert isinstance(result, Conflict)
    assert result.strong


def test_a_different_nhs_number_alone_is_another_child() -> None:
    subject = identity_of(child(nhs=7, given="Amara", family="Ashdown"))
    assert compare(subject, known("c1", nhs=8, given="Kieran", family="Pellington")) == NoMatch()


# --- weak match ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "family"),
    [
        ("ZOE", "O'BRIEN"),
        ("zoë", "o’brien"),
        ("  Zoe ", "O Brien"),
        ("Zoé", "Obrien"),
    ],
)
def test_name_and_birth_match_is_only_possible(given: str, family: str) -> None:
    subject = identity_of(child(nhs=None, police="TVP/P/9", given="Zoë", family="O'Brien"))
    other = known("c1", nhs=None, paris="P-300001", given=given, family=family)
    assert compare(subject, other) == PossibleMatch(("c1",), WEAK_FIELDS)


def test_weak_match_needs_all_three_fields() -> None:
    subject = identity_of(child(nhs=None, police="TVP/P/9"))
    assert compare(subject, known("c1", nhs=None, paris="P-1", born=date(2012, 5, 18))) == NoMatch()
    assert compare(subject, known("c1", nhs=None, paris="P-1", given=None)) == NoMatch()
    assert compare(subject, known("c1", nhs=None, paris="P-1", given="Maisy")) == NoMatch()


def test_name_match_with_a_different_nhs_number_is_a_conflict() -> None:
    result = compare(identity_of(child(nhs=7)), known("c1", nhs=8))
    assert result == Conflict(("c1",), WEAK_FIELDS, ("nhs_number",))
    assert isinstance(result, Conflict)
    assert not result.strong


def test_normalise_name() -> None:
    assert normalise_name("  Zoë  O'Brien-Smith ") == "zoeobriensmith"
    assert normalise_name("STRAßE") == normalise_name("strasse")
    assert normalise_name("Siân") == normalise_name("SIAN")


# --- linking against the store ---------------------------------------------------------


def test_link_child_to_the_one_known_child() -> None:
    store = [known("c1", nhs=7), known("c2", nhs=8, given="Kieran"), known("c3", nhs=9)]
    assert link_child(child(nhs=7), store) == Linked("c1", "nhs_number", ("nhs_number",))


def test_links_to_two_known_children_is_a_conflict() -> None:
    store = [known("c1", nhs=7, given="A"), known("c2", nhs=None, paris="P-200001", given="B")]
    result = link_child(child(nhs=7, paris="P-200001", given="C"), store)
    assert isinstance(result, Conflict)
    assert result.child_keys == ("c1", "c2")
    assert result.conflicting == ("links to more than one known child",)


def test_a_strong_conflict_anywhere_wins() -> None:
    store = [known("c1", nhs=7, paris="P-2", given="A"), known("c2", nhs=7, given="B")]
    result = link_child(child(nhs=7, paris="P-1", given="C"), store)
    assert isinstance(result, Conflict)
    assert set(result.child_keys) == {"c1", "c2"}
    assert result.conflicting == ("paris_id",)


def test_strong_link_beats_a_weak_conflict() -> None:
    # c2 shares name and birth date but has another NHS number: a different child.
    store = [known("c1", nhs=7, given="Mai"), known("c2", nhs=8)]
    result = link_child(child(nhs=7), store)
    assert result == Linked("c1", "nhs_number", ("nhs_number",))


def test_possible_matches_list_every_candidate_and_weak_conflicts_flag() -> None:
    store = [known("c1", nhs=None, paris="P-1"), known("c2", nhs=None, police="TVP/P/2")]
    subject = child(nhs=5)
    assert link_child(subject, store) == PossibleMatch(("c1", "c2"))
    # A name match whose NHS number differs is flagged, and the other candidates kept.
    assert link_child(subject, [*store, known("c3", nhs=6)]) == Conflict(
        ("c3", "c1", "c2"), WEAK_FIELDS, ("nhs_number",)
    )
    assert link_child(subject, []) == NoMatch()


def test_blinded_identities_link_the_same_way() -> None:
    store = [blind_identity(known("c1", nhs=7), KEY), blind_identity(known("c2", nhs=8), KEY)]
    subject = blind_identity(identity_of(child(nhs=7)), KEY)
    assert link_child(subject, store) == Linked("c1", "nhs_number", ("nhs_number",))
    nameonly = blind_identity(identity_of(child(nhs=None, paris="P-9")), KEY)
    assert link_child(nameonly, store[:1]) == PossibleMatch(("c1",))


def test_blinding_hides_the_values_and_keeps_the_key() -> None:
    plain = known("c1", nhs=7, paris="P-200001", police="P-200001")
    blinded = blind_identity(plain, KEY)
    assert blinded.child_key == "c1"
    values = [getattr(blinded, f) for f in ("nhs_number", "paris_id", "police_person_ref")]
    assert all(v is not None and len(v) == 64 for v in values)
    assert plain.nhs_number is not None
    assert plain.family_name is not None
    assert plain.nhs_number not in repr(blinded)
    assert plain.family_name not in repr(blinded)
    assert values[1] != values[2]  # equal values in different fields hash differently
    assert blind_identity(plain, b"x" * 32).nhs_number != blinded.nhs_number
    with pytest.raises(ConfigurationError):
        blind_identity(plain, b"short")


def test_same_child_between_two_events() -> None:
    body = CseScreening(level=CseLevel.LEVEL_2, screened_at=utc(2026, 1, 1), screened_by="wam-cs")
    b_id = UUID(int=0xB)
    a = event(body, subject=child(nhs=7))
    b = event(body, subject=child(nhs=7, given="Different"), event_id=b_id)
    assert same_child(a, b) == Linked(str(b_id), "nhs_number", ("nhs_number",))
    area = event(Intelligence(vehicles=(Vehicle(registration="AB12 CDE"),)))
    assert same_child(a, area) == NoMatch()


# --- episodes --------------------------------------------------------------------------


def test_group_by_episode() -> None:
    ep = "TVP-MP-2026-000777"
    subject = child()
    found = event(
        MissingFound(episode_id=ep, found_at=utc(2026, 2, 2)), subject=subject, at=utc(2026, 2, 2)
    )
    reported = event(
        MissingReported(episode_id=ep, risk_grade=RiskGrade.LOW, reported_at=utc(2026, 2, 1)),
        subject=subject,
        at=utc(2026, 2, 1),
        correlation_id="SOMETHING-ELSE",  # the body's episode id is authoritative
    )
    screening = event(
        CseScreening(level=CseLevel.LEVEL_1, screened_at=utc(2026, 2, 3), screened_by="wam-cs"),
        subject=subject,
        at=utc(2026, 2, 3),
        correlation_id=ep,
    )
    loose = event(
        CseScreening(level=CseLevel.LEVEL_1, screened_at=utc(2026, 2, 3), screened_by="wam-cs"),
        subject=subject,
    )
    assert episode_key(reported) == ep
    assert episode_key(screening) == ep
    assert episode_key(loose) is None
    groups = group_by_episode([screening, found, loose, reported, found])
    assert list(groups.episodes) == [ep]
    assert groups.episodes[ep] == (reported, found, screening)
    assert groups.unlinked == (loose,)


# --- properties ------------------------------------------------------------------------

_ids = st.none() | st.sampled_from(["A1", "B2"])
_names = st.none() | st.sampled_from(["zoe", "amara"])
_identities = st.builds(
    ChildIdentity,
    child_key=st.just("k"),
    nhs_number=_ids,
    paris_id=_ids,
    police_person_ref=_ids,
    family_name=_names,
    given_name=_names,
    date_of_birth=st.none() | st.sampled_from(["2012-01-01", "2013-01-01"]),
)


@settings(max_examples=200, deadline=None)
@given(_identities, _identities)
def test_compare_is_symmetric(a: ChildIdentity, b: ChildIdentity) -> None:
    forward, backward = compare(a, b), compare(b, a)
    assert type(forward) is type(backward)
    if isinstance(forward, Conflict) and isinstance(backward, Conflict):
        assert (forward.agreeing, forward.conflicting) == (backward.agreeing, backward.conflicting)


@settings(max_examples=200, deadline=None)
@given(_identities, _identities)
def test_never_linked_with_a_differing_strong_id(a: ChildIdentity, b: ChildIdentity) -> None:
    differing = any(
        getattr(a, f) is not None and getattr(b, f) is not None and getattr(a, f) != getattr(b, f)
        for f in ("nhs_number", "paris_id", "police_person_ref")
    )
    if differing:
        assert not isinstance(compare(a, b), Linked | PossibleMatch)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=30))
def test_normalise_name_is_idempotent(value: str) -> None:
    once = normalise_name(value)
    assert normalise_name(once) == once
    assert not any(ch.isspace() for ch in once)
