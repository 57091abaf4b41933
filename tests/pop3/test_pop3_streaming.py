"""
RETR and TOP byte for byte, as RFC 1939 section 3 prescribes a multi-line
response: every line ends in CRLF, a line starting with "." gets another
"." in front, and a line holding only "." ends the response.

The expected bytes are written out here, or built by the small reference
L{rfc1939_body} below, never by the server's own code.  Each case runs over
a real socket against the memory store and each persistent store (the SQL
stores keep content in 256 KiB chunks, so the large message crosses chunk
boundaries at the places chosen below), including a pipelined burst of
commands and, on the SQL stores, a message removed while RETR is sending it.
"""

from __future__ import annotations

import random
import re
import socket
import time

from twisted.internet import reactor, task

from pop3_harness import POP3ServerTestCase
from stores import make_store, store_kinds
from twisted_mailhub.backends.memory import MemoryMessage
from twisted_mailhub.errors import MailhubError

CHUNK = 256 * 1024

DOTS = b"Subject: dots\r\n\r\n.one\r\n..two\r\n.\r\nend\r\n"
NO_FINAL_CRLF = b"Subject: tail\r\n\r\nfirst\r\nno newline at the end"
BARE_LF = b"Subject: lf\n\nline one\n.dot after a bare LF\r\nlast\n"
EIGHT_BIT = ("Subject: 8bit\r\nContent-Type: text/plain; charset=utf-8\r\n"
             "Content-Transfer-Encoding: 8bit\r\n\r\nGr\u00fc\u00dfe, \u00e7a va?\r\n"
             ).encode("utf-8") + b"raw \xff\xfe\x80 bytes\r\n"
EMPTY_BODY = b"Subject: empty\r\n\r\n"

# What RETR must send after its status line, written out by hand.
RETR_EXPECTED = {
    DOTS: b"Subject: dots\r\n\r\n..one\r\n...two\r\n..\r\nend\r\n.\r\n",
    NO_FINAL_CRLF: b"Subject: tail\r\n\r\nfirst\r\nno newline at the end\r\n.\r\n",
    BARE_LF: b"Subject: lf\r\n\r\nline one\r\n..dot after a bare LF\r\nlast\r\n.\r\n",
    EIGHT_BIT: EIGHT_BIT + b".\r\n",
    EMPTY_BODY: b"Subject: empty\r\n\r\n.\r\n",
}

# (message, TOP lines): what TOP must send after its status line.
TOP_EXPECTED = {
    (DOTS, 0): b"Subject: dots\r\n\r\n.\r\n",
    (DOTS, 2): b"Subject: dots\r\n\r\n..one\r\n...two\r\n.\r\n",
    (NO_FINAL_CRLF, 1): b"Subject: tail\r\n\r\nfirst\r\n.\r\n",
    (NO_FINAL_CRLF, 9): b"Subject: tail\r\n\r\nfirst\r\nno newline at the end\r\n.\r\n",
    (BARE_LF, 1): b"Subject: lf\r\n\r\nline one\r\n.\r\n",
    (BARE_LF, 2): b"Subject: lf\r\n\r\nline one\r\n..dot after a bare LF\r\n.\r\n",
    (EIGHT_BIT, 5): EIGHT_BIT + b".\r\n",
    (EMPTY_BODY, 3): b"Subject: empty\r\n\r\n.\r\n",
}


def rfc1939_body(content: bytes, body_lines: int | None = None) -> bytes:
    """
    The reference: the response body (with its terminating line) for
    C{content}, line by line.  With C{body_lines}, TOP: the header, the
    blank line, and that many lines of the body.
    """
    lines = re.split(rb"\r\n|\n", content)
    if lines[-1] == b"":
        lines.pop()  # the content ended with a line end
    if body_lines is not None:
        blank = lines.index(b"")
        lines = lines[: blank + 1 + body_lines]
    return b"".join((b"." + line if line.startswith(b".") else line) + b"\r\n"
                    for line in lines) + b".\r\n"


def _lines(rng: random.Random) -> list[bytes]:
    """Lines of 0 to 77 octets, one in ten starting with "."."""
    out = []
    for _ in range(500):
        line = bytes(rng.choice(b"abcdefghij .") for _ in range(rng.randint(0, 76)))
        out.append(b"." + line if rng.random() < 0.1 else line)
    return out


def _fill(buf: bytearray, target: int, rng: random.Random, lines: list[bytes]) -> None:
    """Append CRLF lines until C{buf} is C{target} octets long."""
    while target - len(buf) > 90:
        buf += rng.choice(lines) + b"\r\n"
    buf += b"y" * (target - len(buf) - 2) + b"\r\n"


