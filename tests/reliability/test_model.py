"""A model-based fault test (item 7): hypothesis drives publishes, replays and faults.

Each example starts a broker on PostgreSQL and a virtual host of a private RabbitMQ node,
with the MASH intake as a separate process. Hypothesis then interleaves: partners publish
messages, partners resend old ones, a delivered disclosure is replayed onto the MASH queue,
RabbitMQ restarts, its connections are closed, the intake is killed with SIGKILL. When
the example ends, every published message must have had exactly the effects the agreement
allows (delivered ⊆ allowed, and each once), every replay refused and audited, the queues
drained and the audit chain intact.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections import Counter
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, precondition, rule, run_state_machine_as_test
from sqlalchemy import select
from sqlmodel import col

from broker.db import session_scope
from broker.models import MashAlert
from broker.runtime import Runtime
from broker.service import Service
from tests.dbfixtures import fresh_database
from tests.reliability import rabbitnode
from tests.reliability.conftest import make_settings
from tests.reliability.faults import (
    HALF_OPENED,
    Part,
    Workload,
    account,
    mixed,
    publish_until_confirmed,
    wait_settled,
)
from tests.reliability.helpers import publish_disclosures
from tests.reliability.rabbitnode import RabbitNode

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres]

T = TypeVar("T")


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitNode]:
    if not rabbitnode.available():
        pytest.skip("the RabbitMQ server scripts are not installed here")
    private = RabbitNode(tmp_path_factory.mktemp("rabbit-model") / "node")
    private.start()
    try:
        yield private
    finally:
        private.stop()


class _Loop:
    """An event loop on a thread of its own, so the service runs between rules."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, work: Coroutine[Any, Any, T], timeout: float = 300) -> T:
        return asyncio.run_coroutine_threadsafe(work, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()


def machine(
    node: RabbitNode, keys_dir: Path, workdir: Path, pool: int
) -> type[RuleBasedStateMachine]:
    """The state machine class, bound to the node, keys and a pool of partner messages."""

    class Delivery(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.loop = _Loop()
            self.vhost = node.add_vhost(f"model-{uuid.uuid4().hex[:8]}")
            self._database = fresh_database("postgres", workdir)
            url = self._database.__enter__()
            self.service = Service.load(make_settings(url, node.url(self.vhost), keys_dir))
            self.pool = mixed(pool)
            self.published: list[tuple[str, bytes, str]] = []
            self.replays = 0
            self.steps: Counter[str] = Counter()
            self.runtime = Runtime(self.service, ["ingest", "relay", "redrive"])
            self.intake = Part(self.service, "intake", workdir / f"intake-{self.vhost}.log")
            self.loop.run(self.runtime.start())
            self.loop.run(self.intake.start())

        @precondition(lambda self: len(self.published) < len(self.pool))
        @rule(count=st.integers(1, 12))
        def publish(self, count: int) -> None:
            self.steps["publish"] += 1
            fresh = self.pool[len(self.published) : len(self.published) + count]
            self.loop.run(publish_until_confirmed(self.service.settings.amqp, fresh))
            self.published += fresh

        @precondition(lambda self: self.published)
        @rule(pick=st.integers(0, 10**6))
        def partner_resends(self, pick: int) -> None:
            self.steps["partner_resends"] += 1
            again = self.published[pick % len(self.published)]
            self.loop.run(publish_until_confirmed(self.service.settings.amqp, [again]))

        @rule(pick=st.integers(0, 10**6))
        def replay_a_delivered_disclosure(self, pick: int) -> None:
            self.steps["replay_a_delivered_disclosure"] += 1
            with session_scope(self.service.sessions) as session:
                tokens = [t for (t,) in session.execute(select(col(MashAlert.token)).limit(50))]
            if not tokens:
                return
            token = tokens[pick % len(tokens)]
            replay_id = f"replay-{uuid.uuid4().hex}"
            self.loop.run(publish_disclosures(self.service, [(replay_id, token.encode())]))
            self.replays += 1

        @rule()
        def restart_broker(self) -> None:
            self.steps["restart_broker"] += 1
            node.restart_app()

        @rule()
        def close_connections(self) -> None:
            self.steps["close_connections"] += 1
            node.close_connections(self.vhost)

        @rule()
        def kill_intake(self) -> None:
            self.steps["kill_intake"] += 1
            self.loop.run(self.intake.kill())
            self.loop.run(self.intake.start())

        def teardown(self) -> None:
            try:
                workload = Workload.of(self.service, self.published)
                self.loop.run(
                    wait_settled(
                        self.service,
                        workload,
                        within=120,
                        replays=self.replays,
                        runtimes=[self.runtime],
                    )
                )
                figures = self.loop.run(account(self.service, workload, replays=self.replays))
                steps = " ".join(f"{k}={v}" for k, v in sorted(self.steps.items()))
                print(f"\n[reliability] model example: {steps} | {figures.line()}")  # noqa: T201
            finally:
                self.loop.run(self.intake.stop())
                self.loop.run(self.runtime.stop())
                self.loop.close()
                self.service.engine.dispose()
                self._database.__exit__(None, None, None)
                node.ctl("delete_vhost", self.vhost)

    return Delivery


def _run(node: RabbitNode, keys_dir: Path, tmp_path: Path, examples: int, steps: int) -> None:
    run_state_machine_as_test(
        machine(node, keys_dir, tmp_path, pool=steps * 12),
        settings=settings(
            max_examples=examples,
            stateful_step_count=steps,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        ),
    )


@HALF_OPENED
def test_every_step_once(node: RabbitNode, keys_dir: Path, tmp_path: Path) -> None:
    """The default run: one fixed walk through every step (the soak lets hypothesis choose)."""
    walk: Any = machine(node, keys_dir, tmp_path, pool=60)()
    try:
        walk.publish(12)
        walk.restart_broker()
        walk.publish(12)
        walk.kill_intake()
        walk.partner_resends(3)
        walk.close_connections()
        walk.publish(12)
        _wait_for_an_alert(walk)  # a replay needs something delivered to replay
        walk.replay_a_delivered_disclosure(5)
        walk.kill_intake()
        walk.publish(12)
    finally:
        walk.teardown()
    assert walk.replays == 1


def _wait_for_an_alert(walk: Any, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        with session_scope(walk.service.sessions) as session:
            if session.execute(select(col(MashAlert.id)).limit(1)).first() is not None:
                return
        time.sleep(0.2)
    raise AssertionError(f"no alert was stored within {within} s")


@pytest.mark.soak
@HALF_OPENED
def test_publish_replay_restart_kill_soak(node: RabbitNode, keys_dir: Path, tmp_path: Path) -> None:
    _run(node, keys_dir, tmp_path, examples=15, steps=20)
