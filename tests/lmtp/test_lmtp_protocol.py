"""
The LMTP listener over real loopback sockets (TCP and a UNIX socket),
with Python's C{smtplib.LMTP} and raw sockets as clients, delivering into
a real store: per-recipient replies after DATA, unknown users refused at
RCPT, ``user+folder``, pipelining, a full mailbox and a failing store
answered per recipient.
"""

from __future__ import annotations

import os
import smtplib
import socket
from typing import Any

from twisted.internet import reactor, task, threads
from twisted.trial import unittest
from zope.interface.verify import verifyObject

from harness import on_every_store
from stores import make_store

from twisted_mailhub.auth.directory import IUserDirectory, UserDirectory
from twisted_mailhub.delivery import LocalDelivery
from twisted_mailhub.errors import OverQuota
from twisted_mailhub.lmtp import LMTPServerFactory
from twisted_mailhub.policy import ServerPolicy

MESSAGE = (b"From: Chris <chris@bar.example>\r\nTo: pat@foo.example\r\n"
           b"Subject: Lunch\r\n\r\nAt noon?\r\n.. and a line with a period\r\n")


def lmtp_conversation(connect: Any, recipients: list[str], message: bytes = MESSAGE,
                      sender: str = "chris@bar.example") -> dict[str, Any]:
    """
    One transaction with smtplib.LMTP: C{{"rcpt": {address: (code, text)},
    "data": [(code, text), ...]}}, the replies after DATA read one per
    accepted recipient (RFC 2033 section 4.2; smtplib itself reads one).
    """
    client = connect()
    try:
        client.ehlo("mx.bar.example")
        code, text = client.mail(sender)
        assert code == 250, (code, text)
        rcpt = {address: client.rcpt(address) for address in recipients}
        accepted = [a for a, (code, _) in rcpt.items() if code == 250]
        data: list[tuple[int, bytes]] = []
        if accepted:
            data.append(client.data(message))
            data += [client.getreply() for _ in accepted[1:]]
        client.quit()
    finally:
        client.close()
    return {"rcpt": rcpt, "data": data}


class LMTPServerTestCase(unittest.TestCase):
    """An LMTP listener on 127.0.0.1:<free port> over a fresh store, users alice and bob."""

    store = "memory"
    users = {"alice": "secret", "bob": "secret"}

    async def make_backend(self) -> Any:
        return await make_store(self.store, self)

    async def setUp(self) -> None:
        self.backend = await self.make_backend()
        self.delivery = LocalDelivery(self.backend, UserDirectory([self.users.get]))
        self.factory = LMTPServerFactory(
            self.delivery, policy=ServerPolicy(max_literal_size=2**20), hostname="foo.example")
        self.listening = reactor.listenTCP(0, self.factory, interface="127.0.0.1")
        self.port = self.listening.getHost().port

    async def tearDown(self) -> None:
        await self.listening.stopListening()
        for protocol in list(self.factory.connections):
            protocol.transport.abortConnection()
        await task.deferLater(reactor, 0, lambda: None)
        close = getattr(self.backend, "close", None)
        if close is not None:
            await close()

    def connect(self) -> smtplib.LMTP:
        return smtplib.LMTP("127.0.0.1", self.port, timeout=20)

    def talk(self, recipients: list[str], message: bytes = MESSAGE, **kwargs: Any):
        return threads.deferToThread(lmtp_conversation, self.connect, recipients, message,
                                     **kwargs)

    async def messages(self, user: str, mailbox: str = "INBOX") -> list[bytes]:
        store = await self.backend.open_store(user)
        box = await store.get_mailbox(mailbox)
        found = []
        for uid in await box.uids():
            message = await box.open_message(uid)
            found.append(await message.read())
        return found


@on_every_store
class DeliveryTests(LMTPServerTestCase):
    async def test_one_reply_per_accepted_recipient(self) -> None:
        result = await self.talk(["alice@foo.example", "nobody@foo.example", "bob@foo.example"])
        self.assertEqual(result["rcpt"]["nobody@foo.example"],
                         (550, b"5.1.1 No such user here"))
        self.assertEqual(result["rcpt"]["alice@foo.example"], (250, b"2.1.5 Recipient OK"))
        self.assertEqual(result["data"], [(250, b"2.0.0 Delivered")] * 2)
        for user in ("alice", "bob"):
            [stored] = await self.messages(user)
            header, _, body = stored.partition(b"\r\n\r\n")
            # smtplib stuffed the line starting with a period; it is un-stuffed.
            self.assertEqual(body, MESSAGE.partition(b"\r\n\r\n")[2])
            # RFC 5321 section 4.4: Return-Path first, then our Received.
            self.assertTrue(header.startswith(
                b"Return-Path: <chris@bar.example>\r\nReceived: from mx.bar.example "
                b"([127.0.0.1])\r\n\tby foo.example (twisted_mailhub) with LMTP id "), header)
            self.assertTrue(header.endswith(MESSAGE.partition(b"\r\n\r\n")[0]))

    async def test_detail_goes_to_the_folder_when_it_exists(self) -> None:
        store = await self.backend.open_store("alice")
        await store.create_mailbox("Lists")
        result = await self.talk(["alice+Lists@foo.example", "alice+Nothing@foo.example"])
        self.assertEqual(result["data"], [(250, b"2.0.0 Delivered")] * 2)
        self.assertEqual(len(await self.messages("alice", "Lists")), 1)
        self.assertEqual(len(await self.messages("alice")), 1)

    async def test_the_same_mailbox_twice_gets_the_message_once(self) -> None:
        result = await self.talk(["alice@foo.example", "alice@other.example"])
        self.assertEqual(result["data"], [(250, b"2.0.0 Delivered")] * 2)
        self.assertEqual(len(await self.messages("alice")), 1)


