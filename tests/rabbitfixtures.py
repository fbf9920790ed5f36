"""RabbitMQ fixtures for every test that needs the real server: a virtual host per test."""

from __future__ import annotations

import base64
import json
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

MANAGEMENT = "http://127.0.0.1:15672/api"
_AUTH = "Basic " + base64.b64encode(b"guest:guest").decode()


def management(method: str, path: str, body: Any = None) -> Any:
    """Call the RabbitMQ management API (loopback only) and decode its answer."""
    request = urllib.request.Request(  # noqa: S310 - fixed http://127.0.0.1 management URL
        MANAGEMENT + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": _AUTH, "content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - as above
        data = response.read()
    return json.loads(data) if data else None


def quoted(name: str) -> str:
    return urllib.parse.quote(name, safe="")


@pytest.fixture
def vhost() -> Iterator[str]:
    """A fresh virtual host, deleted (with everything in it) after the test."""
    name = f"mash-test-{uuid.uuid4().hex[:12]}"
    management("PUT", f"/vhosts/{quoted(name)}", {})
    management(
        "PUT",
        f"/permissions/{quoted(name)}/guest",
        {"configure": ".*", "write": ".*", "read": ".*"},
    )
    try:
        yield name
    finally:
        management("DELETE", f"/vhosts/{quoted(name)}")


@pytest.fixture
def amqp_url(vhost: str) -> str:
    return f"amqp://guest:guest@127.0.0.1:5672/{quoted(vhost)}"
