"""``mash-broker run`` as a real process: it serves the queues and stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import urllib.parse

import pytest
from sqlalchemy import func, select

from broker.db import session_scope
from broker.models import MashAlert
from broker.samples import render_all
from broker.samples.catalogue import adapter_for, sender_for
from broker.service import Service
from tests.integration.helpers import eventually, publish_native
from tests.rabbitfixtures import management

pytestmark = [pytest.mark.rabbitmq]


def _alerts(service: Service) -> int:
    with session_scope(service.sessions) as session:
        return int(session.execute(select(func.count()).select_from(MashAlert)).scalar_one())


@pytest.mark.parametrize("db_backend", ["sqlite"], indirect=True)
async def test_run_serves_until_sigterm(service: Service) -> None:
    settings = service.settings
    env = {
        **os.environ,
        "MASH_ENVIRONMENT": "test",
        "MASH_AMQP__URL": settings.amqp.url.get_secret_value(),
        "MASH_DATABASE__URL": settings.database.url.get_secret_value(),
        "MASH_CRYPTO__KEYS_DIR": str(settings.crypto.keys_dir),
        "MASH_AGREEMENT_PATH": str(settings.agreement_path),
        "MASH_LOG_JSON": "true",
        "MASH_API__PORT": str(settings.api.port),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "broker", "run", env=env, stderr=asyncio.subprocess.PIPE
    )
    try:
        name, raw = next(
            (n, r) for n, r in sorted(render_all(1).items()) if n.endswith("reported.json")
        )
        await eventually(lambda: _topology_declared(service), within=20)
        await publish_native(service, [(adapter_for(name), raw, sender_for(adapter_for(name)))])
        await eventually(lambda: _alerts(service) == 1, within=30)
    except AssertionError:
        process.kill()
        _, killed_err = await process.communicate()
        raise AssertionError(killed_err.decode()[-3000:]) from None
    process.send_signal(signal.SIGTERM)
    _, raw_err = await asyncio.wait_for(process.communicate(), timeout=30)
    err = raw_err.decode()
    assert process.returncode == 0, err[-3000:]
    assert '"event": "service_stopped"' in err


def _topology_declared(service: Service) -> bool:
    """Whether the process has bound its ingest queues (messages then wait for it)."""
    vhost = urllib.parse.urlparse(service.settings.amqp.url.get_secret_value()).path[1:]
    try:
        bindings = management("GET", f"/exchanges/{vhost}/ingest/bindings/source")
    except OSError:
        return False
    return any(b["destination"] == "ingest.police" for b in bindings)