def large_message() -> bytes:
    """
    About 5 MB, with what is hard for a chunked reader placed exactly on
    the 256 KiB (and so also 64 KiB and 8 KiB) boundaries of the content.
    """
    rng = random.Random(1939)
    lines = _lines(rng)
    buf = bytearray(b"From: big@example.net\r\nSubject: large\r\n\r\n")
    _fill(buf, CHUNK, rng, lines)
    buf += b".a dot line starting a chunk\r\n"           # offset 1 chunk
    _fill(buf, 2 * CHUNK - 1, rng, lines)
    buf += b"\r\n.CRLF split across the boundary\r\n"    # CR | LF
    _fill(buf, 3 * CHUNK - 1, rng, lines)
    buf += b"x\n.bare LF ends a chunk\r\n"              # "x" then LF at 3 chunks
    _fill(buf, 4 * CHUNK - 1, rng, lines)
    buf += b"\n.bare LF as the last byte\r\n"           # LF | "."
    _fill(buf, 5 * CHUNK, rng, lines)
    buf += b".\r\n..\r\n"                               # a lone dot starts a chunk
    _fill(buf, 20 * CHUNK - 3, rng, lines)
    buf += b"\r\n."                                     # ends in a dot, no CRLF
    return bytes(buf)


LARGE = large_message()


def test_the_large_message_has_its_traps_on_chunk_boundaries() -> None:
    # The test's own premise, so that a change of LARGE cannot quietly
    # stop covering what it is meant to.
    assert len(LARGE) > 5_000_000
    assert LARGE[CHUNK:CHUNK + 2] == b".a"
    assert LARGE[2 * CHUNK - 1:2 * CHUNK + 2] == b"\r\n."
    assert LARGE[3 * CHUNK - 1:3 * CHUNK + 2] == b"x\n."
    assert LARGE[4 * CHUNK - 1:4 * CHUNK + 1] == b"\n."
    assert LARGE[5 * CHUNK:5 * CHUNK + 3] == b".\r\n"
    assert LARGE.endswith(b"\r\n.")
    assert rfc1939_body(b"a\r\n.b\nc") == b"a\r\n..b\r\nc\r\n.\r\n"


class Reader:
    """A raw POP3 client socket that reads whole responses fast."""

    def __init__(self, port: int, rcvbuf: int | None = None) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            # Before connecting, so that the window the server sees is small.
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(20)
        self.sock.connect(("127.0.0.1", port))
        self.buf = bytearray()

    def _more(self) -> bool:
        data = self.sock.recv(1 << 20)
        self.buf += data
        return bool(data)

    def line(self) -> bytes:
        while (end := self.buf.find(b"\r\n")) < 0:
            if not self._more():
                raise ConnectionError(f"closed; had {bytes(self.buf[:200])!r}")
        line = bytes(self.buf[: end + 2])
        del self.buf[: end + 2]
        return line

    def body(self) -> bytes:
        """After a +OK status line: everything up to and including ".\\r\\n"."""
        if self.buf.startswith(b".\r\n"):
            end = 0
        else:
            start = 0
            while (end := self.buf.find(b"\r\n.\r\n", start)) < 0:
                start = max(0, len(self.buf) - 4)
                if not self._more():
                    raise ConnectionError("closed inside a multi-line response")
            end += 2
        body = bytes(self.buf[: end + 3])
        del self.buf[: end + 3]
        return body

    def login(self) -> None:
        assert self.line().startswith(b"+OK")
        self.sock.sendall(b"USER alice\r\nPASS wonderland\r\n")
        assert self.line().startswith(b"+OK")
        assert self.line().startswith(b"+OK")

    def rest(self) -> bytes:
        """Everything until the server closes the connection."""
        while self._more():
            pass
        return bytes(self.buf)

    def close(self) -> None:
        self.sock.close()


