"""
Summaries computed when a message is stored (interfaces.ISummarizer): the
server gives the store the IMAP layer's summarizer, every store keeps the
rendered ENVELOPE, BODYSTRUCTURE and BODY and the sort values with the
message, and a server started afresh on the store answers FETCH of them
(and SORT) without reading a message, with the bytes FETCH renders from
the message itself.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from twisted.cred.portal import Portal
from twisted.internet import reactor, task
from twisted.trial import unittest

from harness import USERS, IMAPServerTestCase, RawClient, on_every_store
from lmtp_harness import (
    KINDS,
    Server,
    command_env,
    lmtp_send,
    lmtp_tcp,
    mailhub_command,
    store_url,
)
from stores import make_store

from twisted_mailhub.auth.checkers import InMemoryChecker
from twisted_mailhub.auth.realm import MailhubRealm
from twisted_mailhub.backends.folders import compact_summaries
from twisted_mailhub.backends.summaryfile import SummaryFile
from twisted_mailhub.imap.protocol import IMAPServerFactory
from twisted_mailhub.imap.summaries import FetchSummarizer
from twisted_mailhub.mime.parse import parse_message
from twisted_mailhub.service import give_summarizer

from tests_messages import CORPUS as MIME_CORPUS
from tests_messages import simple_message

WHEN = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
NAMES = list(FetchSummarizer.names)


FORWARD = (
    b"From: Ann <ann@example.org>\r\nTo: Bo <bo@example.org>\r\n"
    b"Subject: Fwd: the plan\r\nMessage-ID: <fwd@example.org>\r\n"
    b"Date: Wed, 1 May 2024 12:00:00 +0200\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: multipart/mixed; boundary=outer\r\n\r\n"
    b"--outer\r\nContent-Type: text/plain\r\n\r\nSee below.\r\n"
    b"--outer\r\nContent-Type: message/rfc822\r\n\r\n"
    b"From: Cy <cy@example.org>\r\nSubject: the plan\r\n"
    b"Content-Type: multipart/alternative; boundary=inner\r\n\r\n"
    b"--inner\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nplan\r\n"
    b"--inner\r\nContent-Type: text/html\r\n\r\n<p>plan</p>\r\n--inner--\r\n"
    b"--outer--\r\n"
)
EIGHT_BIT = (
    "From: Jörg <jorg@example.org>\r\nTo: group: a@example.org, b@example.org;\r\n"
    "Subject: Grüße\r\nDate: Thu, 2 May 2024 08:00:00 +0000\r\n"
    "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
    "Schöne Grüße\r\n"
).encode("utf-8")
CORPUS = [*MIME_CORPUS, FORWARD, EIGHT_BIT, simple_message("plain"),
          b"Subject: no body separator"]


def spy_content_reads(testcase: unittest.TestCase, backend) -> list[str]:
    """
    The reads of message content by C{backend} from now on, as they happen:
    its way of opening a message, the file stores' read of a message from
    its file, and the SQL statements that touch the content tables.
    """
    from twisted_mailhub.backends.maildir import MaildirBackend
    from twisted_mailhub.backends.maildir.folder import Folder
    from twisted_mailhub.backends.maildir.mailbox import MaildirMailbox
    from twisted_mailhub.backends.mbox import MboxBackend
    from twisted_mailhub.backends.mbox.folder import MboxFolder
    from twisted_mailhub.backends.mbox.mailbox import MboxMailbox
    from twisted_mailhub.backends.memory import MemoryBackend, MemoryMailbox

    reads: list[str] = []

    def count(cls, name: str) -> None:
        original = getattr(cls, name)

        def counted(self, *args, **kwargs):
            reads.append(f"{cls.__name__}.{name}")
            return original(self, *args, **kwargs)

        testcase.patch(cls, name, counted)

    if isinstance(backend, MemoryBackend):
        count(MemoryMailbox, "open_message")
    elif isinstance(backend, MboxBackend):
        count(MboxMailbox, "open_message")
        count(MboxFolder, "content")
    elif isinstance(backend, MaildirBackend):
        count(MaildirMailbox, "open_message")
        count(Folder, "content")
    else:
        from sqlalchemy import event

        from twisted_mailhub.backends.sql.mailbox import SQLMailbox

        count(SQLMailbox, "open_message")
        count(SQLMailbox, "open_messages")
        content = re.compile(r"\b(contents|chunks)\b")

        def statement(conn, cursor, text, *args) -> None:
            if content.search(text):
                reads.append(text)

        event.listen(backend.db.engine, "before_cursor_execute", statement)
        testcase.addCleanup(event.remove, backend.db.engine, "before_cursor_execute",
                            statement)
    return reads


def twin(backend):
    """Another backend object on the same storage: a restart, another process."""
    from twisted_mailhub.backends.maildir import MaildirBackend
    from twisted_mailhub.backends.mbox import MboxBackend
    from twisted_mailhub.backends.memory import MemoryBackend
    from twisted_mailhub.backends.sql import open_backend

    if isinstance(backend, MemoryBackend):
        return backend
    if isinstance(backend, MboxBackend):
        return MboxBackend(backend.root)
    if isinstance(backend, MaildirBackend):
        return MaildirBackend(backend.root)
    return open_backend(backend.url.render_as_string(hide_password=False))


def session(port: int, *commands: bytes) -> list[bytes]:
    """Log in as alice, run C{commands}, log out; the answer to each command."""
    client = RawClient(port)
    try:
        client.line()
        client.command(b"l1 LOGIN alice wonderland")
        answers = [b"".join(client.command(b"c%d " % i + c)) for i, c in enumerate(commands)]
        client.command(b"l2 LOGOUT")
    finally:
        client.close()
    return answers


class KeptWhenStored(IMAPServerTestCase):
    """On the server's store, given the summarizer as the server gives it."""

    async def make_backend(self):
        backend = await make_store(self.store, self)
        give_summarizer(backend)
        return backend

    def serve(self, backend) -> int:
        """A second server on C{backend}; its port."""
        portal = Portal(MailhubRealm(backend), [InMemoryChecker(dict(USERS))])
        factory = IMAPServerFactory(portal, policy=self.policy)
        listening = reactor.listenTCP(0, factory, interface="127.0.0.1")

        async def stop() -> None:
            await listening.stopListening()
            for protocol in list(factory.connections):
                protocol.transport.abortConnection()
            await task.deferLater(reactor, 0, lambda: None)

        self.addCleanup(stop)
        return listening.getHost().port

    async def restarted(self, summarizer: bool = True):
        """A fresh backend on the server's storage (the same one in memory)."""
        fresh = twin(self.backend)
        if fresh is not self.backend:
            self.addCleanup(fresh.close)
        if summarizer:
            give_summarizer(fresh)
        reaper = getattr(fresh, "reaper", None)
        if reaper is not None:
            # Its sweep at the first open runs on a timer and would show up
            # among the statements on content tables.
            await fresh.ready()
            await reaper.flush()
        return fresh

    def append_corpus(self, port: int) -> None:
        import imaplib

        client = imaplib.IMAP4("127.0.0.1", port, timeout=20)
        try:
            client.login("alice", "wonderland")
            # The corpus has 8-bit header fields (RFC 6855 section 4).
            client.enable("UTF8=ACCEPT")
            for i, message in enumerate(CORPUS):
                typ, data = client.append("INBOX", None, WHEN + timedelta(hours=i), message)
                self.assertEqual(typ, "OK", data)
        finally:
            client.logout()

    async def lazily(self, *commands: bytes) -> list[bytes]:
        """
        The answers of a server that renders from the messages: the corpus
        appended to a memory store without a summarizer, in the same order,
        whose headers are cut from the parsed structure (the store gives
        none of its own).
        """
        from twisted_mailhub.backends.memory import MemoryBackend, MemoryMailbox

        kept = MemoryMailbox.summaries

        async def without_headers(box, uids, names):
            return await kept(box, uids, [name for name in names if name != "header"])

        MemoryMailbox.summaries = without_headers
        try:
            port = self.serve(MemoryBackend())
            await self.in_thread(self.append_corpus, port)
            return await self.in_thread(session, port, b"SELECT INBOX", *commands)
        finally:
            MemoryMailbox.summaries = kept

    async def test_fetch_after_a_restart_reads_no_message(self) -> None:
        fetch = b"UID FETCH 1:* (ENVELOPE BODYSTRUCTURE BODY)"
        expected = await self.lazily(fetch)
        await self.in_thread(self.append_corpus, self.port)
        fresh = await self.restarted()
        port = self.serve(fresh)
        reads = spy_content_reads(self, fresh)
        answers = await self.in_thread(session, port, b"SELECT INBOX", fetch)
        self.assertEqual(reads, [])
        self.assertEqual(answers[1].count(b" FETCH ("), len(CORPUS))
        self.assertEqual(answers[1], expected[1])

    async def test_sort_after_a_restart_reads_no_message(self) -> None:
        sort = b"UID SORT (SUBJECT REVERSE DATE FROM) UTF-8 ALL"
        expected = await self.lazily(sort)
        await self.in_thread(self.append_corpus, self.port)
        fresh = await self.restarted()
        reads = spy_content_reads(self, fresh)
        answers = await self.in_thread(session, self.serve(fresh), b"SELECT INBOX", sort)
        self.assertEqual(reads, [])
        self.assertEqual(answers[1], expected[1])

    async def test_headers_after_a_restart(self) -> None:
        """
        BODY.PEEK[HEADER] and HEADER.FIELDS as rendered from the messages; the
        SQL store cuts the headers from the content it holds, one statement
        for the whole set, with no message opened.
        """
        fetch = (b"UID FETCH 1:* (BODY.PEEK[HEADER] BODY.PEEK[HEADER.FIELDS (SUBJECT FROM)] "
                 b"RFC822.HEADER)")
        expected = await self.lazily(fetch)
        await self.in_thread(self.append_corpus, self.port)
        fresh = await self.restarted()
        reads = spy_content_reads(self, fresh)
        answers = await self.in_thread(session, self.serve(fresh), b"SELECT INBOX", fetch)
        self.assertEqual(answers[1].count(b" FETCH ("), len(CORPUS))
        self.assertEqual(answers[1], expected[1])
        if self.store in ("sqlite", "postgresql"):
            self.assertEqual(len(reads), 1, reads)
            self.assertNotIn("SQLMailbox.open_messages", reads)
        else:
            # The headers are cut in one pass over the messages; none is
            # opened (and parsed) for them.
            self.assertEqual([r for r in reads if r.endswith(".open_message")], [])

    async def test_past_the_memo_budget_no_message_is_opened(self) -> None:
        """
        What the store gives is used for the command that asked for it even
        when this process's memo keeps nothing more (a mailbox whose
        summaries and headers exceed its budget).
        """
        from twisted_mailhub import index

        fetch = (b"UID FETCH 1:* (ENVELOPE BODYSTRUCTURE "
                 b"BODY.PEEK[HEADER.FIELDS (SUBJECT FROM)])")
        sort = b"UID SORT (SUBJECT REVERSE DATE FROM) UTF-8 ALL"
        expected = await self.lazily(fetch, sort)
        await self.in_thread(self.append_corpus, self.port)
        fresh = await self.restarted()
        self.patch(index, "MEMO_BUDGET", 0)
        reads = spy_content_reads(self, fresh)
        answers = await self.in_thread(session, self.serve(fresh), b"SELECT INBOX", fetch, sort)
        self.assertEqual(answers[1:], expected[1:])
        self.assertEqual([r for r in reads if "open_message" in r], [])

    async def test_the_store_gives_every_kind_of_header(self) -> None:
        """
        The C{header} each store gives is the message's top-level header as
        its parsed structure places it: long headers, a body that is only a
        blank line, no body at all, bare line feeds, From lines in the body.
        """
        from twisted_mailhub.model import AppendRequest

        long_header = b"".join(b"Received: from relay%d.example.org by mx.example.org; "
                               b"Wed, 1 May 2024 12:00:00 +0000\r\n" % i for i in range(300))
        messages = [
            long_header + b"Subject: long\r\n\r\nbody\r\n",
            # The blank line around where a first read of 8 KiB would end.
            *(b"X-Pad: " + b"p" * (8192 - 12 - extra) + b"\r\nSubject: edge\r\n\r\nbody\r\n"
              for extra in range(0, 40, 3)),
            b"Subject: nothing after the blank line\r\n\r\n",
            b"Subject: no blank line\r\nX-Other: too",
            b"Subject: bare\nFrom: a@example.org\n\nFrom the start\n>From quoted\n",
            b"\r\nstarts with a blank line\r\n",
            *CORPUS,
        ]
        box = await (await self.backend.open_store("alice")).get_mailbox("INBOX")
        metas = await box.append([AppendRequest(m, internaldate=WHEN) for m in messages])
        uids = [meta.uid for meta in metas]
        found = await box.summaries(uids, ["header"])
        for uid in uids:
            content = await (await box.open_message(uid)).read()
            expected = content[: parse_message(content).root.body_start]
            self.assertEqual(found[uid]["header"], expected, uid)

    async def test_copy_and_move_carry_them(self) -> None:
        fetch = b"UID FETCH 1:* (ENVELOPE BODYSTRUCTURE)"
        expected = await self.lazily(fetch)
        await self.in_thread(self.append_corpus, self.port)
        await self.in_thread(session, self.port, b"CREATE Copied", b"CREATE Moved",
                             b"SELECT INBOX", b"UID COPY 1:* Copied", b"UID MOVE 1:* Moved")
        fresh = await self.restarted()
        reads = spy_content_reads(self, fresh)
        port = self.serve(fresh)
        for name in (b"Copied", b"Moved"):
            answers = await self.in_thread(session, port, b"SELECT " + name, fetch)
            self.assertEqual(reads, [])
            self.assertEqual(answers[1], expected[1])

    async def test_messages_stored_without_them_get_them_at_the_first_fetch(self) -> None:
        from twisted_mailhub.model import AppendRequest

        fetch = b"UID FETCH 1:* (ENVELOPE BODYSTRUCTURE)"
        # Stored by a server of before: no summarizer.
        plain = await self.restarted(summarizer=False)
        plain.use_summarizer(None)
        box = await (await plain.open_store("alice")).get_mailbox("INBOX")
        await box.append([AppendRequest(m, internaldate=WHEN) for m in CORPUS[:3]])

        first = await self.restarted()
        reads = spy_content_reads(self, first)
        answer = await self.in_thread(session, self.serve(first), b"SELECT INBOX", fetch)
        self.assertNotEqual(reads, [])
        box = await (await first.open_store("alice")).get_mailbox("INBOX")
        # Kept after the answer, by a write the client does not wait for.
        for _ in range(500):
            kept = await box.summaries([1, 2, 3], ["ENVELOPE", "BODYSTRUCTURE"])
            if [len(kept.get(uid, ())) for uid in (1, 2, 3)] == [2, 2, 2]:
                break
            await task.deferLater(reactor, 0.01, lambda: None)

        # Another process, or this one once its sessions are gone (the
        # index forgets what it rendered when no session uses it).
        second = await self.restarted()
        reads = spy_content_reads(self, second)
        again = await self.in_thread(session, self.serve(second), b"SELECT INBOX", fetch)
        self.assertEqual(reads, [])
        self.assertEqual(again[1], answer[1])


