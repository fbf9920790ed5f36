"""Fixtures for two boroughs' brokers: keys once per run, vhosts and databases per test."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest

from broker.service import Service
from tests.crossborder.helpers import BoroughKeys, borough_settings, make_borough_keys
from tests.dbfixtures import fresh_database
from tests.rabbitfixtures import management, quoted


@pytest.fixture(scope="session")
def borough_keys(tmp_path_factory: pytest.TempPathFactory) -> BoroughKeys:
    return make_borough_keys(tmp_path_factory.mktemp("xborder-keys"))


@pytest.fixture
def make_vhost() -> Iterator[Callable[[], str]]:
    """Make fresh virtual hosts for guest; all are deleted (shovels with them) afterwards."""
    made: list[str] = []

    def make() -> str:
        name = f"mash-test-{uuid.uuid4().hex[:12]}"
        management("PUT", f"/vhosts/{quoted(name)}", {})
        made.append(name)
        management(
            "PUT",
            f"/permissions/{quoted(name)}/guest",
            {"configure": ".*", "write": ".*", "read": ".*"},
        )
        return name

    try:
        yield make
    finally:
        for name in made:
            management("DELETE", f"/vhosts/{quoted(name)}")


@dataclass(frozen=True)
class LinkUser:
    """A RabbitMQ user borough B issued to borough A's link: writes to B's ingest only."""

    name: str
    password: str

    def uri(self, vhost: str, port: int = 5672) -> str:
        return f"amqp://{self.name}:{self.password}@127.0.0.1:{port}/{quoted(vhost)}"


@dataclass(frozen=True)
class TwoBoroughs:
    """Broker A (Windsor and Maidenhead) and broker B (Slough), each on its own vhost and DB."""

    a: Service
    b: Service
    vhost_a: str
    vhost_b: str
    link_user: LinkUser


@pytest.fixture(params=["sqlite"])
def xborder_backend(request: pytest.FixtureRequest) -> str:
    """The database both brokers use; a test parametrizes it to add PostgreSQL."""
    return str(request.param)


@pytest.fixture
def two_boroughs(
    tmp_path: Path,
    borough_keys: BoroughKeys,
    make_vhost: Callable[[], str],
    xborder_backend: str,
) -> Iterator[TwoBoroughs]:
    vhost_a, vhost_b = make_vhost(), make_vhost()
    user = LinkUser(f"xborder-{uuid.uuid4().hex[:8]}", f"link-secret-{uuid.uuid4().hex}")
    management("PUT", f"/users/{quoted(user.name)}", {"password": user.password, "tags": ""})
    # What B grants A's link: publish to its ingest exchange, nothing else.
    management(
        "PUT",
        f"/permissions/{quoted(vhost_b)}/{quoted(user.name)}",
        {"configure": "^$", "write": "^ingest$", "read": "^$"},
    )
    with ExitStack() as stack:
        services = []
        for side, vhost in (("a", vhost_a), ("b", vhost_b)):
            db_url = stack.enter_context(fresh_database(xborder_backend, tmp_path))
            settings = borough_settings(
                side=side,
                keys=borough_keys,
                amqp_url=f"amqp://guest:guest@127.0.0.1:5672/{quoted(vhost)}",
                db_url=db_url,
            )
            service = Service.load(settings)
            stack.callback(service.engine.dispose)
            services.append(service)
        try:
            yield TwoBoroughs(services[0], services[1], vhost_a, vhost_b, user)
        finally:
            management("DELETE", f"/users/{quoted(user.name)}")
