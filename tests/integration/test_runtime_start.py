"""A starting part keeps trying to declare the topology while RabbitMQ cannot be reached."""

from __future__ import annotations

import threading

import pytest

from broker import runtime as runtime_module
from broker.exceptions import ConfigurationError, TransportError
from broker.runtime import Runtime
from broker.service import Service
from broker.topology import Topology


async def test_start_retries_the_topology_while_the_broker_is_unreachable(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []

    async def flaky(settings: object, topology: Topology) -> None:
        calls.append(1)
        if len(calls) < 3:
            raise TransportError("AMQP connection 'topology' to 127.0.0.1:5672 failed")

    monkeypatch.setattr(runtime_module, "ensure_topology", flaky)
    runtime = Runtime(service, [])
    await runtime.start()
    await runtime.stop()
    assert len(calls) == 3


async def test_start_gives_up_after_its_patience(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def down(settings: object, topology: Topology) -> None:
        raise TransportError("AMQP connection 'topology' to 127.0.0.1:5672 failed")

    monkeypatch.setattr(runtime_module, "ensure_topology", down)
    monkeypatch.setattr(runtime_module, "START_PATIENCE", 0.5)
    with pytest.raises(TransportError):
        await Runtime(service, []).start()


async def test_a_refused_declaration_fails_at_once(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []

    async def conflicting(settings: object, topology: Topology) -> None:
        calls.append(1)
        raise ConfigurationError("queue mash.E06000040 exists with other arguments")

    monkeypatch.setattr(runtime_module, "ensure_topology", conflicting)
    with pytest.raises(ConfigurationError):
        await Runtime(service, []).start()
    assert len(calls) == 1


async def test_a_running_service_checkpoints_sqlites_log_in_a_thread_of_its_own(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def declared(settings: object, topology: Topology) -> None:
        return None

    def checkpoint_threads() -> int:
        return sum(t.name == "sqlite wal checkpoints" for t in threading.enumerate())

    monkeypatch.setattr(runtime_module, "ensure_topology", declared)
    runtime = Runtime(service, [])
    await runtime.start()
    try:
        assert checkpoint_threads() == (1 if service.engine.dialect.name == "sqlite" else 0)
    finally:
        await runtime.stop()
    assert checkpoint_threads() == 0
