"""
Pipelined RETR and TOP on a store that reads contents directly but does not
open messages in bulk (mbox, Maildir): the messages asked for next are read
in one call (L{IContentAccess}), each served as opening it would serve it.
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.trial import unittest

from stores import make_store
from twisted_mailhub.errors import MessageExpunged
from twisted_mailhub.interfaces import IBulkMessageAccess, IContentAccess
from twisted_mailhub.model import AppendRequest
from twisted_mailhub.pop3.maildrop import OPEN_AHEAD_OCTETS, Maildrop


def small(n: int) -> bytes:
    return b"From: a@example.org\r\nSubject: %d\r\n\r\n>From the body %d\r\n" % (n, n)


class _ReadAhead:
    store = ""
    __test__ = False

    async def setUp(self) -> None:
        backend = await make_store(self.store, self)
        self.addCleanup(lambda: defer.ensureDeferred(backend.close()))
        store = await backend.open_store("alice")
        self.inbox = await store.get_mailbox("INBOX")
        self.large = b"Subject: large\r\n\r\n" + (b"y" * 78 + b"\r\n") * (
            OPEN_AHEAD_OCTETS // 80 + 10)
        self.sent = [self.large] + [small(n) for n in range(2, 7)]
        self.metas = await self.inbox.append([AppendRequest(m) for m in self.sent])
        self.calls: list[tuple[str, object]] = []
        contents, open_message = self.inbox.contents, self.inbox.open_message

        async def spy_contents(uids, limit):
            uids = list(uids)
            self.calls.append(("contents", uids))
            return await contents(uids, limit)

        async def spy_open(uid):
            self.calls.append(("open", uid))
            return await open_message(uid)

        self.inbox.contents, self.inbox.open_message = spy_contents, spy_open

    async def read(self, drop: Maildrop, number: int, ahead=()) -> bytes:
        message = await drop.open(number, ahead)
        self.assertEqual(message.meta.size, len(self.sent[number - 1]))
        return await message.read(0)

    async def test_pipelined_messages_are_read_together(self) -> None:
        self.assertIsNone(IBulkMessageAccess(self.inbox, None))
        self.assertIsNotNone(IContentAccess(self.inbox, None))
        drop = await Maildrop.snapshot(self.inbox)
        uids = [meta.uid for meta in self.metas]
        # The first is larger than what is read ahead: opened alone.
        self.assertEqual(await self.read(drop, 1, range(1, 7)), self.large)
        self.assertEqual(self.calls, [("contents", uids), ("open", uids[0])])
        del self.calls[:]
        got = [await self.read(drop, n, range(n + 1, 7)) for n in range(2, 7)]
        self.assertEqual(got, self.sent[1:])
        self.assertEqual(self.calls, [])
        # Alone, a message is opened as before.
        self.assertEqual(await self.read(drop, 3), self.sent[2])
        self.assertEqual(self.calls, [("open", uids[2])])

    async def test_a_message_gone_is_reported_gone(self) -> None:
        drop = await Maildrop.snapshot(self.inbox)
        await self.inbox.store_flags([self.metas[2].uid], "add", {"\\Deleted"})
        await self.inbox.expunge()
        with self.assertRaises(MessageExpunged):
            await drop.open(3, [4, 5])
        self.assertEqual(await self.read(drop, 4, [5]), self.sent[3])
        self.assertEqual(await self.read(drop, 5), self.sent[4])
        self.assertEqual([name for name, _ in self.calls], ["contents", "open"])


class MboxReadAheadTests(_ReadAhead, unittest.TestCase):
    store = "mbox"
    __test__ = True


class MaildirReadAheadTests(_ReadAhead, unittest.TestCase):
    store = "maildir"
    __test__ = True
