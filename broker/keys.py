"""Party keys: Ed25519 signing and X25519 encryption keys, their registry, files and lifecycle.

Layout of a key directory (see ``docs/keys.md``)::

    DIR/jwks.json                     public registry: every party's public keys (a JWKS)
    DIR/private/<party>/<kid>.jwk     one private JWK per key, mode 0600 (directories 0700)
    DIR/.lock                         advisory lock held while the directory is changed

Each key is bound to one algorithm (``Ed25519`` for ``use: sig``, ``ECDH-ES+A256KW`` for
``use: enc``) and carries its party, ``nbf`` and ``exp`` (seconds since the epoch) and a
``revoked`` flag as extra JWK members. A key is valid at instant *t* when it is not revoked
and ``nbf <= t < exp``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import secrets
import stat
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

from joserfc.errors import JoseError
from joserfc.jwk import OKPKey

from broker.exceptions import ConfigurationError, UnknownKey

__all__ = [
    "DEFAULT_ROTATION_GRACE",
    "DEFAULT_VALIDITY",
    "ENCRYPTION_ALG",
    "JWKS_FILE",
    "SIGNING_ALG",
    "KeyRecord",
    "KeyRegistry",
    "KeyUse",
    "PartyKeys",
    "PrivateKey",
    "generate_party_keys",
    "import_public_keys",
    "private_key_path",
    "revoke_key",
    "rotate_party_keys",
]

#: The JWS algorithm of every signing key (RFC 9864's fully specified name, not ``EdDSA``).
SIGNING_ALG = "Ed25519"
#: The JWE key-management algorithm of every encryption key.
ENCRYPTION_ALG = "ECDH-ES+A256KW"

JWKS_FILE = "jwks.json"
_PRIVATE_DIR = "private"
_LOCK_FILE = ".lock"

#: How long a new key is valid unless told otherwise.
DEFAULT_VALIDITY = timedelta(days=365)
#: How long a rotated-out key stays valid: at least the token lifetime, so that
#: disclosures sealed just before the rotation can still be opened and verified.
DEFAULT_ROTATION_GRACE = timedelta(days=7)

_PARTY = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")
# A kid becomes a file name, so it may not contain a path separator or start with a dot.
_KID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_OKP_PUBLIC_MEMBERS = ("kty", "crv", "x")


class KeyUse(StrEnum):
    """What a key is for: the JWK ``use`` member."""

    SIGNING = "sig"
    ENCRYPTION = "enc"

    @property
    def curve(self) -> str:
        """The OKP curve a key of this use must be on."""
        return "Ed25519" if self is KeyUse.SIGNING else "X25519"

    @property
    def alg(self) -> str:
        """The one algorithm a key of this use is bound to."""
        return SIGNING_ALG if self is KeyUse.SIGNING else ENCRYPTION_ALG


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """One public key in the registry, with its party, validity window and revocation flag."""

    kid: str
    party: str
    use: KeyUse
    nbf: int
    exp: int
    revoked: bool
    #: The public key as a joserfc object, imported once at load time.
    public: OKPKey = field(compare=False, repr=False)
    revoked_at: int | None = None

    @property
    def alg(self) -> str:
        """The algorithm this key is bound to."""
        return self.use.alg

    @property
    def not_before(self) -> datetime:
        """The first instant the key is valid (UTC)."""
        return datetime.fromtimestamp(self.nbf, UTC)

    @property
    def expires_at(self) -> datetime:
        """The first instant the key is no longer valid (UTC)."""
        return datetime.fromtimestamp(self.exp, UTC)

    def problem_at(self, when: datetime) -> str | None:
        """Why the key cannot be used at ``when``, or ``None`` when it can."""
        if self.revoked:
            return "revoked"
        t = when.timestamp()
        if t < self.nbf:
            return "not yet valid"
        if t >= self.exp:
            return "expired"
        return None

    def require_valid_at(self, when: datetime) -> None:
        """Raise ``UnknownKey`` unless the key is usable at ``when``."""
        problem = self.problem_at(when)
        if problem is not None:
            raise UnknownKey(
                f"key kid={self.kid} of party {self.party} is {problem} at {when.isoformat()}"
            )

    def to_jwk(self) -> dict[str, Any]:
        """The public JWK with the registry's members; never any private member."""
        public = self.public.as_dict(private=False)
        jwk: dict[str, Any] = {name: public[name] for name in _OKP_PUBLIC_MEMBERS}
        jwk.update(
            kid=self.kid,
            use=self.use.value,
            alg=self.alg,
            party=self.party,
            nbf=self.nbf,
            exp=self.exp,
            revoked=self.revoked,
        )
        if self.revoked_at is not None:
            jwk["revoked_at"] = self.revoked_at
        return jwk

    @classmethod
    def from_jwk(cls, data: Mapping[str, Any]) -> KeyRecord:
        """Read one registry entry, refusing anything that is not a well-formed public key.

        Raises:
            ConfigurationError: The entry is malformed, private, or its curve or algorithm
                does not match its use.
        """
        kid = data.get("kid")
        where = f"key kid={kid}" if isinstance(kid, str) and _KID.match(kid) else "a key"
        if "d" in data:
            raise ConfigurationError(f"{where}: the public registry holds a private member 'd'")
        try:
            use = KeyUse(data["use"])
            party, nbf, exp = data["party"], data["nbf"], data["exp"]
            revoked, revoked_at = data.get("revoked", False), data.get("revoked_at")
        except (KeyError, ValueError, TypeError) as exc:
            raise ConfigurationError(f"{where}: missing or bad member ({exc})") from exc
        checks = {
            "kid": isinstance(kid, str) and bool(_KID.match(kid)),
            "party": isinstance(party, str) and bool(_PARTY.match(party)),
            "nbf/exp": _is_int(nbf) and _is_int(exp) and nbf < exp,
            "revoked": isinstance(revoked, bool),
            "revoked_at": revoked_at is None or _is_int(revoked_at),
            "kty/crv": data.get("kty") == "OKP" and data.get("crv") == use.curve,
            "alg": data.get("alg") == use.alg,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ConfigurationError(f"{where}: bad {', '.join(bad)}")
        try:
            public = OKPKey.import_key({name: data[name] for name in _OKP_PUBLIC_MEMBERS})
        except (JoseError, KeyError, ValueError, TypeError) as exc:
            raise ConfigurationError(f"{where}: not a valid OKP public key") from exc
        return cls(
            kid=str(kid),
            party=party,
            use=use,
            nbf=nbf,
            exp=exp,
            revoked=revoked,
            public=public,
            revoked_at=revoked_at,
        )


def _shown(kid: object) -> str:
    """A kid that may come from an untrusted header, quoted and cut short for a message."""
    text = repr(kid)
    return text if len(text) <= 80 else text[:77] + "..."


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


class KeyRegistry:
    """Every party's public keys: the only place a ``kid`` is resolved.

    Load it once per process with :meth:`load` and share it; it is read-only.
    """

    def __init__(self, records: Iterable[KeyRecord]) -> None:
        by_kid: dict[str, KeyRecord] = {}
        by_party: dict[str, list[KeyRecord]] = {}
        for record in records:
            if record.kid in by_kid:
                raise ConfigurationError(f"key kid={record.kid} is registered twice")
            by_kid[record.kid] = record
            by_party.setdefault(record.party, []).append(record)
        self._by_kid = by_kid
        # Newest first, so "the current key" is the first valid one.
        self._by_party = {
            party: tuple(sorted(keys, key=lambda r: (r.nbf, r.kid), reverse=True))
            for party, keys in by_party.items()
        }

    @classmethod
    def load(cls, directory: Path) -> KeyRegistry:
        """Read ``DIRECTORY/jwks.json``.

        Raises:
            ConfigurationError: The file is missing or is not a valid registry.
        """
        return cls(_read_records(directory / JWKS_FILE))

    @property
    def records(self) -> tuple[KeyRecord, ...]:
        """Every key, in registry order."""
        return tuple(self._by_kid.values())

    @property
    def parties(self) -> tuple[str, ...]:
        """The parties with at least one key, sorted."""
        return tuple(sorted(self._by_party))

    def __contains__(self, kid: object) -> bool:
        return kid in self._by_kid

    def __len__(self) -> int:
        return len(self._by_kid)

    def get(self, kid: str) -> KeyRecord:
        """The record of ``kid`` whatever its state.

        Raises:
            UnknownKey: The kid is not registered.
        """
        try:
            return self._by_kid[kid]
        except KeyError:
            raise UnknownKey(f"kid={_shown(kid)} is not in the key registry") from None

    def keys_of(self, party: str) -> tuple[KeyRecord, ...]:
        """All keys of ``party``, newest first (empty when the party has none)."""
        return self._by_party.get(party, ())

    def usable_key(
        self, kid: str, *, use: KeyUse, at: datetime, party: str | None = None
    ) -> KeyRecord:
        """The record of ``kid`` if it is for ``use``, belongs to ``party`` and is valid ``at``.

        Raises:
            UnknownKey: The kid is unregistered, for another use or party, or is revoked,
                expired or not yet valid at ``at``.
        """
        record = self.get(kid)
        if record.use is not use:
            raise UnknownKey(f"key kid={kid} is a '{record.use}' key, not '{use}'")
        if party is not None and record.party != party:
            raise UnknownKey(f"key kid={kid} belongs to party {record.party}, not {party}")
        record.require_valid_at(at)
        return record

    def verification_key(self, kid: str, at: datetime) -> KeyRecord:
        """The signing key ``kid`` if it was valid at ``at`` (typically the token's ``iat``).

        Raises:
            UnknownKey: Unknown kid, not a signing key, or revoked / expired / not yet valid.
        """
        return self.usable_key(kid, use=KeyUse.SIGNING, at=at)

    def current_key(self, party: str, use: KeyUse, at: datetime | None = None) -> KeyRecord:
        """The newest key of ``party`` for ``use`` that is valid at ``at`` (default now).

        Raises:
            UnknownKey: The party has no such key valid at that instant.
        """
        when = at if at is not None else datetime.now(UTC)
        for record in self._by_party.get(party, ()):
            if record.use is use and record.problem_at(when) is None:
                return record
        raise UnknownKey(f"party {party} has no valid '{use}' key at {when.isoformat()}")

    def encryption_key(self, party: str, at: datetime | None = None) -> KeyRecord:
        """The key to encrypt to ``party`` now: its newest valid encryption key.

        Raises:
            UnknownKey: The party has no valid encryption key.
        """
        return self.current_key(party, KeyUse.ENCRYPTION, at)

    def to_jwks(self, party: str | None = None) -> dict[str, Any]:
        """The public JWKS, of every party or of one.

        Raises:
            UnknownKey: ``party`` has no keys.
        """
        if party is None:
            records: Iterable[KeyRecord] = self._by_kid.values()
        else:
            if party not in self._by_party:
                raise UnknownKey(f"party {party} has no keys in the registry")
            records = (r for r in self._by_kid.values() if r.party == party)
        return {"keys": [record.to_jwk() for record in records]}


@dataclass(frozen=True, slots=True)
class PrivateKey:
    """A party's private key and the registry record it belongs to."""

    record: KeyRecord
    key: OKPKey = field(repr=False)

    @property
    def kid(self) -> str:
        """The key id."""
        return self.record.kid


@dataclass(frozen=True, slots=True)
class PartyKeys:
    """One party's private keys: its current signing key and every retained decryption key."""

    party: str
    #: The newest signing key valid at load time, or ``None`` when the party cannot sign.
    signing: PrivateKey | None
    #: Decryption keys by kid: the current one and those kept through rotations.
    decryption: Mapping[str, PrivateKey]

    @classmethod
    def load(
        cls,
        directory: Path,
        party: str,
        registry: KeyRegistry | None = None,
        *,
        at: datetime | None = None,
    ) -> PartyKeys:
        """Load ``party``'s private keys from ``DIRECTORY/private/<party>/``.

        Only keys registered to the party are loaded; each file must be mode 0600 and match
        its registered public key. Revoked keys are skipped.

        Args:
            directory: The key directory.
            party: The party id.
            registry: The registry to check against (read from ``directory`` if omitted).
            at: The instant that decides the current signing key (default now).

        Raises:
            ConfigurationError: A private key file is missing, unreadable, too open, or does
                not match the registry.
            UnknownKey: The party has no keys in the registry.
        """
        registry = registry if registry is not None else KeyRegistry.load(directory)
        records = registry.keys_of(party)
        if not records:
            raise UnknownKey(f"party {party} has no keys in the registry")
        when = at if at is not None else datetime.now(UTC)
        signing: PrivateKey | None = None
        decryption: dict[str, PrivateKey] = {}
        for record in records:
            if record.revoked:
                continue
            if record.use is KeyUse.SIGNING:
                if signing is None and record.problem_at(when) is None:
                    signing = PrivateKey(record, _require_private(directory, record))
                continue
            # A retired key's file may have been deleted; the current one must be there.
            if record.problem_at(when) is None:
                key: OKPKey | None = _require_private(directory, record)
            else:
                key = _read_private(directory, record)
            if key is not None:
                decryption[record.kid] = PrivateKey(record, key)
        return cls(party=party, signing=signing, decryption=decryption)


def private_key_path(directory: Path, party: str, kid: str) -> Path:
    """Where the private key ``kid`` of ``party`` is kept."""
    if not _PARTY.match(party) or not _KID.match(kid):
        raise ConfigurationError(f"party {party!r} / kid {kid!r} cannot name a key file")
    return directory / _PRIVATE_DIR / party / f"{kid}.jwk"


def generate_party_keys(
    directory: Path,
    party: str,
    *,
    now: datetime | None = None,
    validity: timedelta = DEFAULT_VALIDITY,
) -> tuple[KeyRecord, KeyRecord]:
    """Create ``party``'s first signing and encryption keys.

    Returns:
        The new signing and encryption key records.

    Raises:
        ConfigurationError: The party id is invalid, or the party already has keys.
    """
    when = _utc(now)
    with _locked(directory):
        records = _read_records_or_empty(directory / JWKS_FILE)
        if any(r.party == party for r in records):
            raise ConfigurationError(f"party {party} already has keys; rotate them instead")
        new = _new_pair(directory, party, when, validity)
        _write_records(directory / JWKS_FILE, [*records, *new])
    return new


def rotate_party_keys(
    directory: Path,
    party: str,
    *,
    now: datetime | None = None,
    validity: timedelta = DEFAULT_VALIDITY,
    grace: timedelta = DEFAULT_ROTATION_GRACE,
) -> tuple[KeyRecord, KeyRecord]:
    """Give ``party`` new keys; its older keys stay registered and valid for ``grace``.

    The new keys become the current ones at once. Older keys that would outlive the grace
    period get their expiry brought forward to ``now + grace``, so tokens sealed before the
    rotation can still be verified and decrypted until then.

    Returns:
        The new signing and encryption key records.

    Raises:
        ConfigurationError: The party has no keys yet.
    """
    when = _utc(now)
    cutoff = int((when + grace).timestamp())
    with _locked(directory):
        records = _read_records_or_empty(directory / JWKS_FILE)
        if not any(r.party == party for r in records):
            raise ConfigurationError(f"party {party} has no keys to rotate; generate them first")
        kept = [
            replace(r, exp=max(cutoff, r.nbf + 1))
            if r.party == party and not r.revoked and r.exp > cutoff
            else r
            for r in records
        ]
        new = _new_pair(directory, party, when, validity)
        _write_records(directory / JWKS_FILE, [*kept, *new])
    return new


def revoke_key(directory: Path, kid: str, *, now: datetime | None = None) -> KeyRecord:
    """Mark ``kid`` revoked: from now on it neither verifies, encrypts nor decrypts.

    Revoking a revoked key changes nothing and returns its record.

    Raises:
        UnknownKey: The kid is not registered.
    """
    when = int(_utc(now).timestamp())
    with _locked(directory):
        records = _read_records_or_empty(directory / JWKS_FILE)
        index = next((i for i, r in enumerate(records) if r.kid == kid), None)
        if index is None:
            raise UnknownKey(f"kid={_shown(kid)} is not in the key registry")
        if records[index].revoked:
            return records[index]
        records[index] = replace(records[index], revoked=True, revoked_at=when)
        _write_records(directory / JWKS_FILE, records)
    return records[index]


# --- files -------------------------------------------------------------------------------


def import_public_keys(directory: Path, incoming: Sequence[KeyRecord]) -> tuple[KeyRecord, ...]:
    """Register another party's public keys (e.g. a neighbouring broker's) in ``directory``.

    A kid already registered is updated (a new expiry, a revocation) when its key material
    is the same; a revocation is never undone by an import.

    Returns:
        The imported records, as now registered.

    Raises:
        ConfigurationError: a kid is registered with other key material or to another party.
    """
    with _locked(directory):
        records = _read_records_or_empty(directory / JWKS_FILE)
        index = {r.kid: i for i, r in enumerate(records)}
        imported: list[KeyRecord] = []
        for record in incoming:
            at = index.get(record.kid)
            if at is None:
                index[record.kid] = len(records)
                records.append(record)
                imported.append(record)
                continue
            existing = records[at]
            if existing.party != record.party or _material(existing) != _material(record):
                raise ConfigurationError(
                    f"key kid={record.kid} is already registered with other key material"
                )
            kept = existing if existing.revoked and not record.revoked else record
            records[at] = kept
            imported.append(kept)
        _write_records(directory / JWKS_FILE, records)
    return tuple(imported)


def _material(record: KeyRecord) -> tuple[str, str]:
    public = record.public.as_dict(private=False)
    return record.use.value, str(public.get("x"))


def _utc(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None:
        raise ValueError("key times must be timezone-aware")
    return now.astimezone(UTC)


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """Hold the directory's advisory lock, so two commands cannot interleave their writes."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        handle = (directory / _LOCK_FILE).open("a")
    except OSError as exc:
        raise ConfigurationError(f"key directory {directory}: {exc.strerror}") from exc
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _read_records(path: Path) -> list[KeyRecord]:
    try:
        document = json.loads(path.read_bytes())
    except FileNotFoundError as exc:
        raise ConfigurationError(f"{path}: no key registry here (run 'keys generate')") from exc
    except OSError as exc:
        raise ConfigurationError(f"{path}: cannot read ({exc.strerror})") from exc
    except ValueError as exc:
        raise ConfigurationError(f"{path}: not JSON ({exc})") from exc
    keys = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(keys, list) or not all(isinstance(k, dict) for k in keys):
        raise ConfigurationError(f"{path}: not a JWKS (an object with a 'keys' array)")
    try:
        return [KeyRecord.from_jwk(k) for k in keys]
    except ConfigurationError as exc:
        raise ConfigurationError(f"{path}: {exc}") from exc


def _read_records_or_empty(path: Path) -> list[KeyRecord]:
    return _read_records(path) if path.exists() else []


def _write_records(path: Path, records: list[KeyRecord]) -> None:
    """Replace the registry atomically: readers see the old file or the new, never half."""
    kids = [r.kid for r in records]
    if len(set(kids)) != len(kids):  # pragma: no cover - kids carry 32 random bits
        raise ConfigurationError(f"{path}: duplicate kid")
    text = json.dumps({"keys": [r.to_jwk() for r in records]}, indent=2) + "\n"
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".jwks-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)  # public keys: readable by the partnership's tools
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _new_pair(
    directory: Path, party: str, when: datetime, validity: timedelta
) -> tuple[KeyRecord, KeyRecord]:
    if not _PARTY.match(party):
        raise ConfigurationError(f"party id {party!r} must match {_PARTY.pattern}")
    if validity <= timedelta(0):
        raise ConfigurationError("key validity must be positive")
    nbf = int(when.timestamp())
    exp = int((when + validity).timestamp())
    return (
        _new_key(directory, party, KeyUse.SIGNING, when=when, nbf=nbf, exp=exp),
        _new_key(directory, party, KeyUse.ENCRYPTION, when=when, nbf=nbf, exp=exp),
    )


def _new_key(
    directory: Path, party: str, use: KeyUse, *, when: datetime, nbf: int, exp: int
) -> KeyRecord:
    kid = f"{party}.{use.value}.{when:%Y%m%d}.{secrets.token_hex(4)}"
    private = OKPKey.generate_key(use.curve, private=True)  # type: ignore[arg-type]
    document = private.as_dict(private=True)
    document.update(kid=kid, use=use.value, alg=use.alg, party=party)
    _write_private(private_key_path(directory, party, kid), document)
    public = OKPKey.import_key(private.as_dict(private=False))
    return KeyRecord(kid=kid, party=party, use=use, nbf=nbf, exp=exp, revoked=False, public=public)


def _write_private(path: Path, document: Mapping[str, Any]) -> None:
    for folder in (path.parent.parent, path.parent):
        folder.mkdir(mode=0o700, exist_ok=True)
        os.chmod(folder, 0o700)
    # O_EXCL: never overwrite a key; the mode is set at creation, so it is never world-readable.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        os.fchmod(out.fileno(), 0o600)
        json.dump(document, out, indent=2)
        out.write("\n")


def _require_private(directory: Path, record: KeyRecord) -> OKPKey:
    key = _read_private(directory, record)
    if key is None:
        path = private_key_path(directory, record.party, record.kid)
        raise ConfigurationError(f"{path}: private key of kid={record.kid} is missing")
    return key


def _read_private(directory: Path, record: KeyRecord) -> OKPKey | None:
    """The private key of ``record``, or ``None`` when its file does not exist."""
    path = private_key_path(directory, record.party, record.kid)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigurationError(
            f"{path}: private key is accessible to others (mode {stat.S_IMODE(mode):04o}); "
            "it must be 0600"
        )
    try:
        document = json.loads(path.read_bytes())
        key = OKPKey.import_key(document)
    except (OSError, ValueError, TypeError, JoseError) as exc:
        raise ConfigurationError(f"{path}: not a readable private JWK") from exc
    if (
        not key.is_private
        or document.get("kid") != record.kid
        or key.as_dict(private=False).get("x") != record.public.as_dict(private=False).get("x")
        or document.get("crv") != record.use.curve
    ):
        raise ConfigurationError(f"{path}: does not match registered key kid={record.kid}")
    return key
