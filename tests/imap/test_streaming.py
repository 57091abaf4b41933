"""
Large FETCH responses stream from the store in chunks and stop when the
client stops reading: a slow client cannot make the server hold a whole
large message in memory.
"""

from __future__ import annotations

import hashlib
import re
import socket
import threading

from harness import IMAPServerTestCase
from twisted.internet import reactor, task

from twisted_mailhub.backends import memory

SIZE = 30 * 2**20


def big_message() -> bytes:
    header = b"From: big@example.org\r\nSubject: big\r\n\r\n"
    line = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789\r\n"
    body = line * ((SIZE - len(header)) // len(line))
    return header + body


class StreamingTests(IMAPServerTestCase):
    async def setUp(self) -> None:
        await super().setUp()
        self.content = big_message()
        store = await self.backend.open_store("alice")
        inbox = await store.get_mailbox("INBOX")
        from twisted_mailhub.model import AppendRequest

        await inbox.append([AppendRequest(self.content)])
        self.reads: list[int] = []
        original = memory.MemoryMessage.read
        reads = self.reads

        async def counting_read(message, offset=0, length=None):
            data = await original(message, offset, length)
            reads.append(len(data))
            return data

        self.patch(memory.MemoryMessage, "read", counting_read)

    async def test_slow_reader_pauses_the_server(self) -> None:
        resume = threading.Event()
        started = threading.Event()
        result = {}

        def client():
            s = socket.create_connection(("127.0.0.1", self.port), timeout=30)
            # Keep the kernel buffers small so flow control shows quickly.
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
            f = s.makefile("rb")
            f.readline()
            s.sendall(b"a LOGIN alice wonderland\r\nb SELECT INBOX\r\n")
            while not f.readline().startswith(b"b "):
                pass
            s.sendall(b"c FETCH 1 BODY.PEEK[]\r\n")
            first = f.readline()
            size = int(re.search(rb"\{(\d+)\}", first).group(1))
            started.set()
            resume.wait(30)
            digest = hashlib.sha256()
            remaining = size
            while remaining:
                chunk = f.read(min(remaining, 1 << 20))
                digest.update(chunk)
                remaining -= len(chunk)
            result["size"] = size
            result["digest"] = digest.hexdigest()
            result["tail"] = f.readline() + f.readline()
            s.close()

        done = self.in_thread(client)
        # Wait (bounded) until the transport has told the session to pause.
        for _ in range(1000):
            protocols = list(self.factory.connections)
            if started.is_set() and protocols and protocols[0]._drain is not None:
                break
            await task.deferLater(reactor, 0.01, lambda: None)
        paused_after = sum(self.reads)
        resume.set()
        await done
        self.assertEqual(result["size"], len(self.content))
        self.assertEqual(result["digest"], hashlib.sha256(self.content).hexdigest())
        self.assertEqual(result["tail"], b")\r\nc OK FETCH completed\r\n")
        # Paused with most of the message still unread from the store...
        self.assertLess(paused_after, len(self.content) // 2)
        # ...and the store was read in bounded chunks, never whole.
        self.assertLessEqual(max(self.reads), 256 * 1024)
