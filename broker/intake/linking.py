"""Linking: whether two events are about the same child, and which events form one episode.

Strong identifiers (NHS number, Paris id, police person reference) link on their own:
any one equal makes the same child, unless another strong identifier present on both
sides differs, which is a :class:`Conflict` for a person to resolve. A weak match
(family name, given name and date of birth, compared without regard to case, accents,
spaces or punctuation) is only ever a :class:`PossibleMatch` that needs human
confirmation: nothing is merged silently.
"""

from __future__ import annotations

import hashlib
import hmac
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from datetime import date
from types import MappingProxyType
from typing import Literal

from broker.exceptions import ConfigurationError
from schemas.events import Event
from schemas.person import Child

__all__ = [
    "STRONG_IDS",
    "WEAK_FIELDS",
    "ChildIdentity",
    "Conflict",
    "EpisodeGroups",
    "LinkResult",
    "Linked",
    "NoMatch",
    "PossibleMatch",
    "StrongId",
    "blind_identity",
    "compare",
    "episode_key",
    "group_by_episode",
    "identity_of",
    "link_child",
    "normalise_name",
    "same_child",
]

StrongId = Literal["nhs_number", "paris_id", "police_person_ref"]

#: Strong identifiers, in the order a link names them.
STRONG_IDS: tuple[StrongId, ...] = ("nhs_number", "paris_id", "police_person_ref")
#: The fields of a weak (name and date of birth) match.
WEAK_FIELDS: tuple[str, ...] = ("family_name", "given_name", "date_of_birth")

# Apostrophes, hyphens and full stops vary between systems ("O'Neil", "ONeil",
# "Smith-Jones", "Smith Jones") without changing who is meant.
_IGNORED = frozenset("'’‘`´-‐‑–—.")


def normalise_name(value: str) -> str:
    """A name folded for comparison: no case, accents, spaces, hyphens or apostrophes.

    >>> normalise_name("  Zoë  O'Brien-Smith ")
    'zoeobriensmith'
    """
    decomposed = unicodedata.normalize("NFKD", value)
    kept = (
        ch
        for ch in decomposed
        if not unicodedata.combining(ch) and not ch.isspace() and ch not in _IGNORED
    )
    return "".join(kept).casefold()


@dataclass(frozen=True, slots=True)
class ChildIdentity:
    """The identifying fields of a child, normalised for matching.

    Build one with :func:`identity_of`. For storage the values can be replaced by keyed
    hashes with :func:`blind_identity`; matching works the same on blinded identities
    made with the same key.

    Attributes:
        child_key: the intake store's key for the child ("" for a child not yet stored).
        nhs_number: ten digits.
        paris_id: the Paris person id, upper case.
        police_person_ref: the police person reference, upper case.
        family_name: normalised with :func:`normalise_name`.
        given_name: normalised with :func:`normalise_name`.
        date_of_birth: ISO date string.
    """

    child_key: str = ""
    nhs_number: str | None = None
    paris_id: str | None = None
    police_person_ref: str | None = None
    family_name: str | None = None
    given_name: str | None = None
    date_of_birth: str | None = None

    @property
    def has_weak_fields(self) -> bool:
        """True when family name, given name and date of birth are all present."""
        return all(getattr(self, name) for name in WEAK_FIELDS)


def _clean_id(value: str | None) -> str | None:
    if value is None:
        return None
    compact = "".join(value.split()).upper()
    return compact or None


def _clean_name(value: str | None) -> str | None:
    if value is None:
        return None
    return normalise_name(value) or None


def _clean_date(value: date | None) -> str | None:
    return value.isoformat() if value is not None else None


def identity_of(child: Child, child_key: str = "") -> ChildIdentity:
    """The normalised identity of a canonical child."""
    return ChildIdentity(
        child_key=child_key,
        nhs_number=_clean_id(child.nhs_number),
        paris_id=_clean_id(child.paris_id),
        police_person_ref=_clean_id(child.police_person_ref),
        family_name=_clean_name(child.family_name),
        given_name=_clean_name(child.given_name),
        date_of_birth=_clean_date(child.date_of_birth),
    )


