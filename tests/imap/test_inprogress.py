"""
INPROGRESS (RFC 9585): the response code's form, when L{Progress} speaks
(a fake clock, so no test waits), the reports of FETCH, STORE, SEARCH,
COPY, MOVE, SORT and THREAD on every store, with an interval of zero so
that every step is told, and the interval an admin sets with
--progress-interval.
"""

from __future__ import annotations

import re

from twisted.internet import reactor, threads
from twisted.internet.task import Clock
from twisted.trial import unittest

from harness import IMAPServerTestCase, RawClient, on_every_store

from tests_messages import simple_message
from twisted_mailhub.backends.memory import MemoryBackend
from twisted_mailhub.config import MailhubOptions
from twisted_mailhub.imap.progress import Progress, code
from twisted_mailhub.model import AppendRequest
from twisted_mailhub.policy import ServerPolicy
from twisted_mailhub.service import make_service

INPROGRESS = re.compile(rb'^\* OK \[INPROGRESS \("([^"]*)" (\d+|NIL) (\d+|NIL)\)\] Still working\r\n$')


class _IO:
    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)


class _Session:
    def __init__(self, interval: float | None) -> None:
        self.policy = ServerPolicy(progress_interval=interval)
        self.clock = Clock()
        self.io = _IO()


class ProgressTests(unittest.TestCase):
    def test_code(self) -> None:
        self.assertEqual(code("A001", 0, 500), 'INPROGRESS ("A001" 0 500)')
        self.assertEqual(code("t", 7, None), 'INPROGRESS ("t" 7 NIL)')

    def test_only_after_the_interval(self) -> None:
        session = _Session(10.0)
        progress = Progress(session, "A1", 100)
        progress(5)
        session.clock.advance(9.5)
        progress(10)
        self.assertEqual(session.io.written, [])
        session.clock.advance(0.5)
        progress(20)
        session.clock.advance(5)
        progress(30)
        session.clock.advance(5)
        progress(40)
        self.assertEqual(session.io.written, [
            b'* OK [INPROGRESS ("A1" 20 100)] Still working\r\n',
            b'* OK [INPROGRESS ("A1" 40 100)] Still working\r\n',
        ])

    def test_count_never_past_the_total(self) -> None:
        session = _Session(0.0)
        Progress(session, "x", 3)(4)
        self.assertEqual(session.io.written, [b'* OK [INPROGRESS ("x" 3 3)] Still working\r\n'])

    def test_next_stage(self) -> None:
        """A second stage has its own total; the interval runs on."""
        session = _Session(10.0)
        progress = Progress(session, "A1", 100)
        session.clock.advance(10)
        progress(60)
        session.clock.advance(6)
        progress.next_stage(7)
        progress(0)
        session.clock.advance(4)
        progress(3)
        self.assertEqual(session.io.written, [
            b'* OK [INPROGRESS ("A1" 60 100)] Still working\r\n',
            b'* OK [INPROGRESS ("A1" 3 7)] Still working\r\n',
        ])

    def test_none_turns_it_off(self) -> None:
        session = _Session(None)
        progress = Progress(session, "x", 3)
        session.clock.advance(3600)
        progress(1)
        self.assertEqual(session.io.written, [])


def reports(lines: list[bytes], tag: bytes) -> list[tuple[int, int]]:
    """The (done, total) of each INPROGRESS among C{lines}, all for C{tag}."""
    out = []
    for line in lines:
        found = INPROGRESS.match(line)
        if found:
            assert found.group(1) == tag, line
            out.append((int(found.group(2)), int(found.group(3))))
    return out


