"""HTTP ingest latency: a second process drives 2 KB police messages at a fixed rate over loopback.

    .venv/bin/python bench/bench_http.py [--rate 200] [--seconds 30] [--database-url URL]
                                         [--workers 1]

The script starts the API in a child process (uvicorn, one worker unless ``--workers``
says more, demo keys, a fresh SQLite file under a temporary directory, or with a
PostgreSQL ``--database-url`` a fresh schema in that database, dropped afterwards), then
sends
``POST /v1/ingest/police`` at ``--rate`` requests per second on an open-loop schedule:
request *i* is due at ``start + i / rate`` whatever happened to the ones before, and its
latency is counted from when it was due, so a stall shows up in the figures instead of
slowing the load down. Every request carries a fresh client assertion signed with PyJWT
and a distinct 2,048-byte police record (so none is a duplicate). Requests go over up to
200 keep-alive connections through a minimal HTTP/1.1 client of this script's own: httpx
spent up to 14 ms of CPU a request once requests queued, and on a machine of two cores
that starved the server it was measuring. It prints p50, p90,
p99 and max latency, the achieved rate, the answers other than 202 (a request that fails
at the transport counts too, its latency up to the failure) and the machine's load
average before and after, and exits 1 if p99 is over ``--target-ms`` or any request
was not accepted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
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
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

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


def serve(port: int, directory: Path, database_url: str, workers: int = 1) -> None:
    """The server side (child process): the API alone, as ``mash-broker run`` serves it.

    With ``workers`` over 1, that many uvicorn worker processes share the port, each with
    the API of its own (as several ``mash-broker run --only api`` would); the database
    is migrated once here first.
    """
    import uvicorn  # noqa: PLC0415

    from broker.logging import configure_logging  # noqa: PLC0415
    from broker.service import Service  # noqa: PLC0415

    configure_logging("warning", json=True)
    if workers > 1:
        Service.load(_settings(port, directory, database_url)).engine.dispose()
        os.environ.update(
            {_ENV_PORT: str(port), _ENV_DIR: str(directory), _ENV_DATABASE: database_url}
        )
        uvicorn.run(
            f"{Path(__file__).stem}:app_from_environment",
            factory=True,
            app_dir=str(Path(__file__).parent),
            workers=workers,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            access_log=False,
        )
        return
    app = _app(port, directory, database_url)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


_ENV_PORT = "BENCH_HTTP_PORT"
_ENV_DIR = "BENCH_HTTP_DIR"
_ENV_DATABASE = "BENCH_HTTP_DATABASE_URL"
_ENV_PREPARE = "BENCH_HTTP_PREPARE_PROCESSES"


def app_from_environment() -> Any:
    """The API for one uvicorn worker process of ``serve`` (its settings in the environment)."""
    from broker.logging import configure_logging  # noqa: PLC0415

    configure_logging("warning", json=True)
    return _app(int(os.environ[_ENV_PORT]), Path(os.environ[_ENV_DIR]), os.environ[_ENV_DATABASE])


def _app(port: int, directory: Path, database_url: str) -> Any:
    from broker.api import create_app  # noqa: PLC0415
    from broker.service import Service  # noqa: PLC0415

    app = create_app(Service.load(_settings(port, directory, database_url)))
    # As ``mash-broker run`` does once started (broker.runtime): what start-up made is
    # exempt from garbage collection, else each full collection pauses every request for
    # 100-200 ms walking it.
    gc.collect()
    gc.freeze()
    return app


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
            prepare_processes=int(os.environ.get(_ENV_PREPARE, "0")),
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


async def drive(
    base: str,
    kid: str,
    key: Ed25519PrivateKey,
    rate: float,
    seconds: float,
    *,
    idempotency_keys: bool = False,
) -> tuple[float, int]:
    """Send the load; print the figures; return the p99 latency (ms) and the failures.

    With ``idempotency_keys`` each request carries an ``Idempotency-Key`` of its own, as
    the partner guide advises (a retry would send it again).
    """
    total = int(rate * seconds)
    bodies = [_message(n) for n in range(total)]
    path = "/v1/ingest/police"
    latencies: list[float] = []
    failures: dict[int | str, int] = {}
    http = _Connections(base, limit=200)
    try:
        # Warm up: connections, imports and the first database writes.
        for n in range(_WARM_UP):
            await http.post(path, _message(10_000_000 + n), _auth(kid, key, base))
        start = time.perf_counter()

        async def one(i: int) -> None:
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            outcome: int | str
            headers = _auth(kid, key, base)
            if idempotency_keys:
                headers["Idempotency-Key"] = str(uuid.uuid4())
            try:
                outcome = await http.post(path, bodies[i], headers)
            except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError) as exc:
                outcome = type(exc).__name__
            latencies.append(time.perf_counter() - due)
            if outcome != 202:
                failures[outcome] = failures.get(outcome, 0) + 1

        # The load generator's own collector stays off while it sends: a full collection of
        # its thousands of waiting requests paused it for 18-34 ms once a run, and the
        # requests due meanwhile counted that pause as the server's latency.
        gc.disable()
        try:
            await asyncio.gather(*(one(i) for i in range(total)))
        finally:
            gc.enable()
        elapsed = time.perf_counter() - start
    finally:
        http.close()
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
    return pct(99), sum(failures.values())


class _Connection:
    """One keep-alive HTTP/1.1 connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def exchange(self, request: bytes) -> tuple[int, bool]:
        """Send ``request``; read the answer. Returns its status and whether to keep going."""
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length = 0
        chunked = False
        keep = True
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name, value = name.strip().lower(), value.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding":
                chunked = value == "chunked"
            elif name == "connection" and value == "close":
                keep = False
        if not chunked:
            await self.reader.readexactly(length)
            return status, keep
        while size := int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16):
            await self.reader.readexactly(size + 2)
        await self.reader.readuntil(b"\r\n")  # the end of the (empty) trailer
        return status, keep

    def close(self) -> None:
        self.writer.close()


