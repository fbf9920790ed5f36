"""A private RabbitMQ node for fault tests: restarted, alarmed and cut without touching others.

``stop_app``, ``start_app`` and ``set_disk_free_limit`` act on a whole node, so on the shared
server they would disturb every other test. A node of our own (its own name, ports, data
and cookie in a temporary directory, loopback only, no plugins) starts in about five
seconds from the Debian package's scripts.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
CTL = Path("/usr/lib/rabbitmq/bin/rabbitmqctl")


def available() -> bool:
    """Whether this machine has the RabbitMQ server scripts."""
    return SERVER.exists() and CTL.exists()


#: Ports below Linux's default ephemeral range (32768-60999): one the kernel handed out
#: as free is soon another connection's local port, and a server started on it a moment
#: later fails with ``eaddrinuse``.
_PRIVATE_PORTS = range(20_000, 32_000)


def listening_port() -> int:
    """A loopback port free now, outside the range outgoing connections take theirs from."""
    chooser = random.SystemRandom()
    for _ in range(100):
        port = chooser.choice(_PRIVATE_PORTS)
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free loopback port found")


class RabbitNode:
    """One RabbitMQ node of our own on loopback ports, with its data under ``base``."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.name = f"mashrel-{uuid.uuid4().hex[:8]}@localhost"
        self._process: subprocess.Popen[bytes] | None = None
        base.mkdir(parents=True, exist_ok=True)
        (base / "enabled_plugins").write_text("[].\n")
        (base / "env.conf").write_text("")
        self.env = {
            **os.environ,
            "HOME": str(base),
            "RABBITMQ_CONF_ENV_FILE": str(base / "env.conf"),
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_DIST_PORT": "0",
            "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(base / "log"),
            "RABBITMQ_LOGS": str(base / "log" / "node.log"),
            "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
            "RABBITMQ_PLUGINS_EXPAND_DIR": str(base / "plugins-expand"),
            "RABBITMQ_PID_FILE": str(base / "pid"),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "ERL_FLAGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        }
        self.port = 0
        self._choose_ports()

    def _choose_ports(self) -> None:
        self.port = listening_port()
        self.env["RABBITMQ_DIST_PORT"] = str(listening_port())
        (self.base / "rabbitmq.conf").write_text(
            f"listeners.tcp.1 = 127.0.0.1:{self.port}\nloopback_users = none\n"
        )

    def url(self, vhost: str = "/") -> str:
        quoted = "%2F" if vhost == "/" else vhost
        return f"amqp://guest:guest@127.0.0.1:{self.port}/{quoted}"

    def start(self, timeout: float = 90) -> None:
        """Start the node and wait until it accepts connections.

        A port taken between choosing it and listening on it (``eaddrinuse``) is not the
        node's fault: it starts again on other ports, up to three times.
        """
        for attempt in range(3):
            out_file = self.base / "server.out"
            seen = out_file.stat().st_size if out_file.exists() else 0
            with out_file.open("ab") as out:
                self._process = subprocess.Popen(  # noqa: S603 - the packaged server script
                    [str(SERVER)], env=self.env, stdout=out, stderr=out, start_new_session=True
                )
            try:
                self.ctl(
                    "wait", str(self.base / "pid"), "--timeout", str(int(timeout)), timeout=timeout
                )
            except RuntimeError:
                with out_file.open("rb") as log:
                    log.seek(seen)
                    taken = b"eaddrinuse" in log.read()
                if not taken or attempt == 2:
                    raise
                self._process.wait(timeout=60)
                self._choose_ports()
            else:
                return

    def ctl(self, *args: str, timeout: float = 60) -> str:
        """Run rabbitmqctl against this node and return its output."""
        done = subprocess.run(  # noqa: S603 - the packaged CLI, arguments from the tests
            [str(CTL), "-n", self.name, "-q", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)}: {done.stderr.strip()[-500:]}")
        return done.stdout

    def add_vhost(self, name: str) -> str:
        self.ctl("add_vhost", name)
        self.ctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
        return name

    def restart_app(self) -> float:
        """``stop_app`` then ``start_app``; returns the seconds it was down."""
        started = time.monotonic()
        self.ctl("stop_app")
        self.ctl("start_app")
        return time.monotonic() - started

    def close_connections(self, vhost: str) -> int:
        """Close every client connection in ``vhost`` from the server side; how many."""
        listed = self.ctl("list_connections", "-p", vhost, "pid")
        count = sum(1 for line in listed.splitlines() if line.strip().startswith("<"))
        self.ctl("close_all_connections", "--vhost", vhost, "closed by the reliability suite")
        return count

    def disk_alarm(self, on: bool) -> None:
        """Raise the free-disk limit above the disk's size (alarm), or restore it."""
        self.ctl("set_disk_free_limit", "1000000GB" if on else "50MB")

    def rss_kb(self) -> int:
        """Resident memory of the node's Erlang VM, in KiB."""
        pid = int((self.base / "pid").read_text().strip())
        return rss_kb(pid)

    def stop(self) -> None:
        """Stop the node and remove its data."""
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            self.ctl("stop", timeout=60)
        process = self._process
        if process is not None:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        shutil.rmtree(self.base, ignore_errors=True)


def rss_kb(pid: int) -> int:
    """Resident memory of process ``pid`` in KiB (from /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")