@on_every_store
class CommandTests(IMAPServerTestCase):
    policy = ServerPolicy(auth_failure_delay=0.0, auth_failure_delay_max=0.0,
                          progress_interval=0.0)

    async def setUp(self) -> None:
        await super().setUp()
        store = await self.backend.open_store("alice")
        await store.create_mailbox("Archive")
        inbox = await store.get_mailbox("INBOX")
        await inbox.append([AppendRequest(simple_message(f"message {n}")) for n in range(3)])

    def session(self):
        c = self.raw()
        c.line()
        c.command(b"a0 LOGIN alice wonderland")
        c.command(b"a1 SELECT INBOX")
        return c

    async def test_capability_is_not_advertised(self) -> None:
        """The response code has no capability of its own."""
        caps = await self.in_thread(lambda: self.session().command(b"c CAPABILITY")[0])
        self.assertNotIn(b"INPROGRESS", caps)

    async def test_fetch_of_messages(self) -> None:
        """Before each message opened, how many are done, in order."""

        def run():
            c = self.session()
            return c.command(b"A2 FETCH 1:3 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])")

        lines = await self.in_thread(run)
        progress = [i for i, line in enumerate(lines) if INPROGRESS.match(line)]
        fetches = [i for i, line in enumerate(lines) if re.match(rb"^\* \d FETCH", line)]
        self.assertEqual(reports(lines, b"A2"), [(0, 3), (1, 3), (2, 3)])
        # Each report comes before the FETCH response of the next message.
        self.assertEqual(len(fetches), 3)
        self.assertTrue(all(p < f for p, f in zip(progress, fetches)))
        self.assertTrue(all(f < p for f, p in zip(fetches, progress[1:])))
        self.assertEqual(lines[-1], b"A2 OK FETCH completed\r\n")

    async def test_fetch_of_flags(self) -> None:
        """Metadata is read a batch at a time: one report per batch."""
        lines = await self.in_thread(lambda: self.session().command(b"A2 UID FETCH 1:* FLAGS"))
        self.assertEqual(lines[0], b'* OK [INPROGRESS ("A2" 0 3)] Still working\r\n')
        self.assertEqual(reports(lines, b"A2"), [(0, 3)])

    async def test_store(self) -> None:
        lines = await self.in_thread(
            lambda: self.session().command(b"A3 STORE 1:3 +FLAGS.SILENT (\\Seen)"))
        self.assertEqual(lines, [b'* OK [INPROGRESS ("A3" 0 3)] Still working\r\n',
                                 b"A3 OK STORE completed\r\n"])

    async def test_search_and_copy_count_up(self) -> None:
        """
        SEARCH of message text and COPY/MOVE report where the store makes
        the server read each message (a store that searches or copies by
        itself has nothing to report); counts never go back nor past the
        total.
        """

        def run():
            c = self.session()
            return (c.command(b"A4 SEARCH BODY Hello"),
                    c.command(b"A5 COPY 1:3 Archive"),
                    c.command(b"A6 MOVE 1:2 Archive"))

        search, copy, move = await self.in_thread(run)
        for lines, tag, total in ((search, b"A4", 3), (copy, b"A5", 3), (move, b"A6", 2)):
            counts = reports(lines, tag)
            self.assertEqual(counts, sorted(counts), lines)
            self.assertTrue(all(t == total and d <= t for d, t in counts), lines)
        self.assertIn(b"* SEARCH 1 2 3\r\n", search)
        self.assertEqual(copy[-1][:7], b"A5 OK [")

    async def test_sort_and_thread(self) -> None:
        """
        SORT and THREAD report while their search tests messages, as SEARCH
        does (out of all the mailbox's), then, counting again, while they
        open the messages found for their sort values; within a stage the
        counts never go back nor past its total.
        """

        def run():
            c = self.session()
            return (c.command(b"A7 THREAD REFERENCES UTF-8 UID 3"),
                    c.command(b"A8 SORT (SUBJECT) UTF-8 UID 1:2 BODY Hello"))

        thread, sort = await self.in_thread(run)
        self.assertEqual(thread[-2:], [b"* THREAD (3)\r\n", b"A7 OK THREAD completed\r\n"])
        self.assertEqual(sort[-2:], [b"* SORT 1 2\r\n", b"A8 OK SORT completed\r\n"])
        for lines, tag, found in ((thread, b"A7", 1), (sort, b"A8", 2)):
            counts = reports(lines, tag)
            # The messages found are opened: the last stage always reports.
            self.assertEqual(counts[-1], (0, found), lines)
            searched = [c for c in counts if c[1] == 3]
            opened = [c for c in counts if c[1] == found]
            self.assertEqual(counts, searched + opened, lines)
            for stage in (searched, opened):
                self.assertEqual(stage, sorted(stage), lines)
                self.assertTrue(all(d <= t for d, t in stage), lines)


class _SlowClock:
    """
    The reactor, except that every look at the time finds a second more
    gone by: a server's command that reads the clock a few times takes a
    few seconds, with no test waiting for them.
    """

    def __init__(self) -> None:
        self._gone = 0.0

    def seconds(self) -> float:
        self._gone += 1.0
        return reactor.seconds() + self._gone

    def __getattr__(self, name: str):
        return getattr(reactor, name)


class ConfiguredIntervalTests(unittest.TestCase):
    """A server built from its command-line options, on a loopback port."""

    async def serve(self, *options: str) -> int:
        backend = MemoryBackend()
        inbox = await (await backend.open_store("alice")).get_mailbox("INBOX")
        await inbox.append([AppendRequest(simple_message(f"message {n}")) for n in range(5)])
        parsed = MailhubOptions()
        parsed.parseOptions(["--store", "memory:", "--user", "alice:wonderland",
                             "--imap", "tcp:0:interface=127.0.0.1", *options])
        server = make_service(parsed.settings, reactor=_SlowClock(), backend=backend)
        server.startService()
        self.addCleanup(server.stopService)
        await server.started
        [(_label, port)] = server.ports
        return port.getHost().port

    def fetch(self, port: int) -> list[bytes]:
        c = RawClient(port)
        c.line()
        c.command(b"a0 LOGIN alice wonderland")
        c.command(b"a1 SELECT INBOX")
        try:
            return c.command(b"A2 FETCH 1:5 BODY.PEEK[]")
        finally:
            c.sock.close()

    async def test_small_interval(self) -> None:
        port = await self.serve("--progress-interval", "2")
        lines = await threads.deferToThread(self.fetch, port)
        counts = reports(lines, b"A2")
        self.assertTrue(counts, lines)
        self.assertEqual(counts, sorted(counts))
        self.assertTrue(all(t == 5 and d < t for d, t in counts), lines)
        self.assertEqual(lines[-1], b"A2 OK FETCH completed\r\n")

    async def test_reports_off(self) -> None:
        port = await self.serve("--progress-interval", "off")
        lines = await threads.deferToThread(self.fetch, port)
        self.assertEqual(reports(lines, b"A2"), [])
        self.assertEqual(len([line for line in lines if b" FETCH (" in line]), 5)
        self.assertEqual(lines[-1], b"A2 OK FETCH completed\r\n")