class _Connections:
    """Up to ``limit`` keep-alive connections to one server, reused as they come free."""

    def __init__(self, base: str, *, limit: int, timeout: float = 30.0) -> None:
        address = base.removeprefix("http://")
        host, _, port = address.partition(":")
        self._host = host
        self._port = int(port)
        self._address = address
        self._limit = limit
        self._timeout = timeout
        self._opened = 0
        # Free connections; None stands for one that broke (open a new one instead).
        self._free: asyncio.Queue[_Connection | None] = asyncio.Queue()
        self._all: set[_Connection] = set()

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> int:
        """POST ``body``; the answer's status.

        Raises:
            OSError, asyncio.IncompleteReadError, TimeoutError, ValueError: it failed.
        """
        lines = [f"POST {path} HTTP/1.1", f"Host: {self._address}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        lines.append(f"Content-Length: {len(body)}")
        request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
        connection = await self._take()
        try:
            async with asyncio.timeout(self._timeout):
                status, keep = await connection.exchange(request)
        except BaseException:
            self._drop(connection)
            raise
        if keep:
            self._free.put_nowait(connection)
        else:
            self._drop(connection)
        return status

    async def _take(self) -> _Connection:
        if self._free.empty() and self._opened < self._limit:
            self._opened += 1
            return await self._open()
        free = await self._free.get()
        return free if free is not None else await self._open()

    async def _open(self) -> _Connection:
        try:
            reader, writer = await asyncio.open_connection(self._host, self._port)
        except BaseException:
            self._free.put_nowait(None)
            raise
        connection = _Connection(reader, writer)
        self._all.add(connection)
        return connection

    def _drop(self, connection: _Connection) -> None:
        connection.close()
        self._all.discard(connection)
        self._free.put_nowait(None)

    def close(self) -> None:
        """Close every connection."""
        for connection in self._all:
            connection.close()
        self._all.clear()


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


@contextlib.contextmanager
def _database(url: str | None, directory: Path) -> Iterator[str]:
    """A fresh database: a SQLite file in ``directory``, or a new schema of ``url``'s."""
    if url is None:
        yield f"sqlite:///{directory / 'bench.db'}"
        return
    from sqlalchemy import text  # noqa: PLC0415

    from broker.db import make_engine  # noqa: PLC0415

    if not url.startswith("postgres"):
        yield url
        return
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    admin = make_engine(url)
    try:
        with admin.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        separator = "&" if "?" in url else "?"
        yield f"{url}{separator}options={quote(f'-csearch_path={schema}')}"
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


def main() -> int:
    """Parse the arguments; serve (child) or drive (parent)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--target-ms", type=float, default=25.0)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument(
        "--prepare-processes", type=int, default=0, help="api.prepare_processes of the server"
    )
    parser.add_argument(
        "--idempotency-keys",
        action="store_true",
        help="send an Idempotency-Key with each request, as the partner guide advises",
    )
    parser.add_argument("--serve", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--dir", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        serve(args.serve, args.dir, args.database_url, args.workers)
        return 0
    with (
        tempfile.TemporaryDirectory(prefix="bench-http-") as tmp,
        _database(args.database_url, Path(tmp)) as database_url,
    ):
        directory = Path(tmp)
        kid, key = _prepare_keys(directory)
        port = _free_port()
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
                "--workers",
                str(args.workers),
            ],
            env={
                **os.environ,
                "MASH_LOG_JSON": "true",
                _ENV_PREPARE: str(args.prepare_processes),
            },
        )
        base = f"http://127.0.0.1:{port}"
        try:
            _wait_until_up(base)
            before = os.getloadavg()
            cpu_before = _server_cpu_seconds(server.pid)
            p99, failed = asyncio.run(
                drive(
                    base,
                    kid,
                    key,
                    args.rate,
                    args.seconds,
                    idempotency_keys=args.idempotency_keys,
                )
            )
            cpu_after = _server_cpu_seconds(server.pid)
            after = os.getloadavg()
        finally:
            server.send_signal(signal.SIGINT)
            server.wait(timeout=30)
    print(f"load average (1 min) before {before[0]:.2f}, after {after[0]:.2f}")
    if cpu_before is not None and cpu_after is not None:
        sent = int(args.rate * args.seconds) + _WARM_UP
        print(f"server CPU {(cpu_after - cpu_before) / sent * 1000:.2f} ms a request")
    met = p99 <= args.target_ms and not failed
    print(f"p99 {p99:.1f} ms: target <= {args.target_ms:.0f} ms {'met' if met else 'MISSED'}")
    return 0 if met else 1


_WARM_UP = 20


def _server_cpu_seconds(pid: int) -> float | None:
    """CPU seconds used so far by the server process and its workers (Linux), or None."""
    total = 0.0
    try:
        ticks = os.sysconf("SC_CLK_TCK")
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError):
                fields = stat.read_text().rsplit(")", 1)[1].split()
                # After the name: state, ppid, ... utime and stime are the 12th and 13th.
                if int(stat.parent.name) == pid or int(fields[1]) == pid:
                    total += (int(fields[11]) + int(fields[12])) / ticks
    except (OSError, ValueError):
        return None
    return total


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