on_every_store(KeptWhenStored)


class SummaryFileTests(unittest.TestCase):
    """The summaries file of the mbox and Maildir stores."""

    def test_two_writers_and_a_torn_line(self) -> None:
        path = self.mktemp()
        one, other = SummaryFile(path), SummaryFile(path)
        one.add({"M1": {"ENVELOPE": b"(\"a\" \xe9)", "BODY": b"x"}})
        self.assertEqual(other.get(["M1"], ["ENVELOPE"]), {"M1": {"ENVELOPE": b"(\"a\" \xe9)"}})
        # A writer killed in the middle of its line.
        with open(path, "ab") as f:
            f.write(b'M2 ENVELOPE 20 {"ENVELOPE":"(tor')
        other.add({"M3": {"ENVELOPE": b"three"}, "M1": {"ENVELOPE": b"changed"}})
        self.assertEqual(one.get(["M1", "M2", "M3"], ["ENVELOPE", "BODY"]), {
            "M1": {"ENVELOPE": b"(\"a\" \xe9)", "BODY": b"x"},
            "M3": {"ENVELOPE": b"three"},
        })
        self.assertEqual(one.names_of("M1"), {"ENVELOPE", "BODY"})
        self.assertEqual(one.names_of("M2"), frozenset())
        # What a key has is never written twice.
        size = os.path.getsize(path)
        one.add({"M1": {"BODY": b"y"}})
        self.assertEqual(os.path.getsize(path), size)


