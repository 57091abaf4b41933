"""
Counting what a blocking client really sends and receives: a socket
wrapper, and imaplib/poplib classes that put it under their connection.

Bytes are counted at the application layer: with TLS the wrapper sits on
the TLS socket, so handshake and record overhead are not included.
"""

from __future__ import annotations

import imaplib
import io
import poplib
import socket
from dataclasses import dataclass


@dataclass
class Counter:
    """Totals for one or more connections."""

    sent: int = 0
    received: int = 0
    round_trips: int = 0


class CountingSocket:
    """
    Wraps a connected socket and counts into a L{Counter}.  A round trip is
    counted each time data arrives after the client sent something: the
    client waited for the server.
    """

    def __init__(self, sock: socket.socket, counter: Counter) -> None:
        self._sock = sock
        self.counter = counter
        self._waiting = False

    def sendall(self, data: bytes) -> None:
        self._sock.sendall(data)
        self.counter.sent += len(data)
        self._waiting = True

    def send(self, data: bytes) -> int:
        n = self._sock.send(data)
        self.counter.sent += n
        self._waiting = True
        return n

    def recv(self, size: int) -> bytes:
        data = self._sock.recv(size)
        self._count_in(len(data))
        return data

    def recv_into(self, buffer, size: int = 0) -> int:
        n = self._sock.recv_into(buffer, size)
        self._count_in(n)
        return n

    def _count_in(self, n: int) -> None:
        self.counter.received += n
        if n and self._waiting:
            self.counter.round_trips += 1
            self._waiting = False

    def makefile(self, mode: str = "rb", *args, **kwargs):
        if mode != "rb":
            raise ValueError("only binary reading is counted")
        return io.BufferedReader(_Reader(self))

    def __getattr__(self, name: str):
        return getattr(self._sock, name)


class _Reader(io.RawIOBase):
    def __init__(self, sock: CountingSocket) -> None:
        self._sock = sock

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        return self._sock.recv_into(buffer)


class CountingIMAP4(imaplib.IMAP4):
    """imaplib.IMAP4 whose socket counts into C{counter}."""

    def __init__(self, host: str, port: int, counter: Counter, timeout: float | None = None):
        self.counter = counter
        super().__init__(host, port, timeout=timeout)

    def _create_socket(self, timeout):
        return CountingSocket(super()._create_socket(timeout), self.counter)


class CountingIMAP4_SSL(imaplib.IMAP4_SSL):
    """imaplib.IMAP4_SSL (implicit TLS) counting application bytes."""

    def __init__(self, host: str, port: int, counter: Counter, ssl_context=None,
                 timeout: float | None = None):
        self.counter = counter
        super().__init__(host, port, ssl_context=ssl_context, timeout=timeout)

    def _create_socket(self, timeout):
        return CountingSocket(super()._create_socket(timeout), self.counter)


class CountingPOP3(poplib.POP3):
    """poplib.POP3 whose socket counts into C{counter}."""

    def __init__(self, host: str, port: int, counter: Counter, timeout: float = 30.0):
        self.counter = counter
        super().__init__(host, port, timeout=timeout)

    def _create_socket(self, timeout):
        return CountingSocket(super()._create_socket(timeout), self.counter)


class CountingPOP3_SSL(poplib.POP3_SSL):
    """poplib.POP3_SSL (implicit TLS) counting application bytes."""

    def __init__(self, host: str, port: int, counter: Counter, context=None,
                 timeout: float = 30.0):
        self.counter = counter
        super().__init__(host, port, context=context, timeout=timeout)

    def _create_socket(self, timeout):
        return CountingSocket(super()._create_socket(timeout), self.counter)
