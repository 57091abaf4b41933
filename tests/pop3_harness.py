"""
A real POP3 server (and an IMAP server over the same store) on loopback
ports inside a trial test, with blocking clients (poplib, imaplib, raw
sockets) run in threads so the reactor keeps serving while they wait.
"""

from __future__ import annotations

import imaplib
import poplib
import ssl

from twisted.cred.portal import Portal
from twisted.internet import defer, reactor, task, threads
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.trial import unittest

from harness import RawClient
from twisted_mailhub.auth.checkers import InMemoryChecker
from twisted_mailhub.auth.realm import MailhubRealm
from twisted_mailhub.backends.memory import MemoryBackend
from twisted_mailhub.imap.protocol import IMAPServerFactory
from twisted_mailhub.model import AppendRequest
from twisted_mailhub.policy import ServerPolicy
from twisted_mailhub.pop3 import POP3ServerFactory
from twisted_mailhub.pop3.maildrop import MaildropLocks

USERS = {"alice": "wonderland", "bob": "builder"}


def message(subject: str, body: str = "Hello.", sender: str = "carol@example.net") -> bytes:
    """A small RFC 5322 message with CRLF line ends."""
    return (f"From: {sender}\r\nTo: alice@example.org\r\nSubject: {subject}\r\n"
            f"Date: Tue, 8 Feb 2022 10:00:00 +0100\r\n\r\n{body}\r\n").encode()


class POP3ServerTestCase(unittest.TestCase):
    """POP3 and IMAP on 127.0.0.1:<free ports> for each test, one fresh store."""

    policy = ServerPolicy(auth_failure_delay=0.0, auth_failure_delay_max=0.0)
    users = USERS
    mark_seen_on_retr = False
    # The implicit-TLS listener is started only by tests that set this.
    implicit_tls = False

    def make_backend(self):
        return MemoryBackend()

    def tls_options(self):
        return None

    async def setUp(self) -> None:
        self.backend = self.make_backend()
        self.portal = Portal(MailhubRealm(self.backend), [InMemoryChecker(dict(self.users))])
        self.locks = MaildropLocks()
        self.factory = self.make_factory()
        self.ports = [reactor.listenTCP(0, self.factory, interface="127.0.0.1")]
        self.port = self.ports[0].getHost().port
        self.imap_factory = IMAPServerFactory(self.portal, policy=self.policy)
        self.ports.append(reactor.listenTCP(0, self.imap_factory, interface="127.0.0.1"))
        self.imap_port = self.ports[-1].getHost().port
        if self.implicit_tls:
            wrapped = TLSMemoryBIOFactory(self.tls_options(), False, self.factory)
            self.ports.append(reactor.listenTCP(0, wrapped, interface="127.0.0.1"))
            self.tls_port = self.ports[-1].getHost().port

    def make_factory(self, **kwargs) -> POP3ServerFactory:
        options = dict(policy=self.policy, tls_options=self.tls_options(),
                       mark_seen_on_retr=self.mark_seen_on_retr, locks=self.locks)
        options.update(kwargs)
        return POP3ServerFactory(self.portal, **options)

    async def tearDown(self) -> None:
        for port in self.ports:
            await defer.maybeDeferred(port.stopListening)
        for factory in (self.factory, self.imap_factory):
            for protocol in list(factory.connections):
                protocol.transport.abortConnection()
        await task.deferLater(reactor, 0, lambda: None)
        close = getattr(self.backend, "close", None)
        if close is not None:
            await close()

    # -- store access from the test ----------------------------------------------

    async def deliver(self, *contents: bytes, user: str = "alice", flags=frozenset()):
        """Append messages to C{user}'s INBOX; returns their metas."""
        store = await self.backend.open_store(user)
        inbox = await store.get_mailbox("INBOX")
        return await inbox.append([AppendRequest(c, frozenset(flags)) for c in contents])

    async def inbox(self, user: str = "alice"):
        store = await self.backend.open_store(user)
        return await store.get_mailbox("INBOX")

    # -- clients, run in a thread ----------------------------------------------------

    def in_thread(self, fn, *args, **kwargs):
        """Run a blocking client function off the reactor thread."""
        return threads.deferToThread(fn, *args, **kwargs)

    def pop(self, login: str | None = "alice", port: int | None = None) -> poplib.POP3:
        client = poplib.POP3("127.0.0.1", port or self.port, timeout=20)
        if login:
            client.user(login)
            client.pass_(self.users[login])
        return client

    def pop_ssl(self, context: ssl.SSLContext) -> poplib.POP3_SSL:
        return poplib.POP3_SSL("127.0.0.1", self.tls_port, context=context, timeout=20)

    def imap(self, login: str = "alice") -> imaplib.IMAP4:
        client = imaplib.IMAP4("127.0.0.1", self.imap_port, timeout=20)
        client.login(login, self.users[login])
        return client

    def raw(self) -> RawClient:
        return RawClient(self.port)


def read_multiline(raw: RawClient) -> list[bytes]:
    """The lines of a multi-line response after its status line, up to '.'."""
    lines = []
    while True:
        line = raw.line()
        if line == b".\r\n":
            return lines
        lines.append(line)