# -- stored by every way mail arrives, in a real server process ---------------------


class _EveryWayOfDelivery:
    """
    A real server process given an LMTP delivery and an APPEND, and a
    ``mailhub deliver``: each message has its summaries from the start,
    the values FETCH renders from its content.
    """

    kind: str

    def deliver_all(self, directory: Path, store: str) -> None:
        import imaplib

        config = directory / "mailhub.toml"
        config.write_text(f'store = "{store}"\nuser = ["alice:wonderland"]\n')
        server = Server(directory, ("--config", str(config),
                                    "--imap", "tcp:0:interface=127.0.0.1",
                                    "--lmtp", "tcp:0:interface=127.0.0.1"))
        with server:
            replies = lmtp_send(lmtp_tcp(server.port("LMTP")), "ann@example.org",
                                ["alice"], FORWARD)
            self.assertEqual(replies["alice"][0], 250, replies)
            with imaplib.IMAP4("127.0.0.1", server.port("IMAP"), timeout=20) as client:
                client.login("alice", "wonderland")
                client.enable("UTF8=ACCEPT")
                self.assertEqual(client.append("INBOX", None, WHEN, EIGHT_BIT)[0], "OK")
                client.logout()
            delivered = subprocess.run(
                mailhub_command("deliver", "--config", str(config), "-u", "alice"),
                input=CORPUS[0], env=command_env(), capture_output=True, timeout=60)
            self.assertEqual(delivered.returncode, 0, delivered.stderr)

    async def test_delivered_appended_and_local_delivery(self) -> None:
        from twisted.internet import threads

        from twisted_mailhub.backends.registry import open_backend

        directory = Path(os.path.abspath(self.mktemp()))
        directory.mkdir()
        store = store_url(self.kind, directory, self)
        await threads.deferToThread(self.deliver_all, directory, store)
        # Opened without a summarizer: only what was stored is found.
        backend = open_backend(store)
        self.addCleanup(backend.close)
        ready = getattr(backend, "ready", None)
        if ready is not None:
            await ready()
        box = await (await backend.open_store("alice")).get_mailbox("INBOX")
        uids = await box.uids()
        self.assertEqual(len(uids), 3)
        kept = await box.summaries(uids, NAMES)
        for uid in uids:
            content = await (await box.open_message(uid)).read()
            self.assertEqual(kept.get(uid),
                             FetchSummarizer().summarize(content, parse_message(content)))

    def addfinalizer(self, function) -> None:
        # store_url's PostgreSQL database is dropped like a fixture's.
        self.addCleanup(function)


