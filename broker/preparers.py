"""Prepare processes: messages translated, decided and sealed outside the serving process.

They also open (decrypt and verify) disclosures for the MASH intake, the other pure-CPU
step of the path.

Preparing a message (``Ingestor.prepare``: the adapter, the policy, one JOSE seal per
recipient) is pure CPU and holds the GIL throughout; in the process that also serves
HTTP and stores batches it makes every other thread wait. ``PrepareProcesses`` runs it
in spawned processes, each with the service loaded once, and talks to them over a
socket pair from the event loop itself: a request is pickled and written on the loop,
the prepared message is read and unpickled there. No thread is involved (a
``ProcessPoolExecutor`` adds two, a queue feeder and a result reader, each of which
must win the GIL back for every message).

A process that dies (killed, out of memory) fails the messages it held with
``PrepareProcessDied``; nothing of them was stored, so the caller prepares them in
another way. A replacement is started at once and takes work once it has loaded.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import multiprocessing
import pickle
import signal
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.process import BaseProcess
from typing import Any

from broker.exceptions import BrokerError
from broker.intake.opening import DisclosureOpener, Opened
from broker.logging import configure_logging, get_logger
from broker.pipeline import Ingestor, PreparedMessage
from broker.service import Service
from broker.settings import Settings

__all__ = ["PrepareProcessDied", "PrepareProcesses"]

_log = get_logger("preparers")

#: Frame header: the length of the pickle that follows.
_HEADER = struct.Struct(">I")
#: The id of the frame a process sends once it has loaded the service.
_READY = 0
#: The operations a process does.
_PREPARE = "prepare"
_OPEN = "open"
#: Seconds a process may take to load the service before it is given up on.
START_SECONDS = 120.0
#: Seconds a process may take over one message before it is taken for stuck, ended and
#: replaced (the largest message the adapters accept takes well under one).
ANSWER_SECONDS = 60.0
#: Seconds ``aclose`` waits for a process to exit before killing it.
STOP_SECONDS = 5.0


class PrepareProcessDied(BrokerError):
    """The prepare process holding a message ended before answering; nothing was stored."""


@dataclass(eq=False)
class _Process:
    process: BaseProcess
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    ready: asyncio.Future[None]
    pending: dict[int, asyncio.Future[Any]] = field(default_factory=dict)
    reading: asyncio.Task[None] | None = None
    alive: bool = True


class PrepareProcesses:
    """``count`` prepare processes, used from one event loop."""

    def __init__(
        self,
        settings: Settings,
        count: int,
        *,
        target: Callable[[socket.socket, Settings], None] | None = None,
        answer_seconds: float = ANSWER_SECONDS,
    ) -> None:
        """Nothing starts until ``start`` (or the first ``prepare``).

        Args:
            settings: the service's settings; each process loads the service from them.
            count: how many processes to keep.
            target: the processes' main function (tests give another).
            answer_seconds: how long a message may take before its process is taken for
                stuck: what it holds then fails with ``PrepareProcessDied`` (to be done
                elsewhere), and it is ended and replaced.
        """
        if count < 1:
            raise ValueError("count must be at least 1")
        self._settings = settings
        self._count = count
        self._target = target or _serve
        self._answer_seconds = answer_seconds
        self._processes: list[_Process] = []
        self._ids = itertools.count(_READY + 1)
        self._closed = False
        self._starting: set[asyncio.Task[None]] = set()
        #: Messages the processes have prepared (answers received, failures included).
        self.answered = 0

    @property
    def pids(self) -> list[int]:
        """The process ids of the processes that are running (for operators and tests)."""
        return [p.process.pid for p in self._processes if p.alive and p.process.pid]

    async def start(self) -> None:
        """Start every process and wait until each has loaded the service.

        Raises:
            PrepareProcessDied: a process ended, or did not load within ``START_SECONDS``.
        """
        while len(self._processes) < self._count:
            await self._spawn()
        await asyncio.gather(*(self._wait_ready(p) for p in self._processes))

    async def prepare(
        self, adapter: str, raw: bytes, party: str, replay_token: tuple[str, datetime] | None
    ) -> PreparedMessage:
        """``Ingestor.prepare`` in the least busy process that has loaded.

        Raises:
            PrepareProcessDied: no process is ready, or the one given the message ended
                first; nothing was stored.
            Exception: what ``Ingestor.prepare`` raised in the process.
        """
        prepared: PreparedMessage = await self._call(_PREPARE, (adapter, raw, party, replay_token))
        return prepared

    async def open(self, party: str, body: bytes) -> Opened:
        """``DisclosureOpener.open`` for ``party`` (as of now) in the least busy process.

        Raises:
            SecurityError: the token failed a check.
            PrepareProcessDied: as for :meth:`prepare`.
        """
        opened: Opened = await self._call(_OPEN, (party, body))
        return opened

    async def _call(self, op: str, args: tuple[Any, ...]) -> Any:
        if self._closed:
            raise PrepareProcessDied("prepare processes closed")
        self._replace_dead()
        ready = [p for p in self._processes if p.alive and p.ready.done()]
        if not ready:
            raise PrepareProcessDied("no prepare process is ready")
        chosen = min(ready, key=lambda p: len(p.pending))
        number = next(self._ids)
        answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        chosen.pending[number] = answer
        frame = pickle.dumps((number, op, args), pickle.HIGHEST_PROTOCOL)
        try:
            chosen.writer.write(_HEADER.pack(len(frame)) + frame)
            await chosen.writer.drain()
        except (ConnectionError, RuntimeError) as exc:
            self._lost(chosen, f"write failed: {type(exc).__name__}")
        try:
            async with asyncio.timeout(self._answer_seconds):
                return await answer
        except TimeoutError:
            # Stuck (a loop, a deadlock): a message left with it would never be done.
            self._lost(chosen, "did not answer in time")
            raise PrepareProcessDied("a prepare process did not answer in time") from None

    async def __aenter__(self) -> PrepareProcesses:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop the processes: each ends when its socket closes; killed if it lingers."""
        self._closed = True
        for task in list(self._starting):
            task.cancel()
        processes, self._processes = self._processes, []
        for worker in processes:
            self._lost(worker, "closed")
        for worker in processes:
            if worker.reading is not None:
                worker.reading.cancel()
        await asyncio.gather(*(asyncio.to_thread(_join, w.process) for w in processes))

    # ------------------------------------------------------------------ processes

    async def _spawn(self) -> _Process:
        ours, theirs = socket.socketpair()
        process = multiprocessing.get_context("spawn").Process(
            target=self._target, args=(theirs, self._settings), name="mash prepare", daemon=True
        )
        try:
            # Spawned, not forked: this process has threads and an event loop.
            await asyncio.to_thread(process.start)
        finally:
            theirs.close()
        reader, writer = await asyncio.open_unix_connection(sock=ours)
        worker = _Process(process, reader, writer, asyncio.get_running_loop().create_future())
        worker.reading = asyncio.create_task(self._read(worker), name="prepare results")
        self._processes.append(worker)
        return worker

    async def _wait_ready(self, worker: _Process) -> None:
        try:
            async with asyncio.timeout(START_SECONDS):
                await asyncio.shield(worker.ready)
        except TimeoutError:
            self._lost(worker, "did not start in time")
            raise PrepareProcessDied("a prepare process did not start in time") from None

    def _replace_dead(self) -> None:
        """Start a process for each that has died, unless one is already starting."""
        dead = [p for p in self._processes if not p.alive]
        for worker in dead:
            self._processes.remove(worker)
        missing = self._count - len(self._processes) - len(self._starting)
        for _ in range(max(0, missing)):
            task = asyncio.create_task(self._start_one(), name="prepare process start")
            self._starting.add(task)
            task.add_done_callback(self._starting.discard)

    async def _start_one(self) -> None:
        worker = await self._spawn()
        with contextlib.suppress(PrepareProcessDied):
            await self._wait_ready(worker)

    async def _read(self, worker: _Process) -> None:
        """Hand each answer to its caller until the process's socket closes."""
        reason = "closed its socket"
        try:
            while True:
                (size,) = _HEADER.unpack(await worker.reader.readexactly(_HEADER.size))
                number, ok, value = pickle.loads(await worker.reader.readexactly(size))  # noqa: S301 - our own child process
                if number == _READY:
                    if not worker.ready.done():
                        worker.ready.set_result(None)
                    continue
                answer = worker.pending.pop(number, None)
                self.answered += 1
                if answer is None or answer.done():
                    continue
                if ok:
                    answer.set_result(value)
                else:
                    answer.set_exception(value)
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            reason = type(exc).__name__
        except asyncio.CancelledError:
            reason = "closed"
            raise
        finally:
            self._lost(worker, reason)

    def _lost(self, worker: _Process, reason: str) -> None:
        """The process is gone or going: fail what it held and close its socket."""
        if not worker.alive:
            return
        worker.alive = False
        if not self._closed:
            _log.warning(
                "prepare_process_lost",
                pid=worker.process.pid,
                reason=reason,
                messages=len(worker.pending),
            )
        error = PrepareProcessDied(f"prepare process {worker.process.pid} {reason}")
        for answer in worker.pending.values():
            if not answer.done():
                answer.set_exception(error)
        worker.pending.clear()
        if not worker.ready.done():
            worker.ready.set_exception(error)
            # Whoever waits for it hears of it; nobody may be waiting.
            worker.ready.exception()
        worker.writer.close()
        if self._closed:
            return  # each process ends as its socket closes (``aclose`` joins them)
        if worker.process.exitcode is None:
            # It may be alive but stuck (a write failed, or it never loaded): end it.
            with contextlib.suppress(OSError, ValueError):
                worker.process.kill()
        self._replace_dead()


