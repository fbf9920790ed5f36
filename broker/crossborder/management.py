"""The RabbitMQ management HTTP API calls a link needs: shovel parameters, their state, queues."""

from __future__ import annotations

import base64
import json
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from broker.exceptions import ConfigurationError, TransportError
from broker.settings import AmqpSettings

__all__ = ["Management", "QueueDepth", "ShovelState", "vhost_of"]

_MAX_REASON = 200
# The user-info part of a URI: everything between "://" and the "@" before the host.
_USERINFO = re.compile(r"(?<=://)[^/@\s]*@")


def vhost_of(settings: AmqpSettings) -> str:
    """The virtual host of the broker's own AMQP URL (``/`` when it names none)."""
    path = urlsplit(settings.url.get_secret_value()).path
    return unquote(path[1:]) if len(path) > 1 else "/"


@dataclass(frozen=True, slots=True)
class ShovelState:
    """A running shovel as RabbitMQ reports it (URIs without credentials)."""

    name: str
    #: ``running``, ``starting`` (connecting, or waiting to reconnect) or ``terminated``.
    state: str
    #: Why it stopped, as RabbitMQ says it, shortened; None while it runs.
    reason: str | None
    destination: str | None


@dataclass(frozen=True, slots=True)
class QueueDepth:
    """How many messages a queue holds."""

    #: Waiting to be delivered.
    ready: int
    #: Delivered (to the shovel) and not yet acknowledged.
    unacked: int

    @property
    def total(self) -> int:
        """Every message in the queue."""
        return self.ready + self.unacked


class Management:
    """A client of the management API, with the broker's own RabbitMQ credentials.

    Setting a shovel parameter needs the ``policymaker`` (or ``administrator``) tag on the
    user; reading state needs ``monitoring`` or ``management``.
    """

    def __init__(self, base_url: str, username: str, password: str, *, timeout: float) -> None:
        """Talk to ``base_url`` (e.g. ``http://127.0.0.1:15672``) as ``username``."""
        scheme = urlsplit(base_url).scheme
        if scheme not in ("http", "https"):
            raise ConfigurationError(
                f"amqp.management_url: {scheme or 'no scheme'} is not http or https"
            )
        self._base = base_url.rstrip("/") + "/api"
        token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
        self._auth = f"Basic {token}"
        self._timeout = timeout

    @classmethod
    def from_settings(cls, settings: AmqpSettings) -> Management:
        """A client for ``settings.management_url`` with the credentials of ``settings.url``."""
        parts = urlsplit(settings.url.get_secret_value())
        return cls(
            settings.management_url,
            unquote(parts.username or ""),
            unquote(parts.password or ""),
            timeout=settings.timeout_seconds,
        )

    # ----------------------------------------------------------------- shovels

    def put_shovel(self, vhost: str, name: str, value: dict[str, Any]) -> None:
        """Create or replace the dynamic shovel ``name`` in ``vhost``.

        Raises:
            ConfigurationError: RabbitMQ refused the definition or our credentials.
            TransportError: the management API is unreachable.
        """
        self._call("PUT", f"/parameters/shovel/{_q(vhost)}/{_q(name)}", {"value": value})

    def delete_shovel(self, vhost: str, name: str) -> bool:
        """Delete the shovel ``name``; False when there was none."""
        try:
            self._call("DELETE", f"/parameters/shovel/{_q(vhost)}/{_q(name)}")
        except _NotFound:
            return False
        return True

    def shovel_names(self, vhost: str) -> frozenset[str]:
        """The dynamic shovels defined in ``vhost`` (their definitions are not read)."""
        try:
            found = self._call("GET", f"/parameters/shovel/{_q(vhost)}")
        except _NotFound:
            return frozenset()
        return frozenset(str(item["name"]) for item in found or ())

    def shovel_states(self, vhost: str) -> dict[str, ShovelState]:
        """Each shovel running (or trying to) in ``vhost``, by name."""
        try:
            found = self._call("GET", f"/shovels/{_q(vhost)}")
        except _NotFound:
            return {}
        states: dict[str, ShovelState] = {}
        for item in found or ():
            reason = item.get("reason")
            states[str(item["name"])] = ShovelState(
                name=str(item["name"]),
                state=str(item.get("state", "unknown")),
                reason=_short(str(reason)) if reason else None,
                # RabbitMQ reports the destination URI with its credentials removed.
                destination=_without_credentials(item.get("dest_uri")),
            )
        return states

    # ----------------------------------------------------------------- queues

    def queue_depth(self, vhost: str, queue: str) -> QueueDepth | None:
        """How many messages ``queue`` holds, or None when it does not exist."""
        try:
            found = self._call("GET", f"/queues/{_q(vhost)}/{_q(queue)}")
        except _NotFound:
            return None
        return QueueDepth(
            ready=int(found.get("messages_ready", 0) or 0),
            unacked=int(found.get("messages_unacknowledged", 0) or 0),
        )

    # ----------------------------------------------------------------- transport

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        request = urllib.request.Request(  # noqa: S310 - the scheme is checked in __init__
            self._base + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": self._auth, "content-type": "application/json"},
        )
        what = f"management API {method} {path.split('/', 2)[1]}"
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:  # noqa: S310
                data = response.read()
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                raise _NotFound(what) from None
            if exc.code in (401, 403):
                raise ConfigurationError(
                    f"{what}: refused ({exc.code}); the broker's RabbitMQ user needs the "
                    f"policymaker tag to link and monitoring to watch"
                ) from None
            if exc.code == 400:
                reason = _reason_of(exc)
                raise ConfigurationError(f"{what}: refused as invalid ({reason})") from None
            raise TransportError(f"{what}: HTTP {exc.code}") from None
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            raise TransportError(f"{what}: unreachable ({type(exc).__name__})") from None
        return json.loads(data) if data else None


class _NotFound(TransportError):
    """A 404 from the management API: no such vhost, queue or shovel."""


def _q(name: str) -> str:
    return quote(name, safe="")


def _short(text: str) -> str:
    """A RabbitMQ reason, cut short and without any credentials it may quote."""
    cleaned = _without_credentials(text) or ""
    return cleaned if len(cleaned) <= _MAX_REASON else cleaned[: _MAX_REASON - 3] + "..."


def _without_credentials(text: object) -> str | None:
    """``text`` with the ``user:password@`` of every URI in it removed."""
    if not isinstance(text, str):
        return None
    return _USERINFO.sub("", text)


def _reason_of(exc: urllib.error.HTTPError) -> str:
    """RabbitMQ's reason for a 400, without the values it may quote (the URI among them)."""
    try:
        reason = json.loads(exc.read()).get("reason", "")
    except (ValueError, AttributeError, OSError):
        return "no reason given"
    return _short(str(reason)) if reason else "no reason given"
