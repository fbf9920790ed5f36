"""A private PostgreSQL server for the database-outage test: stopped and started at will.

Stopping the shared server would fail every other test running on this machine; a cluster
of our own (initdb in a temporary directory, loopback only, run as the ``postgres`` user
since the server refuses root) starts in about two seconds.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.reliability.rabbitnode import listening_port

BIN = Path("/usr/lib/postgresql/15/bin")


def available() -> bool:
    """Whether this machine has the PostgreSQL server binaries and a ``postgres`` user."""
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return False
    return (BIN / "initdb").exists() and shutil.which("runuser") is not None


class PostgresNode:
    """One PostgreSQL cluster on a loopback port, with its data in a temporary directory."""

    def __init__(self) -> None:
        # Not under pytest's tmp_path: its parents are root's and closed to other users.
        self.base = base = Path(tempfile.mkdtemp(prefix="mash-pg-"))
        # Outside the ephemeral range: the port must stay free while the server is down.
        self.port = listening_port()
        owner = pwd.getpwnam("postgres")
        os.chown(base, owner.pw_uid, owner.pw_gid)
        self._run("initdb", "-D", str(base / "data"), "-A", "trust", "-U", "postgres")

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run(  # noqa: S603 - the packaged server tools, arguments from the tests
            ["runuser", "-u", "postgres", "--", str(BIN / tool), *args],  # noqa: S607
            capture_output=True,
            timeout=120,
            check=True,
            cwd=self.base,
        )

    def start(self) -> None:
        options = f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            "pg_ctl", "-D", str(self.base / "data"), "-l", str(self.base / "pg.log"),
            "-w", "-o", options, "start",
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.base / "data"), "-m", mode, "-w", "stop")

    def remove(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):  # already stopped
            self.stop("immediate")
        shutil.rmtree(self.base, ignore_errors=True)