class MemoryStreamingTests(POP3ServerTestCase):
    """Byte-exact RETR and TOP; the memory store."""

    async def setUp(self) -> None:
        await super().setUp()
        self.contents = list(RETR_EXPECTED) + [LARGE]
        await self.deliver(*self.contents)

    def number(self, content: bytes) -> int:
        return self.contents.index(content) + 1

    async def test_retr_is_byte_exact(self) -> None:
        def run():
            c = Reader(self.port)
            c.login()
            out = []
            for content in self.contents:
                c.sock.sendall(b"RETR %d\r\n" % self.number(content))
                out.append((c.line(), c.body()))
            c.close()
            return out

        replies = await self.in_thread(run)
        for content, (status, body) in zip(self.contents, replies):
            self.assertEqual(status, b"+OK %d octets\r\n" % len(content))
            expected = RETR_EXPECTED.get(content) or rfc1939_body(content)
            self.assertEqual(len(body), len(expected))
            self.assertEqual(body, expected, content[:40])

    async def test_top_is_byte_exact(self) -> None:
        cases = list(TOP_EXPECTED.items()) + [
            ((LARGE, 0), rfc1939_body(LARGE, 0)),
            ((LARGE, 20000), rfc1939_body(LARGE, 20000)),
            ((LARGE, 10**6), rfc1939_body(LARGE)),
        ]

        def run():
            c = Reader(self.port)
            c.login()
            out = []
            for (content, lines), _ in cases:
                c.sock.sendall(b"TOP %d %d\r\n" % (self.number(content), lines))
                out.append((c.line(), c.body()))
            c.close()
            return out

        replies = await self.in_thread(run)
        for ((content, lines), expected), (status, body) in zip(cases, replies):
            self.assertEqual(status, b"+OK top of message follows\r\n")
            self.assertEqual(body, expected, (content[:40], lines))

    async def test_pipelined_burst_is_answered_in_order(self) -> None:
        small = [b"Subject: message %d\r\n\r\n.line %d\r\nbody\r\n" % (i, i) for i in range(300)]
        await self.deliver(*small)
        first = len(self.contents) + 1
        numbers = list(range(first, first + len(small)))
        commands, expected = [], []
        deleted = set()
        for k, number in enumerate(numbers):
            content = small[k]
            commands.append(b"RETR %d" % number)
            if number in deleted:
                expected.append(b"-ERR message %d already deleted\r\n" % number)
            else:
                expected.append(b"+OK %d octets\r\n" % len(content) + rfc1939_body(content))
            if k % 50 == 7:
                commands.append(b"TOP %d 0" % number)
                expected.append(b"+OK top of message follows\r\n" + rfc1939_body(content, 0))
            if k % 100 == 3:
                # Messages already opened ahead: a DELE still counts at once.
                deleted.add(number + 1)
                commands += [b"DELE %d" % (number + 1), b"RETR %d" % (number + 1)]
                expected += [b"+OK message %d deleted\r\n" % (number + 1),
                             b"-ERR message %d already deleted\r\n" % (number + 1)]
            if k == 150:
                commands += [b"RETR %d" % self.number(LARGE), b"FROB", b"RETR 9999"]
                expected += [b"+OK %d octets\r\n" % len(LARGE) + rfc1939_body(LARGE),
                             b"-ERR Unknown command: FROB\r\n", b"-ERR no such message\r\n"]
        commands.append(b"QUIT")

        def run():
            c = Reader(self.port)
            c.login()
            c.sock.sendall(b"".join(line + b"\r\n" for line in commands))
            replies = []
            for want in expected:
                status = c.line()
                replies.append(status + (c.body() if want.endswith(b"\r\n.\r\n") else b""))
            quit_reply = c.line()
            closed = c.rest() == b""
            c.close()
            return replies, quit_reply, closed

        replies, quit_reply, closed = await self.in_thread(run)
        self.assertEqual(len(replies), len(expected))
        for i, (got, want) in enumerate(zip(replies, expected)):
            self.assertEqual(got, want, commands[i] if i < len(commands) else i)
        self.assertTrue(quit_reply.startswith(b"+OK"))
        self.assertTrue(closed)
        # QUIT removed exactly the messages marked.
        self.assertEqual(len(await (await self.inbox()).uids()),
                         len(self.contents) + len(small) - 3)


class _StreamingOnStore(MemoryStreamingTests):
    """The same over a persistent store (C{store}: a kind of L{make_store})."""

    store = ""
    # Collected only as the per-store classes defined below.
    __test__ = False

    async def setUp(self) -> None:
        self._store = await make_store(self.store, self)
        await super().setUp()

    def make_backend(self):
        return self._store