def _join(process: BaseProcess) -> None:
    process.join(STOP_SECONDS)
    if process.exitcode is None:
        with contextlib.suppress(OSError, ValueError):
            process.kill()
        process.join(STOP_SECONDS)


# --------------------------------------------------------------------------- the process


def _serve(sock: socket.socket, settings: Settings) -> None:
    """A prepare process: load the service once, then do what arrives, in order."""
    # Its life is the service's: it ends when the socket closes. A Ctrl-C at a terminal,
    # or a stop signal to the whole group (timeout, systemd's control group), reaches it
    # too; the service then stops it in order, rather than see it die and replace it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    configure_logging(settings.log_level, json=True)
    service = Service.load(settings)
    ingestor = Ingestor(service)
    openers: dict[str, DisclosureOpener] = {}

    def do(op: str, args: tuple[Any, ...]) -> Any:
        if op == _PREPARE:
            adapter, raw, party, replay_token = args
            return ingestor.prepare(adapter, raw, party, replay_token=replay_token)
        if op == _OPEN:
            party, body = args
            if party not in openers:
                openers[party] = DisclosureOpener(service, party)
            return openers[party].open(body, datetime.now(UTC))
        raise ValueError(f"unknown operation {op!r}")

    # As the runtime does once started: what loading made (modules, keys, the compiled
    # agreement) is exempt from garbage collection, so full collections stay short.
    gc.collect()
    gc.freeze()
    with sock, sock.makefile("rb") as incoming, contextlib.suppress(ConnectionError):
        # (A ConnectionError: the service went away; nothing is left to answer to.)
        _send(sock, _READY, True, None)
        while True:
            header = incoming.read(_HEADER.size)
            if len(header) < _HEADER.size:
                return  # the serving process closed the socket: time to end
            (size,) = _HEADER.unpack(header)
            number, op, args = pickle.loads(incoming.read(size))  # noqa: S301 - our own parent process
            try:
                result = do(op, args)
            except Exception as exc:  # noqa: BLE001 - handed back to the caller
                _send(sock, number, False, exc)
            else:
                _send(sock, number, True, result)


def _send(sock: socket.socket, number: int, ok: bool, value: Any) -> None:
    try:
        frame = pickle.dumps((number, ok, value), pickle.HIGHEST_PROTOCOL)
    except Exception:  # noqa: BLE001 - an exception that cannot cross: its type name can
        failure = RuntimeError(f"prepare failed: {type(value).__name__}")
        frame = pickle.dumps((number, False, failure), pickle.HIGHEST_PROTOCOL)
    sock.sendall(_HEADER.pack(len(frame)) + frame)
