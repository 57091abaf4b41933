"""
Running a real IMAP server on a loopback port inside a trial test, and real
blocking clients (imaplib, imapclient, raw sockets) against it in threads,
so the reactor keeps serving while a client waits.
"""

from __future__ import annotations

import imaplib
import socket

from twisted.cred.portal import Portal
from twisted.internet import reactor, task, threads
from twisted.trial import unittest

from stores import make_store, store_kinds

from twisted_mailhub.auth.checkers import InMemoryChecker
from twisted_mailhub.auth.realm import MailhubRealm
from twisted_mailhub.imap.protocol import IMAPServerFactory
from twisted_mailhub.policy import ServerPolicy

USERS = {"alice": "wonderland", "bob": "builder"}


class IMAPServerTestCase(unittest.TestCase):
    """A server on 127.0.0.1:<free port> for each test, over a fresh store."""

    policy = ServerPolicy(auth_failure_delay=0.0, auth_failure_delay_max=0.0)
    users = USERS
    #: Which store the server runs on; see L{on_every_store}.
    store = "memory"

    async def make_backend(self):
        return await make_store(self.store, self)

    async def setUp(self) -> None:
        self.backend = await self.make_backend()
        portal = Portal(MailhubRealm(self.backend), [InMemoryChecker(dict(self.users))])
        self.factory = IMAPServerFactory(portal, policy=self.policy,
                                         tls_options=self.tls_options())
        self.listening = reactor.listenTCP(0, self.factory, interface="127.0.0.1")
        self.port = self.listening.getHost().port

    def tls_options(self):
        return None

    async def tearDown(self) -> None:
        await self.listening.stopListening()
        # A client that failed mid-test may have left its connection open.
        for protocol in list(self.factory.connections):
            protocol.transport.abortConnection()
        await task.deferLater(reactor, 0, lambda: None)
        close = getattr(self.backend, "close", None)
        if close is not None:
            await close()

    # -- clients, run in a thread -------------------------------------------

    def in_thread(self, fn, *args, **kwargs):
        """Run a blocking client function off the reactor thread."""
        return threads.deferToThread(fn, *args, **kwargs)

    def imaplib_client(self, login: str | None = "alice") -> imaplib.IMAP4:
        client = imaplib.IMAP4("127.0.0.1", self.port, timeout=20)
        if login:
            client.login(login, self.users[login])
        return client

    def imapclient_client(self, login: str | None = "alice"):
        import imapclient

        client = imapclient.IMAPClient("127.0.0.1", port=self.port, ssl=False, timeout=20)
        if login:
            client.login(login, self.users[login])
        return client

    def raw(self) -> "RawClient":
        return RawClient(self.port)


class RawClient:
    """A socket that speaks lines: for byte-exact transcripts and bad input."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=20)
        self.buffer = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("server closed the connection; had: %r" % self.buffer)
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\r\n")
        return line + b"\r\n"

    def read_exact(self, n: int) -> bytes:
        while len(self.buffer) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("server closed the connection")
            self.buffer += chunk
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def until_tagged(self, tag: bytes) -> list[bytes]:
        """Lines up to and including the one tagged C{tag}."""
        lines = []
        while True:
            line = self.line()
            lines.append(line)
            if line.startswith(tag + b" "):
                return lines

    def command(self, line: bytes) -> list[bytes]:
        tag = line.split(b" ", 1)[0]
        self.send(line + b"\r\n")
        return self.until_tagged(tag)

    def closed(self) -> bool:
        """True once the server has closed the connection (reads to EOF)."""
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buffer += chunk
        except OSError:
            return True

    def close(self) -> None:
        self.sock.close()


def on_every_store(cls):
    """
    Class decorator: besides C{cls} (on the memory store), define in its
    module one copy of it per persistent store (SQLite, mbox, PostgreSQL
    when configured), so the same end-to-end tests check every backend.
    """
    import sys

    module = sys.modules[cls.__module__]
    for kind in store_kinds():
        name = f"{cls.__name__}_{kind}"
        setattr(module, name, type(name, (cls,), {"store": kind, "__module__": cls.__module__}))
    return cls
