"""Prometheus metrics: decisions counted from the audit chain, backlogs, lags, HTTP timings.

The decision counters (ingested, rejected, shared, refused, published, delivered,
dead-lettered) are read from the audit chain, not counted in memory: the chain is written
by every worker process, so one scrape of any API process sees the whole service, and the
counts survive restarts. Each scrape reads only the entries appended since the last one.
Labels are codes and queue names; never personal data.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client import Counter as PromCounter
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlmodel import col

from broker.db import session_scope, write_gate_stats
from broker.models import AuditEntry, AuditKind, OutboxMessage, OutboxStatus
from broker.service import Service

__all__ = ["CONTENT_TYPE", "ApiMetrics", "AuditCounters"]

#: The Prometheus text exposition format.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# kind → (metric name, help, whether the reason is a label)
_COUNTED: dict[AuditKind, tuple[str, str, bool]] = {
    AuditKind.RECEIVED: ("mash_events_ingested", "Canonical events ingested.", False),
    AuditKind.REJECTED: (
        "mash_messages_rejected",
        "Messages and requests rejected, by reason code.",
        True,
    ),
    AuditKind.SHARED: ("mash_disclosures_shared", "Disclosures decided and sealed.", False),
    AuditKind.REFUSED: (
        "mash_disclosures_refused",
        "Disclosures refused by the agreement, by reason code.",
        True,
    ),
    AuditKind.PUBLISHED: (
        "mash_disclosures_published",
        "Disclosures confirmed by RabbitMQ.",
        False,
    ),
    AuditKind.DELIVERED: (
        "mash_disclosures_delivered",
        "Disclosures stored by a recipient.",
        False,
    ),
    AuditKind.DEAD_LETTERED: (
        "mash_messages_dead_lettered",
        "Messages dead-lettered, by reason code.",
        True,
    ),
}


class AuditCounters:
    """Running totals of audit entries by kind and reason, caught up incrementally."""

    def __init__(self, service: Service) -> None:
        """Count the entries of ``service``'s audit chain."""
        self._service = service
        self._seq = 0
        self._counts: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()

    def refresh(self) -> Mapping[tuple[str, str], int]:
        """Read the entries appended since the last call; return the totals so far."""
        with self._lock, session_scope(self._service.sessions) as session:
            rows = session.execute(
                select(
                    col(AuditEntry.kind),
                    col(AuditEntry.reason),
                    func.count(),
                    func.max(col(AuditEntry.seq)),
                )
                .where(col(AuditEntry.seq) > self._seq)
                .group_by(col(AuditEntry.kind), col(AuditEntry.reason))
            ).all()
            for kind, reason, count, top in rows:
                self._counts[(str(AuditKind(kind).value), reason or "")] += int(count)
                self._seq = max(self._seq, int(top))
            return dict(self._counts)


class _Snapshot(Collector):
    """Yields the metrics computed by the last ``ApiMetrics.render`` call."""

    def __init__(self) -> None:
        self.metrics: list[Metric] = []

    def collect(self) -> Iterator[Metric]:
        yield from self.metrics


class ApiMetrics:
    """The API process's metric registry: HTTP timings live, the rest computed per scrape."""

    def __init__(self, service: Service) -> None:
        """Metrics about ``service``; a registry of its own, so apps do not share state."""
        self._service = service
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Histogram(
            "mash_http_request_duration_seconds",
            "HTTP request duration by route template, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
        )
        self.rate_limited = PromCounter(
            "mash_http_rate_limited",
            "Requests refused by the per-partner rate limit.",
            ["party"],
            registry=self.registry,
        )
        self._audit = AuditCounters(service)
        self._snapshot = _Snapshot()
        self.registry.register(self._snapshot)
        self._render_lock = threading.Lock()

    def render(self, queue_depths: Mapping[str, int] | None) -> bytes:
        """The exposition text; reads the database (blocking: call it in a thread).

        Args:
            queue_depths: messages ready per queue, or None when RabbitMQ did not answer.
        """
        with self._render_lock:
            self._snapshot.metrics = self._compute(queue_depths)
            return generate_latest(self.registry)

    def _compute(self, queue_depths: Mapping[str, int] | None) -> list[Metric]:
        metrics: list[Metric] = []
        totals = self._audit.refresh()
        for kind, (name, help_text, by_reason) in _COUNTED.items():
            family = CounterMetricFamily(name, help_text, labels=["reason"] if by_reason else [])
            if by_reason:
                for (counted, reason), value in sorted(totals.items()):
                    if counted == kind.value:
                        family.add_metric([reason or "none"], value)
            else:
                family.add_metric([], sum(v for (k, _), v in totals.items() if k == kind.value))
            metrics.append(family)
        backlog, oldest = self._outbox()
        metrics.append(
            GaugeMetricFamily(
                "mash_outbox_backlog", "Outbox rows waiting to be published.", backlog
            )
        )
        lag = (datetime.now(UTC) - oldest).total_seconds() if oldest is not None else 0.0
        metrics.append(
            GaugeMetricFamily(
                "mash_relay_lag_seconds", "Age of the oldest unpublished outbox row.", max(lag, 0.0)
            )
        )
        metrics.append(
            GaugeMetricFamily(
                "mash_amqp_up",
                "Whether RabbitMQ answered this scrape.",
                int(queue_depths is not None),
            )
        )
        depth = GaugeMetricFamily(
            "mash_queue_messages_ready",
            "Messages waiting in each queue (consumer lag).",
            labels=["queue"],
        )
        for queue, count in sorted((queue_depths or {}).items()):
            depth.add_metric([queue], count)
        metrics.append(depth)
        metrics.extend(self._write_gate())
        return metrics

    def _write_gate(self) -> list[Metric]:
        """SQLite's write gate as this process's writers met it (none on PostgreSQL)."""
        gate = write_gate_stats(self._service.sessions)
        if gate is None:
            return []
        return [
            CounterMetricFamily(
                "mash_db_write_gate_transactions",
                "Write transactions of this process through SQLite's write gate.",
                gate.transactions,
            ),
            CounterMetricFamily(
                "mash_db_write_gate_held_seconds",
                "Time this process held SQLite's write gate (its rate near 1: writers queue).",
                gate.held_seconds,
            ),
            CounterMetricFamily(
                "mash_db_write_gate_wait_seconds",
                "Time this process's writers waited for SQLite's write gate, summed.",
                gate.waited_seconds,
            ),
        ]

    def _outbox(self) -> tuple[int, datetime | None]:
        with session_scope(self._service.sessions) as session:
            count, oldest = session.execute(
                select(func.count(), func.min(col(OutboxMessage.created_at))).where(
                    col(OutboxMessage.status) == OutboxStatus.PENDING
                )
            ).one()
        if isinstance(oldest, datetime) and oldest.tzinfo is None:
            oldest = oldest.replace(tzinfo=UTC)
        return int(count), oldest
