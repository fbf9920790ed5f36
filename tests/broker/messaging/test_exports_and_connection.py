"""The package's public surface, back-off, and what connection errors may say."""

from __future__ import annotations

import ast
import inspect
from typing import Any

import aio_pika
import pytest
from pydantic import SecretStr
from structlog.testing import capture_logs

import broker.messaging
import broker.messaging.connection
import broker.messaging.consumer
import broker.messaging.deadletter
import broker.messaging.outcomes
import broker.messaging.publisher
import broker.topology
from broker.exceptions import TransportError
from broker.messaging import Backoff, connect, connect_with_backoff
from broker.messaging.connection import describe_url
from broker.settings import AmqpSettings

MODULES = [
    broker.topology,
    broker.messaging.connection,
    broker.messaging.consumer,
    broker.messaging.deadletter,
    broker.messaging.outcomes,
    broker.messaging.publisher,
]


def _defined_at_top_level(module) -> set[str]:
    """Public names a module defines itself (classes, functions, constants), by its source."""
    tree = ast.parse(inspect.getsource(module))
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return {n for n in names if not n.startswith("_") and n != "__all__"}


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_each_module_exports_what_it_defines(module):
    assert len(set(module.__all__)) == len(module.__all__)
    assert set(module.__all__) >= _defined_at_top_level(module) - {"app"}
    for name in module.__all__:
        assert hasattr(module, name)


def test_the_package_exports_every_module_export():
    submodules = [m for m in MODULES if m.__name__.startswith("broker.messaging.")]
    everything = set().union(*(m.__all__ for m in submodules))
    assert set(broker.messaging.__all__) == everything
    assert len(set(broker.messaging.__all__)) == len(broker.messaging.__all__)


def test_backoff_grows_to_its_ceiling_with_bounded_jitter():
    backoff = Backoff(initial=0.1, maximum=2.0, factor=2.0, jitter=0.5)
    for attempt, ceiling in [(0, 0.1), (1, 0.2), (3, 0.8), (10, 2.0), (500, 2.0)]:
        delays = [backoff.delay(attempt) for _ in range(200)]
        assert all(ceiling * 0.5 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 1  # jittered, so restarting workers spread out


def test_describe_url_never_shows_credentials():
    settings = AmqpSettings(url=SecretStr("amqp://mash:pa55word@rabbit.internal:5671/mash%2Fprod"))
    assert describe_url(settings) == "rabbit.internal:5671 vhost=mash/prod"
    assert describe_url(AmqpSettings()) == "127.0.0.1:5672 vhost=/"


async def test_connect_failure_names_the_endpoint_not_the_password():
    settings = AmqpSettings(url=SecretStr("amqp://mash:pa55word@127.0.0.1:1/"), timeout_seconds=1)
    with pytest.raises(TransportError) as caught:
        await connect(settings, name="probe")
    assert "'probe' to 127.0.0.1:1 vhost=/" in str(caught.value)
    assert "pa55word" not in str(caught.value)


@pytest.mark.parametrize(
    "url", ["amqp://mash:pa55word@127.0.0.1:1/", "amqp://mash:wrong@127.0.0.1:5672/"]
)
async def test_a_connection_that_fails_to_open_is_closed_at_once(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Left to the garbage collector, a connection that never opened schedules its close
    # from wherever the collector runs (a worker thread, say), where it cannot run.
    made: list[aio_pika.Connection] = []
    real_init = aio_pika.Connection.__init__

    def recorded(self: aio_pika.Connection, *args: Any, **kwargs: Any) -> None:
        real_init(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(aio_pika.Connection, "__init__", recorded)
    settings = AmqpSettings(url=SecretStr(url), timeout_seconds=2)
    with pytest.raises(TransportError):
        await connect(settings, name="probe")
    assert len(made) == 1
    assert made[0].is_closed


async def test_connect_with_backoff_retries_then_gives_up_in_time():
    settings = AmqpSettings(url=SecretStr("amqp://mash:pa55word@127.0.0.1:1/"), timeout_seconds=1)
    with capture_logs() as logs, pytest.raises(TransportError):
        await connect_with_backoff(
            settings, name="probe", backoff=Backoff(initial=0.05, maximum=0.1), give_up_after=0.5
        )
    retries = [entry for entry in logs if entry["event"] == "amqp_connect_retry"]
    assert len(retries) >= 2
    assert all("pa55word" not in str(entry) for entry in logs)
