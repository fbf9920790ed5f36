"""HTTP ingest latency: a second process drives 2 KB police messages at a fixed rate over loopback.

    .venv/bin/python bench/bench_http.py [--rate 200] [--seconds 30] [--database-url URL]

The script starts the API in a child process (uvicorn, one worker, a fresh SQLite file
under a temporary directory unless ``--database-url`` is given, demo keys), then sends
``POST /v1/ingest/police`` at ``--rate`` requests per second on an open-loop schedule:
request *i* is due at ``start + i / rate`` whatever happened to the ones before, and its
latency is counted from when it was due, so a stall shows up in the figures instead of
slowing the load down. Every request carries a fresh client assertion signed with PyJWT
and a distinct 2,048-byte police record (so none is a duplicate). It prints p50, p90,
p99 and max latency and the achieved rate, and exits 1 if p99 is over ``--target-ms``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "samples" / "police" / "episode-01-reported.json"
PARTY = "tvp-police"
MESSAGE_BYTES = 2048


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def serve(port: int, directory: Path, database_url: str) -> None:
    """The server side (child process): the API alone, as ``mash-broker run`` serves it."""
    import uvicorn  # noqa: PLC0415

    from broker.api import create_app  # noqa: PLC0415
    from broker.logging import configure_logging  # noqa: PLC0415
    from broker.service import Service  # noqa: PLC0415

    configure_logging("warning", json=True)
    settings = _settings(port, directory, database_url)
    app = create_app(Service.load(settings))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def _settings(port: int, directory: Path, database_url: str) -> Any:
    from pydantic import SecretStr  # noqa: PLC0415

    from broker.settings import (  # noqa: PLC0415
        ApiSettings,
        CryptoSettings,
        DatabaseSettings,
        Settings,
    )

    return Settings(
        _env_file=None,
        environment="test",
        log_level="warning",
        agreement_path=ROOT / "policy" / "agreement.yaml",
        database=DatabaseSettings(url=SecretStr(database_url)),
        crypto=CryptoSettings(keys_dir=directory / "keys", service_party="wam-broker"),
        api=ApiSettings(
            port=port,
            public_base_url=f"http://127.0.0.1:{port}",
            rate_per_second=10_000,
            rate_burst=10_000,
        ),
    )


def _prepare_keys(directory: Path) -> tuple[str, Ed25519PrivateKey]:
    from broker.demokeys import ensure_demo_keys  # noqa: PLC0415
    from broker.keys import PartyKeys  # noqa: PLC0415
    from broker.policy import load_agreement  # noqa: PLC0415

    keys = directory / "keys"
    ensure_demo_keys(keys, load_agreement(ROOT / "policy" / "agreement.yaml"), "wam-broker")
    signing = PartyKeys.load(keys, PARTY).signing
    assert signing is not None  # noqa: S101 - demo keys always sign
    private = signing.key.private_key
    assert isinstance(private, Ed25519PrivateKey)  # noqa: S101 - Ed25519 by construction
    return signing.kid, private


def _message(n: int) -> bytes:
    """A distinct police record of exactly ``MESSAGE_BYTES`` bytes."""
    record = json.loads(SAMPLE.read_bytes())
    record["report"]["circumstances"] = f"Benchmark record {n}. "
    size = len(json.dumps(record).encode())
    record["report"]["circumstances"] += "x" * (MESSAGE_BYTES - size)
    body = json.dumps(record).encode()
    assert len(body) == MESSAGE_BYTES, len(body)  # noqa: S101 - the benchmark's premise
    return body


async def drive(base: str, kid: str, key: Ed25519PrivateKey, rate: float, seconds: float) -> float:
    """Send the load; print the figures; return the p99 latency in milliseconds."""
    total = int(rate * seconds)
    bodies = [_message(n) for n in range(total)]
    path = "/v1/ingest/police"
    latencies: list[float] = []
    failures: dict[int, int] = {}
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as http:
        # Warm up: connections, imports and the first database writes.
        for n in range(20):
            await http.post(path, content=_message(10_000_000 + n), headers=_auth(kid, key, base))
        start = time.perf_counter()

        async def one(i: int) -> None:
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            headers = _auth(kid, key, base)
            answer = await http.post(path, content=bodies[i], headers=headers)
            latencies.append(time.perf_counter() - due)
            if answer.status_code != 202:
                failures[answer.status_code] = failures.get(answer.status_code, 0) + 1

        await asyncio.gather(*(one(i) for i in range(total)))
        elapsed = time.perf_counter() - start
    ordered = sorted(latencies)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000

    print(f"requests {total} in {elapsed:.1f} s: {total / elapsed:.0f}/s (target {rate:.0f}/s)")
    print(
        f"latency ms: p50 {pct(50):.1f}  p90 {pct(90):.1f}  p99 {pct(99):.1f}  "
        f"max {ordered[-1] * 1000:.1f}  mean {statistics.mean(ordered) * 1000:.1f}"
    )
    if failures:
        print(f"not accepted: {failures}")
    return pct(99)


def _auth(kid: str, key: Ed25519PrivateKey, base: str) -> dict[str, str]:
    now = int(time.time())
    claims = {
        "iss": PARTY,
        "sub": PARTY,
        "aud": f"{base}/v1/ingest/police",
        "iat": now,
        "exp": now + 60,
        "jti": str(uuid.uuid4()),
    }
    token = jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": kid})
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


def main() -> int:
    """Parse the arguments; serve (child) or drive (parent)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--target-ms", type=float, default=25.0)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--serve", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--dir", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        serve(args.serve, args.dir, args.database_url)
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-http-") as tmp:
        directory = Path(tmp)
        kid, key = _prepare_keys(directory)
        port = _free_port()
        database_url = args.database_url or f"sqlite:///{directory / 'bench.db'}"
        server = subprocess.Popen(  # noqa: S603 - this very script, fixed arguments
            [
                sys.executable,
                __file__,
                "--serve",
                str(port),
                "--dir",
                str(directory),
                "--database-url",
                database_url,
            ],
            env={**os.environ, "MASH_LOG_JSON": "true"},
        )
        base = f"http://127.0.0.1:{port}"
        try:
            _wait_until_up(base)
            p99 = asyncio.run(drive(base, kid, key, args.rate, args.seconds))
        finally:
            server.send_signal(signal.SIGINT)
            server.wait(timeout=30)
    met = p99 <= args.target_ms
    print(f"p99 {p99:.1f} ms: target <= {args.target_ms:.0f} ms {'met' if met else 'MISSED'}")
    return 0 if met else 1


def _wait_until_up(base: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit("the API did not start within 60 s")


if __name__ == "__main__":
    sys.exit(main())