class _RemovedDuringRetr:
    """For the SQL stores, whose content is read chunk by chunk as it is sent."""

    async def test_message_removed_during_retr_ends_the_connection(self) -> None:
        # Several times more than the socket buffers between server and
        # client can hold, so the server is still reading the message when
        # it goes.
        content = LARGE * 3
        await self.deliver(content)
        number = len(self.contents) + 1
        client = Reader(self.port, rcvbuf=32 * 1024)

        def start():
            client.login()
            client.sock.sendall(b"RETR %d\r\n" % number)
            status = client.line()
            while len(client.buf) < 100_000:
                client._more()
            return status

        status = await self.in_thread(start)
        self.assertEqual(status, b"+OK %d octets\r\n" % len(content))
        # Another client (here the store API, as an IMAP EXPUNGE would)
        # removes the message while the POP3 client is not reading.
        inbox = await self.inbox()
        uid = (await inbox.uids())[-1]
        await inbox.store_flags([uid], "add", {"\\Deleted"})
        self.assertEqual(await inbox.expunge([uid]), [uid])
        received = await self.in_thread(client.rest)
        client.close()
        expected = rfc1939_body(content)
        # What came is the start of the right bytes, and visibly cut short:
        # no terminating line, no -ERR in the middle of the response.
        self.assertLess(len(received), len(expected) - 3 * 1024 * 1024)
        self.assertEqual(received, expected[: len(received)])
        self.assertFalse(received.endswith(b"\r\n.\r\n"))
        self.assertNotIn(b"-ERR", received)

        # The server goes on serving; the message is gone for the next session.
        def again():
            c = Reader(self.port)
            c.login()
            c.sock.sendall(b"STAT\r\nQUIT\r\n")
            return c.line(), c.line()

        stat, bye = await self.in_thread(again)
        self.assertEqual(stat, b"+OK %d %d\r\n" % (len(self.contents),
                                                    sum(map(len, self.contents))))
        self.assertTrue(bye.startswith(b"+OK"))



for _kind in store_kinds():
    _bases = ((_RemovedDuringRetr, _StreamingOnStore) if _kind in ("sqlite", "postgresql")
              else (_StreamingOnStore,))
    _name = f"StreamingTests_{_kind}"
    globals()[_name] = type(_name, _bases,
                            {"store": _kind, "__test__": True, "__module__": __name__})


class FlowControlTests(POP3ServerTestCase):
    """A client that pipelines RETRs and then does not read holds the server back."""

    async def test_pipelined_retr_waits_for_a_slow_client(self) -> None:
        contents = [b"Subject: %d\r\n\r\n" % i + b"x" * 20000 + b"\r\n" for i in range(1000)]
        await self.deliver(*contents)
        reads = []
        original = MemoryMessage.read

        async def recording_read(message, offset=0, length=None):
            reads.append(message.meta.uid)
            return await original(message, offset, length)

        self.patch(MemoryMessage, "read", recording_read)
        client = Reader(self.port, rcvbuf=32 * 1024)

        def start():
            client.login()
            client.sock.sendall(b"".join(b"RETR %d\r\n" % n for n in range(1, 1001)))

        await self.in_thread(start)
        # Wait (bounded) until the server has had to stop for the client.
        deadline = time.monotonic() + 10
        while not any(p._drain is not None for p in self.factory.connections):
            self.assertLess(time.monotonic(), deadline, "the server never paused")
            await task.deferLater(reactor, 0.01, lambda: None)
        # 20 MB were asked for; no more than the socket buffers hold was read.
        self.assertLess(len(set(reads)), 500)

        def finish():
            out = []
            for content in contents:
                out.append((client.line(), client.body()))
            client.close()
            return out

        replies = await self.in_thread(finish)
        for content, (status, body) in zip(contents, replies):
            self.assertEqual(status, b"+OK %d octets\r\n" % len(content))
            self.assertEqual(body, content + b".\r\n")


class StoreFailureTests(POP3ServerTestCase):
    """A store that fails half-way through a message: no -ERR inside the response."""

    async def test_failure_after_the_status_line_ends_the_connection(self) -> None:
        await self.deliver(LARGE, DOTS)
        original = MemoryMessage.read

        async def failing_read(message, offset=0, length=None):
            if offset >= 2 * CHUNK:
                raise MailhubError("the disk is on fire")
            return await original(message, offset, length)

        self.patch(MemoryMessage, "read", failing_read)

        def run():
            c = Reader(self.port)
            c.login()
            c.sock.sendall(b"RETR 1\r\nRETR 2\r\n")
            status = c.line()
            received = c.rest()
            c.close()
            return status, received

        status, received = await self.in_thread(run)
        self.assertEqual(status, b"+OK %d octets\r\n" % len(LARGE))
        expected = rfc1939_body(LARGE)
        # Two ranges of the message were sent, then the connection ended.
        self.assertGreaterEqual(len(received), 2 * CHUNK)
        self.assertLess(len(received), len(expected))
        self.assertEqual(received, expected[: len(received)])
        self.assertNotIn(b"-ERR", received)
        self.assertNotIn(b"disk", received)
        self.flushLoggedErrors(MailhubError)