class ListenerTests(LMTPServerTestCase):
    def test_interfaces(self) -> None:
        self.assertTrue(verifyObject(IUserDirectory, UserDirectory([])))

    async def test_unix_socket_listener(self) -> None:
        path = os.path.abspath(self.mktemp())
        port = reactor.listenUNIX(path, self.factory)
        self.addCleanup(port.stopListening)
        result = await threads.deferToThread(
            lmtp_conversation, lambda: smtplib.LMTP(path, timeout=20), ["bob"])
        self.assertEqual(result["data"], [(250, b"2.0.0 Delivered")])
        [stored] = await self.messages("bob")
        # No address to name for a UNIX socket peer.
        self.assertIn(b"Received: from mx.bar.example\r\n\tby foo.example", stored)

    async def test_a_pipelined_transaction_in_one_write(self) -> None:
        # RFC 2920: everything up to DATA in one go, then the message and
        # the next commands in one go.
        def client() -> bytes:
            with socket.create_connection(("127.0.0.1", self.port), timeout=20) as sock:
                sock.sendall(b"LHLO mx.bar.example\r\nMAIL FROM:<chris@bar.example>\r\n"
                             b"RCPT TO:<alice@foo.example>\r\nRCPT TO:<carol@foo.example>\r\n"
                             b"RCPT TO:<bob@foo.example>\r\nDATA\r\n")
                received = read_until(sock, b"354 ")
                sock.sendall(b"Subject: x\r\n\r\nhi\r\n.\r\nRSET\r\nQUIT\r\n")
                return received + read_until(sock, b"221 ")

        said = await threads.deferToThread(client)
        self.assertEqual(said, (
            b"220 foo.example LMTP server ready\r\n"
            b"250-foo.example\r\n250-PIPELINING\r\n250-ENHANCEDSTATUSCODES\r\n"
            b"250-8BITMIME\r\n250-SMTPUTF8\r\n250 SIZE 1048576\r\n"
            b"250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n"
            b"550 5.1.1 No such user here\r\n250 2.1.5 Recipient OK\r\n"
            b"354 Start mail input; end with <CRLF>.<CRLF>\r\n"
            b"250 2.0.0 Delivered\r\n250 2.0.0 Delivered\r\n250 2.0.0 OK\r\n"
            b"221 2.0.0 Bye\r\n"))

    async def test_a_message_over_the_limit_is_refused_per_recipient(self) -> None:
        big = b"Subject: big\r\n\r\n" + (b"x" * 998 + b"\r\n") * 1100
        result = await self.talk(["alice", "bob"], big)
        self.assertEqual(result["data"], [(552, b"5.3.4 Message too big for this system")] * 2)
        self.assertEqual(await self.messages("alice"), [])

    async def test_shutdown_says_421(self) -> None:
        def client() -> bytes:
            with socket.create_connection(("127.0.0.1", self.port), timeout=20) as sock:
                read_until(sock, b"220 ")
                sock.sendall(b"NOOP\r\n")
                read_until(sock, b"250 ")
                reactor.callFromThread(self.factory.disconnect_all, "Server shutting down")
                return read_until(sock, b"421 ")

        said = await threads.deferToThread(client)
        self.assertEqual(said, b"421 4.3.2 Server shutting down\r\n")


class FailingStoreTests(LMTPServerTestCase):
    """A full mailbox and a broken store, answered per recipient (RFC 2033 section 4.2)."""

    async def make_backend(self) -> Any:
        return FailingBackend(await make_store("memory", self), {"bob": OverQuota("over"),
                                                                  "carol": RuntimeError("disk")})

    users = {"alice": "x", "bob": "x", "carol": "x"}

    async def test_over_quota_is_452_and_others_still_get_the_message(self) -> None:
        result = await self.talk(["bob", "alice", "carol"])
        self.assertEqual(result["data"], [
            (452, b"4.2.2 Mailbox full; try again later"),
            (250, b"2.0.0 Delivered"),
            (451, b"4.3.0 Temporary failure storing the message; try again later"),
        ])
        self.assertEqual(len(await self.messages("alice")), 1)
        # The unexpected failure was logged with its traceback.
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)


def read_until(sock: socket.socket, last_reply_start: bytes) -> bytes:
    """Read replies until a line starting with C{last_reply_start} ended."""
    data = b""
    while True:
        lines = data.split(b"\r\n")
        if any(line.startswith(last_reply_start) for line in lines[:-1]):
            return data
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed; had {data!r}")
        data += chunk


class FailingBackend:
    """A backend whose users' mailboxes raise C{errors[user]} from append."""

    def __init__(self, backend: Any, errors: dict[str, Exception]) -> None:
        self.backend = backend
        self.errors = errors
        self.notifier = backend.notifier

    async def open_store(self, username: str) -> Any:
        store = await self.backend.open_store(username)
        error = self.errors.get(username)
        return store if error is None else FailingStore(store, error)

    async def close(self) -> None:
        await self.backend.close()


class FailingStore:
    def __init__(self, store: Any, error: Exception) -> None:
        self.store = store
        self.error = error

    async def get_mailbox(self, name: str, read_only: bool = False) -> Any:
        return FailingMailbox(await self.store.get_mailbox(name, read_only), self.error)


class FailingMailbox:
    def __init__(self, mailbox: Any, error: Exception) -> None:
        self.mailbox = mailbox
        self.name = mailbox.name
        self.error = error

    async def append(self, requests: Any, origin: Any = None) -> Any:
        raise self.error