_MIN_KEY_BYTES = 32


def blind_identity(identity: ChildIdentity, key: bytes) -> ChildIdentity:
    """``identity`` with each identifying value replaced by an HMAC-SHA256 under ``key``.

    Lets the store keep a searchable index without keeping the identifiers themselves.
    Each field is hashed with its name, so equal values in different fields differ.

    Raises:
        ConfigurationError: the key is shorter than 32 bytes.
    """
    if len(key) < _MIN_KEY_BYTES:
        raise ConfigurationError("linking blind-index key: at least 32 bytes")

    def blind(name: str, value: str | None) -> str | None:
        if value is None:
            return None
        message = f"{name}\x00{value}".encode()
        return hmac.new(key, message, hashlib.sha256).hexdigest()

    return ChildIdentity(
        child_key=identity.child_key,
        **{
            item.name: blind(item.name, getattr(identity, item.name))
            for item in fields(identity)
            if item.name != "child_key"
        },
    )


@dataclass(frozen=True, slots=True)
class Linked:
    """The same child, by a strong identifier.

    Attributes:
        child_key: the known child linked to.
        by: the first agreeing strong identifier (NHS number, then Paris id, then police).
        agreeing: every strong identifier that agrees.
    """

    child_key: str
    by: StrongId
    agreeing: tuple[StrongId, ...] = ()


@dataclass(frozen=True, slots=True)
class PossibleMatch:
    """Name and date of birth agree and no strong identifier decides: a person must confirm.

    Attributes:
        child_keys: the known children that may be the same child.
        on: the fields that agree.
    """

    child_keys: tuple[str, ...]
    on: tuple[str, ...] = WEAK_FIELDS


@dataclass(frozen=True, slots=True)
class NoMatch:
    """No known child is, or may be, the same child."""


@dataclass(frozen=True, slots=True)
class Conflict:
    """Evidence both for and against the same child: not linked, flagged for a person.

    Attributes:
        child_keys: the known children involved.
        agreeing: the fields that agree (strong identifiers or the weak fields).
        conflicting: the strong identifiers that differ, or the reason the link is refused.
    """

    child_keys: tuple[str, ...]
    agreeing: tuple[str, ...]
    conflicting: tuple[str, ...]

    @property
    def strong(self) -> bool:
        """True when a strong identifier agrees despite the conflict."""
        return any(name in STRONG_IDS for name in self.agreeing)


LinkResult = Linked | PossibleMatch | NoMatch | Conflict


def _weak_match(a: ChildIdentity, b: ChildIdentity) -> bool:
    return (
        a.has_weak_fields
        and b.has_weak_fields
        and all(getattr(a, name) == getattr(b, name) for name in WEAK_FIELDS)
    )


def compare(subject: ChildIdentity, known: ChildIdentity) -> LinkResult:
    """Whether ``subject`` is the child ``known`` (results carry ``known.child_key``).

    * a strong identifier differs and another agrees, or the names and date of birth
      agree: :class:`Conflict`;
    * a strong identifier differs and nothing agrees: :class:`NoMatch` (another child);
    * a strong identifier agrees and none differs: :class:`Linked`;
    * no strong identifier on both sides, names and date of birth agree:
      :class:`PossibleMatch`;
    * otherwise :class:`NoMatch`.
    """
    agreeing: list[StrongId] = []
    differing: list[StrongId] = []
    for name in STRONG_IDS:
        mine, theirs = getattr(subject, name), getattr(known, name)
        if mine is None or theirs is None:
            continue
        (agreeing if mine == theirs else differing).append(name)
    weak = _weak_match(subject, known)
    key = known.child_key
    if differing and (agreeing or weak):
        evidence = tuple(agreeing) if agreeing else WEAK_FIELDS
        return Conflict((key,), evidence, tuple(differing))
    if differing:
        return NoMatch()
    if agreeing:
        return Linked(key, agreeing[0], tuple(agreeing))
    if weak:
        return PossibleMatch((key,))
    return NoMatch()


