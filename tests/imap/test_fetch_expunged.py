"""
A message expunged by another session while a FETCH streams it from the SQL
store: the announced literal still gets all its bytes, the tagged answer
comes after it, and the client (imaplib) stays in sync for the next command.
"""

from __future__ import annotations

import imaplib
import socket

from harness import IMAPServerTestCase
from stores import PG_URL

from twisted_mailhub.model import AppendRequest

SIZE = 8 * 2**20
FIRST_READ = 64 * 1024


def big_message() -> bytes:
    header = b"From: big@example.org\r\nSubject: big\r\n\r\n"
    line = b"The quick brown fox jumps over the lazy dog, again and again.....\r\n"
    return header + line * ((SIZE - len(header)) // len(line))


class PausingIMAP4(imaplib.IMAP4):
    """
    imaplib, except that the first large literal it reads is read slowly:
    C{FIRST_READ} bytes, then C{hook()} runs, then the rest.
    """

    hook = None

    def read(self, size: int) -> bytes:
        hook, self.hook = self.hook, None
        if hook is None or size < 2 * FIRST_READ:
            return super().read(size)
        first = self.file.read(FIRST_READ)
        hook()
        return first + self.file.read(size - len(first))


class FetchWhileExpungedTests(IMAPServerTestCase):
    store = "sqlite"

    async def setUp(self) -> None:
        await super().setUp()
        self.content = big_message()
        store = await self.backend.open_store("alice")
        inbox = await store.get_mailbox("INBOX")
        await inbox.append([AppendRequest(self.content)])

    def _shrink_server_buffers(self) -> None:
        # Keep what the kernel holds for the client small, so the server is
        # still reading the message from the store when it is expunged.
        for protocol in list(self.factory.connections):
            handle = protocol.transport.getHandle()
            handle.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)

    async def test_expunge_mid_stream_keeps_the_client_in_sync(self) -> None:
        def run():
            reader = PausingIMAP4("127.0.0.1", self.port, timeout=30)
            reader.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
            reader.login("alice", "wonderland")
            reader.select("INBOX")
            self._shrink_server_buffers()
            expunged = []

            def expunge_from_another_connection():
                other = self.imaplib_client()
                other.select("INBOX")
                other.store("1", "+FLAGS", "\\Deleted")
                expunged.append(other.expunge())
                other.logout()

            reader.hook = expunge_from_another_connection
            # imaplib keeps the untagged FETCH aside when the answer is NO.
            tagged = reader.fetch("1", "(BODY.PEEK[])")
            _, data = reader.response("FETCH")
            noop = reader.noop()
            exists = reader.select("INBOX")
            reader.logout()
            return expunged, tagged, data, noop, exists

        expunged, tagged, data, noop, exists = await self.in_thread(run)
        self.assertEqual(expunged, [("OK", [b"1"])])
        self.assertEqual(tagged[0], "NO")
        self.assertIn(b"[EXPUNGEISSUED]", tagged[1][0])
        # The FETCH response reached the client whole: the literal has the
        # announced size, starts with the message and ends with padding.
        head, body = data[0]
        self.assertEqual(head, b"1 (BODY[] {%d}" % len(self.content))
        self.assertEqual(len(body), len(self.content))
        self.assertTrue(body.startswith(self.content[:FIRST_READ]))
        self.assertTrue(body.endswith(b" " * 1024))
        self.assertNotEqual(body, self.content)
        # ...and the next commands are answered normally.
        self.assertEqual(noop[0], "OK")
        self.assertEqual(exists, ("OK", [b"0"]))


if PG_URL:
    class FetchWhileExpungedTests_postgresql(FetchWhileExpungedTests):
        store = "postgresql"


class FetchStoreFailureTests(IMAPServerTestCase):
    """Any failure of the store mid-stream: the literal is finished, then NO."""

    async def setUp(self) -> None:
        await super().setUp()
        from twisted_mailhub.backends import memory

        self.content = big_message()
        store = await self.backend.open_store("alice")
        inbox = await store.get_mailbox("INBOX")
        await inbox.append([AppendRequest(self.content)])
        original = memory.MemoryMessage.read

        async def failing_read(message, offset=0, length=None):
            if offset >= 2**20:
                raise RuntimeError("disk on fire")
            return await original(message, offset, length)

        self.patch(memory.MemoryMessage, "read", failing_read)

    async def test_failure_mid_literal_never_lands_inside_it(self) -> None:
        def run():
            c = self.imaplib_client()
            c.select("INBOX")
            tagged = c.fetch("1", "(BODY.PEEK[])")
            _, data = c.response("FETCH")
            noop = c.noop()
            c.logout()
            return tagged, data, noop

        tagged, data, noop = await self.in_thread(run)
        # The server logged the failure (and only it).
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertEqual(tagged[0], "NO")
        self.assertIn(b"[SERVERBUG]", tagged[1][0])
        head, body = data[0]
        self.assertEqual(len(body), len(self.content))
        self.assertEqual(body[:2**20], self.content[:2**20])
        self.assertEqual(body[2**20:].strip(b" "), b"")
        self.assertEqual(data[1], b")")
        self.assertEqual(noop[0], "OK")
