"""``mash-broker crossborder`` against the real RabbitMQ: credentials from files, never shown."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from typer.testing import CliRunner

from broker.cli import app
from tests.crossborder.conftest import TwoBoroughs
from tests.crossborder.helpers import AGREEMENT_A, AGREEMENT_B, BoroughKeys
from tests.rabbitfixtures import management, quoted

pytestmark = [pytest.mark.rabbitmq]


@pytest.fixture(autouse=True)
def _undo_logging_set_up() -> Iterator[None]:
    """The commands point structlog at the runner's stderr, which is closed afterwards."""
    try:
        yield
    finally:
        structlog.reset_defaults()


def _env(two: TwoBoroughs, keys: BoroughKeys, side: str = "a") -> dict[str, str]:
    service = two.a if side == "a" else two.b
    settings = service.settings
    return {
        "MASH_ENVIRONMENT": "test",
        "MASH_BOROUGH": settings.borough,
        "MASH_AGREEMENT_PATH": str(settings.agreement_path),
        "MASH_AMQP__URL": settings.amqp.url.get_secret_value(),
        "MASH_DATABASE__URL": settings.database.url.get_secret_value(),
        "MASH_CRYPTO__KEYS_DIR": str(keys.a if side == "a" else keys.b),
        "MASH_CRYPTO__SERVICE_PARTY": settings.crypto.service_party,
        "MASH_CROSSBORDER__RECONNECT_DELAY_SECONDS": "1",
        "MASH_LOG_JSON": "true",
    }


def _uri_file(path: Path, uri: str, mode: int = 0o600) -> Path:
    path.write_text(uri + "\n")
    path.chmod(mode)
    return path


def test_link_status_unlink_never_show_the_link_s_password(
    two_boroughs: TwoBoroughs, borough_keys: BoroughKeys, tmp_path: Path
) -> None:
    two = two_boroughs
    runner = CliRunner()
    env = _env(two, borough_keys)
    secret = two.link_user.password
    uri_file = _uri_file(tmp_path / "slough.uri", two.link_user.uri(two.vhost_b))

    # B declares where neighbours deliver before A links to it.
    declared = runner.invoke(app, ["crossborder", "declare"], env=_env(two, borough_keys, "b"))
    assert declared.exit_code == 0, declared.output
    linked = runner.invoke(
        app, ["crossborder", "link", "E06000039", "--uri-file", str(uri_file)], env=env
    )
    assert linked.exit_code == 0, linked.output
    assert "E06000039 (slough-broker): running" in linked.output
    assert f"127.0.0.1:5672 vhost={two.vhost_b}" in linked.output

    status = runner.invoke(app, ["crossborder", "status", "--json"], env=env)
    # Bracknell Forest's broker is in the agreement but not linked: not healthy, exit 1.
    assert status.exit_code == 1, status.output
    by_borough = {row["borough"]: row for row in json.loads(status.stdout)}
    assert by_borough["E06000039"]["state"] == "running"
    assert by_borough["E06000039"]["healthy"] is True
    assert by_borough["E06000036"]["state"] == "not linked"

    unlinked = runner.invoke(app, ["crossborder", "unlink", "slough-broker"], env=env)
    again = runner.invoke(app, ["crossborder", "unlink", "E06000039"], env=env)
    assert "unlinked E06000039" in unlinked.output
    assert "was not linked" in again.output
    assert management("GET", f"/parameters/shovel/{quoted(two.vhost_a)}") == []

    for result in (linked, status, unlinked, again):
        assert secret not in result.output
        assert secret not in (result.stderr or "")


def test_link_refuses_strangers_open_secret_files_and_uris_on_the_command_line(
    two_boroughs: TwoBoroughs, borough_keys: BoroughKeys, tmp_path: Path
) -> None:
    two = two_boroughs
    runner = CliRunner()
    env = _env(two, borough_keys)
    good = _uri_file(tmp_path / "good.uri", two.link_user.uri(two.vhost_b))
    readable = _uri_file(tmp_path / "open.uri", two.link_user.uri(two.vhost_b), 0o644)

    stranger = runner.invoke(
        app, ["crossborder", "link", "E06000038", "--uri-file", str(good)], env=env
    )
    assert stranger.exit_code == 1
    assert "not a neighbouring broker" in stranger.output

    exposed = runner.invoke(
        app, ["crossborder", "link", "E06000039", "--uri-file", str(readable)], env=env
    )
    assert exposed.exit_code == 1
    assert "accessible to others" in exposed.output
    assert two.link_user.password not in exposed.output

    on_argv = runner.invoke(
        app, ["crossborder", "link", "E06000039", "--uri", two.link_user.uri(two.vhost_b)], env=env
    )
    assert on_argv.exit_code == 2  # no such option: a URI is never taken from the command line

    # B has not declared ingest.xborder yet: what the shovel delivered would be dropped.
    not_ready = runner.invoke(
        app, ["crossborder", "link", "E06000039", "--uri-file", str(good)], env=env
    )
    assert not_ready.exit_code == 1
    assert "no exchange ingest" in not_ready.output
    management(
        "PUT", f"/exchanges/{quoted(two.vhost_b)}/ingest", {"type": "topic", "durable": True}
    )
    no_queue = runner.invoke(
        app, ["crossborder", "link", "E06000039", "--uri-file", str(good)], env=env
    )
    assert no_queue.exit_code == 1
    assert "no queue ingest.xborder" in no_queue.output
    assert two.link_user.password not in not_ready.output
    wrong = _uri_file(
        tmp_path / "wrong.uri", two.link_user.uri(two.vhost_b).replace("secret", "guess")
    )
    refused = runner.invoke(
        app, ["crossborder", "link", "E06000039", "--uri-file", str(wrong)], env=env
    )
    assert refused.exit_code == 1
    assert "refused the link's login" in refused.output
    assert management("GET", f"/parameters/shovel/{quoted(two.vhost_a)}") == []

    # Linking ahead of the neighbour is a choice: --no-check, and messages wait meanwhile.
    ahead = runner.invoke(
        app,
        ["crossborder", "link", "E06000039", "--uri-file", str(good), "--no-check", "--wait", "0"],
        env=env,
    )
    assert ahead.exit_code == 0, ahead.output
    assert [p["name"] for p in management("GET", f"/parameters/shovel/{quoted(two.vhost_a)}")] == [
        "mash-xborder-E06000039"
    ]


def test_check_and_subscriptions_read_the_agreements() -> None:
    runner = CliRunner()
    shipped = runner.invoke(app, ["crossborder", "check", str(AGREEMENT_A)])
    assert shipped.exit_code == 0, shipped.output
    assert "complete event" in shipped.output
    ours = runner.invoke(app, ["crossborder", "check", str(AGREEMENT_B)])
    assert ours.exit_code == 0, ours.output
    panel = runner.invoke(
        app, ["crossborder", "subscriptions", "slough-panel", "--agreement", str(AGREEMENT_B)]
    )
    assert panel.exit_code == 0, panel.output
    assert "rule panel-own-area" in panel.output
    assert "lives_in/missing_from/found_in/area borough is E06000039" in panel.output
