"""The partner guide's example works as written: it is run against the API over HTTP."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from broker.api import create_app
from broker.service import Service
from tests.api.conftest import make_settings, signing_key
from tests.api.test_ingest import _police_sample

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "partners" / "integration.md"


def _example() -> dict[str, Any]:
    code = re.findall(r"```python\n(.*?)```", GUIDE.read_text(encoding="utf-8"), re.DOTALL)
    assert len(code) == 1
    namespace: dict[str, Any] = {}
    exec(compile(code[0], str(GUIDE), "exec"), namespace)  # noqa: S102 - our own document
    return namespace


@pytest.fixture
def served(tmp_path: Path, api_keys: Path) -> Iterator[str]:
    """The API on a loopback port, its public base URL being that address."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    base = f"http://127.0.0.1:{port}"
    settings = make_settings(
        f"sqlite:///{tmp_path / 'guide.db'}",
        api_keys,
        "amqp://guest:guest@127.0.0.1:1/",
        public_base_url=base,
    )
    service = Service.load(settings)
    server = uvicorn.Server(
        uvicorn.Config(create_app(service), host="127.0.0.1", port=port, log_config=None)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    try:
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        service.engine.dispose()


def test_the_guide_example_sends_a_police_record(served: str, api_keys: Path) -> None:
    example = _example()
    kid, key = signing_key(api_keys, "tvp-police")
    send = example["send"]
    with httpx.Client() as client:
        sent = send(
            served,
            "police",
            _police_sample(),
            party="tvp-police",
            kid=kid,
            private_key=key,
            idempotency_key="guide-1",
            client=client,
        )
        again = send(
            served,
            "police",
            _police_sample(),
            party="tvp-police",
            kid=kid,
            private_key=key,
            idempotency_key="guide-1",
            client=client,
        )
        refused = send(
            served, "fhir", b"{}", party="tvp-police", kid=kid, private_key=key, client=client
        )
    assert sent.status_code == 202, sent.text
    assert sent.json()["event_ids"]
    assert again.json() == sent.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert refused.status_code == 403
