"""Link credentials come from files, the environment or settings and never show; key import."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import SecretStr

from broker.crossborder import (
    describe_uri,
    import_neighbour_keys,
    link_uri,
    read_jwks_file,
    validate_uri,
)
from broker.exceptions import ConfigurationError
from broker.keys import KeyRegistry, generate_party_keys, revoke_key, rotate_party_keys
from broker.settings import CrossBorderSettings, Settings

SECRET = "s3cret-Link-pw"
URI = f"amqps://wam-link:{SECRET}@broker.slough.example:5671/slough"


def _secret_file(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text + "\n")
    path.chmod(mode)
    return path


def test_uri_file_wins_then_environment_then_settings_then_secrets_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir()
    _secret_file(secrets_dir / "E06000039.uri", URI.replace("slough", "from-dir"))
    settings = Settings(
        _env_file=None,
        crossborder=CrossBorderSettings(
            links={"E06000036": SecretStr(URI.replace("slough", "from-settings"))},
            secrets_dir=secrets_dir,
        ),
    )
    given = _secret_file(tmp_path / "link.uri", URI)
    monkeypatch.setenv("SLOUGH_LINK", URI.replace("slough", "from-env"))

    def vhost(uri: SecretStr) -> str:
        return uri.get_secret_value().rsplit("/", 1)[1]

    assert vhost(link_uri(settings, "E06000039", uri_file=given)) == "slough"
    assert vhost(link_uri(settings, "E06000039", uri_env="SLOUGH_LINK")) == "from-env"
    assert vhost(link_uri(settings, "E06000036")) == "from-settings"
    assert vhost(link_uri(settings, "E06000039")) == "from-dir"
    with pytest.raises(ConfigurationError, match="no AMQP URI for the link to E06000041"):
        link_uri(Settings(_env_file=None), "E06000041")


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o666])
def test_a_uri_file_others_can_read_is_refused(tmp_path: Path, mode: int) -> None:
    path = _secret_file(tmp_path / "link.uri", URI, mode)
    with pytest.raises(ConfigurationError, match="accessible to others") as refused:
        link_uri(Settings(_env_file=None), "E06000039", uri_file=path)
    assert SECRET not in str(refused.value)


@pytest.mark.parametrize(
    ("uri", "production", "problem"),
    [
        ("http://u:p@host/v", False, "must start amqp"),
        ("amqp://host/v", False, "user name and password"),
        (f"amqp://u:{SECRET}@host/v", True, "use amqps"),
        ("amqps://u:guest@host/v", True, "demo password"),
    ],
)
def test_unusable_uris_are_refused_without_echoing_them(
    uri: str, production: bool, problem: str
) -> None:
    with pytest.raises(ConfigurationError, match=problem) as refused:
        validate_uri(SecretStr(uri), production=production)
    assert SECRET not in str(refused.value)
    assert ":p@" not in str(refused.value)


def test_described_uris_carry_no_credentials() -> None:
    assert describe_uri(SecretStr(URI)) == "amqps://broker.slough.example:5671 vhost=slough"
    assert describe_uri("amqp://u:p@h/") == "amqp://h:5672 vhost=/"
    assert describe_uri("amqp://u:p@h/a%2Fb") == "amqp://h:5672 vhost=a/b"


def test_a_settings_repr_hides_link_uris() -> None:
    settings = Settings(
        _env_file=None, crossborder=CrossBorderSettings(links={"E06000039": SecretStr(URI)})
    )
    assert SECRET not in repr(settings)
    assert SECRET not in settings.model_dump_json()


# --------------------------------------------------------------------------- key exchange


def test_importing_a_neighbour_s_public_keys_and_its_later_rotation_and_revocation(
    tmp_path: Path,
) -> None:
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    generate_party_keys(ours, "wam-broker")
    generate_party_keys(theirs, "slough-broker")

    imported = import_neighbour_keys(
        ours, KeyRegistry.load(theirs).to_jwks("slough-broker"), party="slough-broker"
    )

    registry = KeyRegistry.load(ours)
    assert {r.kid for r in imported} == {r.kid for r in registry.keys_of("slough-broker")}
    assert not (ours / "private" / "slough-broker").exists()
    # They rotate and revoke an old key; importing again brings our registry up to date.
    old_signing = next(r for r in imported if r.use.value == "sig")
    rotate_party_keys(theirs, "slough-broker")
    revoke_key(theirs, old_signing.kid)
    import_neighbour_keys(
        ours, KeyRegistry.load(theirs).to_jwks("slough-broker"), party="slough-broker"
    )
    registry = KeyRegistry.load(ours)
    assert len(registry.keys_of("slough-broker")) == 4
    assert registry.get(old_signing.kid).revoked
    # An older export does not undo the revocation.
    stale = {"keys": [r.to_jwk() for r in imported]}
    import_neighbour_keys(ours, stale, party="slough-broker")
    assert KeyRegistry.load(ours).get(old_signing.kid).revoked


def test_an_import_cannot_bring_keys_of_another_party(tmp_path: Path) -> None:
    theirs = tmp_path / "theirs"
    generate_party_keys(theirs, "slough-broker")
    generate_party_keys(theirs, "tvp-police")
    with pytest.raises(ConfigurationError, match="keys of tvp-police"):
        import_neighbour_keys(
            tmp_path / "ours", KeyRegistry.load(theirs).to_jwks(), party="slough-broker"
        )


def test_an_import_cannot_replace_our_own_party_s_keys(tmp_path: Path) -> None:
    ours, impostor = tmp_path / "ours", tmp_path / "impostor"
    generate_party_keys(ours, "wam-broker")
    generate_party_keys(impostor, "wam-broker")
    with pytest.raises(ConfigurationError, match="it is ours"):
        import_neighbour_keys(
            ours, KeyRegistry.load(impostor).to_jwks("wam-broker"), party="wam-broker"
        )


def test_an_import_refuses_private_members_and_changed_key_material(tmp_path: Path) -> None:
    ours, theirs, other = tmp_path / "ours", tmp_path / "theirs", tmp_path / "other"
    generate_party_keys(theirs, "slough-broker")
    generate_party_keys(other, "slough-broker")
    private = next((theirs / "private" / "slough-broker").iterdir())
    document = json.loads(private.read_text())
    document.update(party="slough-broker", nbf=0, exp=2**31)
    with pytest.raises(ConfigurationError, match="private member"):
        import_neighbour_keys(ours, {"keys": [document]}, party="slough-broker")
    jwks = KeyRegistry.load(theirs).to_jwks("slough-broker")
    import_neighbour_keys(ours, jwks, party="slough-broker")
    swapped = KeyRegistry.load(other).to_jwks("slough-broker")
    for key, real in zip(swapped["keys"], jwks["keys"], strict=True):
        key["kid"] = real["kid"]
    with pytest.raises(ConfigurationError, match="other key material"):
        import_neighbour_keys(ours, swapped, party="slough-broker")


def test_a_jwks_file_must_be_a_json_object(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    path.write_text("[1, 2]")
    with pytest.raises(ConfigurationError, match="not a JWKS"):
        read_jwks_file(path)