def _unique(keys: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(keys))


def link_child(subject: Child | ChildIdentity, known: Iterable[ChildIdentity]) -> LinkResult:
    """Link a child to the known children.

    Strong evidence decides first: a strong conflict with any known child, or strong
    links to two different known children (the store holds the child twice), is a
    :class:`Conflict`; a strong link to exactly one known child is :class:`Linked`.
    Without a strong link, a name-and-birth match against a known child whose strong
    identifier differs is a :class:`Conflict` (listing the other name matches too), and
    other name-and-birth matches are a :class:`PossibleMatch` listing every candidate.
    """
    me = subject if isinstance(subject, ChildIdentity) else identity_of(subject)
    results = [compare(me, other) for other in known]
    strong_conflicts = [r for r in results if isinstance(r, Conflict) and r.strong]
    links = [r for r in results if isinstance(r, Linked)]
    linked_keys = _unique(r.child_key for r in links)
    if strong_conflicts:
        keys = _unique([*(k for r in strong_conflicts for k in r.child_keys), *linked_keys])
        agreeing = _unique(n for r in strong_conflicts for n in r.agreeing)
        differing = _unique(n for r in strong_conflicts for n in r.conflicting)
        return Conflict(keys, agreeing, differing)
    if len(linked_keys) > 1:
        by = _unique(n for r in links for n in r.agreeing)
        return Conflict(linked_keys, by, ("links to more than one known child",))
    if links:
        return links[0]
    possible = _unique(k for r in results if isinstance(r, PossibleMatch) for k in r.child_keys)
    weak_conflicts = [r for r in results if isinstance(r, Conflict)]
    if weak_conflicts:
        # The other name matches stay listed: the person resolving it needs to see them all.
        keys = _unique([*(k for r in weak_conflicts for k in r.child_keys), *possible])
        differing = _unique(n for r in weak_conflicts for n in r.conflicting)
        return Conflict(keys, WEAK_FIELDS, differing)
    return PossibleMatch(possible) if possible else NoMatch()


def same_child(a: Event, b: Event) -> LinkResult:
    """Whether two events are about the same child.

    The result names ``b`` by its event id (``str(b.metadata.event_id)``) where a child
    key would go. Events without a subject (area intelligence) match nothing.
    """
    if a.subject is None or b.subject is None:
        return NoMatch()
    return compare(identity_of(a.subject), identity_of(b.subject, str(b.metadata.event_id)))


def episode_key(event: Event) -> str | None:
    """The missing episode an event belongs to.

    The body's ``episode_id`` when it has one, which is authoritative; otherwise the
    metadata's ``correlation_id``; ``None`` when neither is set.
    """
    episode = getattr(event.body, "episode_id", None)
    if isinstance(episode, str):
        return episode
    return event.metadata.correlation_id


@dataclass(frozen=True, slots=True)
class EpisodeGroups:
    """Events grouped by missing episode.

    Attributes:
        episodes: episode id → its events in the order they occurred.
        unlinked: events with no episode id or correlation id.
    """

    episodes: Mapping[str, tuple[Event, ...]]
    unlinked: tuple[Event, ...]


def group_by_episode(events: Iterable[Event]) -> EpisodeGroups:
    """Group events by :func:`episode_key`; duplicates (same event id) are kept once."""
    seen: set[object] = set()
    groups: dict[str, list[Event]] = {}
    unlinked: list[Event] = []
    for event in events:
        if event.metadata.event_id in seen:
            continue
        seen.add(event.metadata.event_id)
        key = episode_key(event)
        if key is None:
            unlinked.append(event)
        else:
            groups.setdefault(key, []).append(event)

    def order(e: Event) -> tuple[object, ...]:
        return (e.metadata.occurred_at, e.metadata.recorded_at, str(e.metadata.event_id))

    return EpisodeGroups(
        episodes=MappingProxyType({k: tuple(sorted(v, key=order)) for k, v in groups.items()}),
        unlinked=tuple(sorted(unlinked, key=order)),
    )