for _kind in KINDS:
    _name = f"EveryWayOfDelivery_{_kind}"
    globals()[_name] = type(_name, (_EveryWayOfDelivery, unittest.TestCase), {"kind": _kind})


# -- compacting the summaries file of the file stores ---------------------------


class _Compaction:
    """
    The summaries file of a store kept in files, after heavy churn: compacted,
    it keeps only the lines of the messages that exist, byte for byte, and
    another process using the file meanwhile goes on as before.
    """

    backend_class: type

    async def open(self, root: str):
        backend = self.backend_class(root)
        self.addCleanup(backend.close)
        give_summarizer(backend)
        return backend, await backend.open_store("alice")

    async def churned(self):
        """A store with the corpus in INBOX and 300 messages appended and expunged."""
        from twisted_mailhub.model import AppendRequest

        root = os.path.abspath(self.mktemp())
        backend, store = await self.open(root)
        inbox = await store.get_mailbox("INBOX")
        await inbox.append([AppendRequest(m, internaldate=WHEN) for m in CORPUS])
        await store.create_mailbox("Junk")
        junk = await store.get_mailbox("Junk")
        for round in range(3):
            await junk.append([AppendRequest(simple_message(f"spam {round} {i}"),
                                             internaldate=WHEN) for i in range(100)])
            await junk.store_flags(await junk.uids(), "add", ["\\Deleted"])
            await junk.expunge()
        return root, backend, store

    def lines_of(self, path: str, keys) -> list[bytes]:
        with open(path, "rb") as f:
            return [line for line in f.read().splitlines(keepends=True)
                    if line.split(b" ", 1)[0].decode() in keys]

    async def test_compaction_keeps_what_exists(self) -> None:
        root, backend, store = await self.churned()
        inbox = await store.get_mailbox("INBOX")
        uids = await inbox.uids()
        identities = {meta.identity for meta in await inbox.metadata(uids)}
        kept = await inbox.summaries(uids, NAMES)
        self.assertEqual(len(kept), len(CORPUS))
        lines = self.lines_of(store.summary_path, identities)
        # Another process, that has read the file before the compaction.
        other, other_store = await self.open(root)
        other_inbox = await other_store.get_mailbox("INBOX")
        self.assertEqual(await other_inbox.summaries(uids, NAMES), kept)

        before, after = await compact_summaries(store)
        self.assertLess(after * 10, before)
        self.assertEqual(os.path.getsize(store.summary_path), after)
        self.assertEqual(self.lines_of(store.summary_path, identities), lines)
        with open(store.summary_path, "rb") as f:
            self.assertEqual(f.read(), b"".join(lines))

        # Both go on: the other reads the new file, and writes to it.
        reads = spy_content_reads(self, other)
        self.assertEqual(await other_inbox.summaries(uids, NAMES), kept)
        self.assertEqual(reads, [])
        from twisted_mailhub.model import AppendRequest

        [meta] = await other_inbox.append([AppendRequest(FORWARD, internaldate=WHEN)])
        self.assertEqual(len((await inbox.summaries([meta.uid], NAMES))[meta.uid]), len(NAMES))
        # A restart serves them without reading a message either.
        fresh, fresh_store = await self.open(root)
        fresh_inbox = await fresh_store.get_mailbox("INBOX")
        reads = spy_content_reads(self, fresh)
        self.assertEqual(await fresh_inbox.summaries(uids, NAMES), kept)
        self.assertEqual(reads, [])
        # Nothing more to drop: the file is left alone.
        size = os.path.getsize(store.summary_path)
        self.assertEqual(await compact_summaries(fresh_store), (size, size))

    async def test_a_writer_waiting_for_the_lock_writes_to_the_new_file(self) -> None:
        import fcntl
        import threading

        root, backend, store = await self.churned()
        path = store.summary_path
        waiting, other = SummaryFile(path), SummaryFile(path)
        # The compaction holds the lock; a writer of another process waits for it.
        fd = os.open(path, os.O_RDWR)
        fcntl.flock(fd, fcntl.LOCK_EX)
        writer = threading.Thread(target=waiting.add, args=({"LATE": {"ENVELOPE": b"late"}},))
        writer.start()
        inbox = await store.get_mailbox("INBOX")
        live = {meta.identity for meta in await inbox.metadata(await inbox.uids())}
        from twisted_mailhub.backends.files import replace_file

        with open(path, "rb") as f:
            replace_file(path, [line for line in f if line.split(b" ", 1)[0].decode() in live])
        os.close(fd)
        writer.join(30)
        self.assertFalse(writer.is_alive())
        self.assertEqual(other.get(["LATE"], ["ENVELOPE"]), {"LATE": {"ENVELOPE": b"late"}})

    async def test_a_crash_before_the_rename_leaves_the_file_whole(self) -> None:
        from twisted_mailhub.backends import files

        root, backend, store = await self.churned()
        with open(store.summary_path, "rb") as f:
            whole = f.read()

        def crash(source: str, target: str) -> None:
            raise OSError("killed")

        patched = self.patch(files, "_rename", crash)
        with self.assertRaises(OSError):
            await compact_summaries(store)
        patched.restore()
        with open(store.summary_path, "rb") as f:
            self.assertEqual(f.read(), whole)
        self.assertEqual([n for n in os.listdir(os.path.dirname(store.summary_path))
                          if "compact" in n], [])
        fresh, fresh_store = await self.open(root)
        inbox = await fresh_store.get_mailbox("INBOX")
        reads = spy_content_reads(self, fresh)
        self.assertEqual(len(await inbox.summaries(await inbox.uids(), NAMES)), len(CORPUS))
        self.assertEqual(reads, [])

    async def test_compacted_when_a_store_is_opened_and_mostly_dead(self) -> None:
        from twisted_mailhub.backends import folders

        self.patch(folders, "COMPACT_MIN_SIZE", 4096)
        root, backend, store = await self.churned()
        size = os.path.getsize(store.summary_path)
        fresh = self.backend_class(root)
        self.addCleanup(fresh.close)
        await fresh.open_store("alice")
        running = fresh.summary_compactions[store.summary_path]
        await running
        self.assertLess(os.path.getsize(store.summary_path) * 10, size)
        # Not again until it has doubled.
        await fresh.open_store("alice")
        self.assertEqual(fresh.summary_compactions, {})

    def leftover(self, store, pid: int, age: float = 0.0) -> str:
        """What a compaction by process C{pid} killed C{age} seconds ago leaves."""
        directory, base = os.path.split(store.summary_path)
        path = os.path.join(directory, f".{base}.compact.{pid}")
        with open(path, "wb") as f:
            f.write(b"half a file")
        when = time.time() - age
        os.utime(path, (when, when))
        return path

    def dead_pid(self) -> int:
        child = subprocess.Popen(["true"])
        child.wait()
        return child.pid

    async def test_leftovers_of_compactions_are_removed_when_first_opened(self) -> None:
        root = os.path.abspath(self.mktemp())
        _, store = await self.open(root)
        gone = self.leftover(store, self.dead_pid())
        ours = self.leftover(store, os.getpid())  # a process before us that had our pid
        running = self.leftover(store, 1)  # a compaction under way elsewhere
        fresh, _ = await self.open(root)
        self.assertFalse(os.path.exists(gone))
        self.assertFalse(os.path.exists(ours))
        self.assertTrue(os.path.exists(running))
        # Looked for once a process: the next open leaves a new one alone ...
        later = self.leftover(store, self.dead_pid())
        await fresh.open_store("alice")
        self.assertTrue(os.path.exists(later))
        # ... and the next compaction does not.
        summaries = fresh.summary_files.at(store.summary_path)
        await fresh.run(summaries.compact, [], (None, 0))
        self.assertFalse(os.path.exists(later))
        self.assertEqual(summaries.leftovers(), [])
        # One left by a process that runs still goes when it is old.
        when = time.time() - 120
        os.utime(running, (when, when))
        self.assertEqual(summaries.leftovers(), [])
        self.assertEqual(summaries.leftovers(max_age=60), [running])
        self.assertEqual(summaries.remove_leftovers(max_age=60), [running])
        self.assertFalse(os.path.exists(running))

    async def test_a_compaction_under_way_is_no_leftover(self) -> None:
        from twisted_mailhub.backends import files

        root, backend, store = await self.churned()
        removed = []

        def rename(source: str, target: str) -> None:
            # Another backend of this process looks for leftovers meanwhile.
            removed.extend(SummaryFile(store.summary_path).remove_leftovers())
            os.replace(source, target)

        self.patch(files, "_rename", rename)
        before, after = await compact_summaries(store)
        self.assertLess(after, before)
        self.assertEqual(removed, [])
        self.assertEqual(os.path.getsize(store.summary_path), after)
        self.assertEqual([n for n in os.listdir(os.path.dirname(store.summary_path))
                          if ".compact." in n], [])


class CompactionMbox(_Compaction, unittest.TestCase):
    from twisted_mailhub.backends.mbox import MboxBackend as backend_class


class CompactionMaildir(_Compaction, unittest.TestCase):
    from twisted_mailhub.backends.maildir import MaildirBackend as backend_class
