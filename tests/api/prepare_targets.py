"""Main functions for prepare processes that misbehave on purpose (spawned by tests)."""

from __future__ import annotations

import pickle
import socket
import time
from collections.abc import Iterator

from broker import preparers
from broker.settings import Settings


class Unpicklable(Exception):
    """An exception holding something pickle cannot carry."""

    def __init__(self) -> None:
        super().__init__("cannot cross")
        self.hook = lambda: None


def _frames(sock: socket.socket) -> Iterator[int]:
    with sock.makefile("rb") as incoming:
        while header := incoming.read(4):
            (size,) = preparers._HEADER.unpack(header)
            number = pickle.loads(incoming.read(size))[0]  # noqa: S301 - our own test
            yield number


def silent(sock: socket.socket, _settings: Settings) -> None:
    """Says it is ready, then takes messages and never answers."""
    preparers._send(sock, preparers._READY, True, None)
    for _ in _frames(sock):
        time.sleep(0)
    time.sleep(3600)


def unpicklable(sock: socket.socket, _settings: Settings) -> None:
    """Answers every message with an exception that cannot be pickled."""
    preparers._send(sock, preparers._READY, True, None)
    for number in _frames(sock):
        preparers._send(sock, number, False, Unpicklable())
