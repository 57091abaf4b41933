"""The journal of the mbox index: records instead of rewrites, replay, torn ends, folding."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import zlib

from twisted.internet import defer
from twisted.trial import unittest

import twisted_mailhub
from twisted_mailhub.backends.mbox import MboxBackend
from twisted_mailhub.backends.mbox import folder as mbox_folder
from twisted_mailhub.backends.mbox.index import (
    Change,
    Index,
    encode_index,
    encode_record,
    load_index,
    parse_index,
    write_index,
)
from twisted_mailhub.model import AppendRequest


def message(n: int) -> bytes:
    return b"From: sender%d@example.org\nSubject: message %d\n\nBody %d.\n" % (n, n, n)


class JournalTestCase(unittest.TestCase):
    def setUp(self) -> None:
        self.root = os.path.abspath(self.mktemp())
        self.backend = self.make()

    def make(self) -> MboxBackend:
        backend = MboxBackend(self.root)
        self.addCleanup(lambda: defer.ensureDeferred(backend.close()))
        return backend

    @property
    def index_path(self) -> str:
        return os.path.join(self.root, "alice", "INBOX.mailhub")

    async def inbox(self, backend: MboxBackend | None = None):
        store = await (backend or self.backend).open_store("alice")
        return await store.get_mailbox("INBOX")

    def loaded(self):
        return load_index(self.index_path)


class RecordTests(JournalTestCase):
    async def test_small_changes_are_records_in_the_same_file(self) -> None:
        inbox = await self.inbox()
        metas = await inbox.append([AppendRequest(message(n)) for n in range(3)])
        before = os.stat(self.index_path)
        document = self.loaded().document

        await inbox.store_flags([metas[1].uid], "add", {"\\Seen", "$Work"})
        await inbox.append([AppendRequest(message(3), frozenset({"\\Flagged"}))])
        again = await self.inbox(self.make())
        self.assertEqual(await again.claim_recent(False), [m.uid for m in metas] + [4])
        self.assertEqual(len(await inbox.claim_recent(True)), 4)
        self.assertEqual(await inbox.claim_recent(False), [])

        after = os.stat(self.index_path)
        self.assertEqual(after.st_ino, before.st_ino)
        self.assertGreater(after.st_size, before.st_size)
        loaded = self.loaded()
        self.assertEqual(loaded.document, document)
        self.assertGreaterEqual(loaded.records, 3)
        self.assertEqual(loaded.tail, 0)

    async def test_a_fresh_backend_replays_the_journal(self) -> None:
        inbox = await self.inbox()
        metas = await inbox.append([AppendRequest(message(n)) for n in range(3)])
        await inbox.store_flags([metas[0].uid, metas[2].uid], "add", {"\\Answered"})
        await inbox.store_flags([metas[2].uid], "remove", {"\\Answered"})
        await inbox.append([AppendRequest(message(3), frozenset({"$Later"}))])
        status = await inbox.status()
        everything = await inbox.metadata(await inbox.uids())
        self.assertGreater(self.loaded().records, 0)

        again = await self.inbox(self.make())
        self.assertEqual(await again.metadata(await again.uids()), everything)
        self.assertEqual(await again.status(), status)
        self.assertEqual([m.flags for m in everything],
                         [{"\\Answered"}, frozenset(), frozenset(), {"$Later"}])

    async def test_an_index_without_journal_loads_as_before(self) -> None:
        inbox = await self.inbox()
        metas = await inbox.append([AppendRequest(message(n)) for n in range(2)])
        await inbox.store_flags([metas[0].uid], "add", {"\\Seen"})
        everything = await inbox.metadata(await inbox.uids())
        # The document alone, as written before the journal existed.
        write_index(self.index_path, self.loaded().index)
        with open(self.index_path, "rb") as f:
            self.assertNotIn(b"\n", f.read())

        again = await self.inbox(self.make())
        self.assertEqual(await again.metadata(await again.uids()), everything)
        await again.store_flags([metas[1].uid], "add", {"\\Flagged"})
        third = await self.inbox(self.make())
        self.assertEqual([m.flags for m in await third.metadata(await third.uids())],
                         [{"\\Seen"}, {"\\Flagged"}])

    async def test_torn_last_record_is_ignored_then_cut_off(self) -> None:
        inbox = await self.inbox()
        metas = await inbox.append([AppendRequest(message(n)) for n in range(2)])
        await inbox.store_flags([metas[0].uid], "add", {"\\Seen"})
        whole = os.path.getsize(self.index_path)
        await inbox.store_flags([metas[1].uid], "add", {"\\Flagged"})
        with open(self.index_path, "rb") as f:
            data = f.read()
        # What a crash in the middle of writing the last record leaves.
        torn = data[: whole + (len(data) - whole) // 2]
        with open(self.index_path, "wb") as f:
            f.write(torn)
        self.assertEqual(self.loaded().tail, len(torn) - whole)

        again = await self.inbox(self.make())
        self.assertEqual([m.flags for m in await again.metadata(await again.uids())],
                         [{"\\Seen"}, frozenset()])
        await again.store_flags([metas[1].uid], "add", {"$Again"})
        loaded = self.loaded()
        self.assertEqual(loaded.tail, 0)
        self.assertEqual([e.flags for e in loaded.index.entries], [{"\\Seen"}, {"$Again"}])

    async def test_record_with_a_bad_checksum_ends_the_journal(self) -> None:
        inbox = await self.inbox()
        metas = await inbox.append([AppendRequest(message(n)) for n in range(2)])
        whole = os.path.getsize(self.index_path)
        await inbox.store_flags([metas[0].uid], "add", {"\\Seen"})
        with open(self.index_path, "r+b") as f:
            f.seek(-3, os.SEEK_END)
            last = f.read(1)
            f.seek(-3, os.SEEK_END)
            f.write(b"X" if last != b"X" else b"Y")
        loaded = self.loaded()
        self.assertEqual(loaded.end, whole)
        self.assertIn("checksum", loaded.problem)
        again = await self.inbox(self.make())
        self.assertEqual([m.flags for m in await again.metadata(await again.uids())],
                         [frozenset(), frozenset()])


class ContinuingTests(unittest.TestCase):
    def journal(self, key: str, changes: list[Change]) -> bytes:
        document = encode_index(Index(uidvalidity=7, key=key))
        data, chain = [document], zlib.crc32(document)
        for change in changes:
            record, chain = encode_record(change, chain)
            data.append(record)
        return b"".join(data)

    def test_records_added_since_are_applied(self) -> None:
        first = self.journal("a" * 32, [Change({"uidnext": 5})])
        later = self.journal("a" * 32, [Change({"uidnext": 5}), Change({"recent_after": 3})])
        loaded = parse_index(first)
        self.assertTrue(loaded.replay(later[loaded.end:], loaded.end, continuing=True))
        self.assertEqual((loaded.index.uidnext, loaded.index.recent_after), (5, 3))
        self.assertEqual((loaded.end, loaded.records), (len(later), 2))

    def test_records_of_another_file_are_refused(self) -> None:
        # The same layout (a rewrite reusing the inode): the checksum chain
        # from the document tells them apart.
        first = self.journal("a" * 32, [Change({"uidnext": 5})])
        other = self.journal("b" * 32, [Change({"uidnext": 5}), Change({"recent_after": 3})])
        loaded = parse_index(first)
        self.assertFalse(loaded.replay(other[loaded.end:], loaded.end, continuing=True))
        self.assertEqual((loaded.index.uidnext, loaded.index.recent_after), (5, 0))


class FoldingTests(JournalTestCase):
    async def test_journal_is_folded_in_past_its_share_of_the_document(self) -> None:
        cache = self.backend.cache
        cache.journal_minimum = 0
        inbox = await self.inbox()
        metas = await inbox.append([AppendRequest(message(n)) for n in range(20)])
        rewrites = 0
        inode = os.stat(self.index_path).st_ino
        for i in range(60):
            # Each store changes a flag: on for all, off for all, on again.
            await inbox.store_flags([metas[i % 20].uid], "remove" if i // 20 == 1 else "add",
                                    {"\\Seen"})
            loaded = self.loaded()
            # Never more journal than the share allows (plus the record
            # that would have passed it, which rewrites instead).
            self.assertLessEqual(loaded.journal, cache.journal_share * loaded.document)
            now = os.stat(self.index_path).st_ino
            if now != inode:
                rewrites += 1
                inode = now
                self.assertEqual(loaded.journal, 0)
                self.assertEqual(loaded.records, 0)
        self.assertGreater(rewrites, 0)
        # Far fewer rewrites than changes.
        self.assertLess(rewrites, 20)
        again = await self.inbox(self.make())
        self.assertEqual(await again.metadata(await again.uids()),
                         await inbox.metadata(await inbox.uids()))

    async def test_expunge_rewrites_the_index(self) -> None:
        inbox = await self.inbox()
        metas = await inbox.append([AppendRequest(message(n)) for n in range(3)])
        await inbox.store_flags([metas[1].uid], "add", {"\\Deleted"})
        self.assertGreater(self.loaded().records, 0)
        await inbox.expunge()
        loaded = self.loaded()
        self.assertEqual((loaded.records, loaded.journal), (0, 0))
        self.assertEqual([e.uid for e in loaded.index.entries], [metas[0].uid, metas[2].uid])


class OtherProcessTests(JournalTestCase):
    async def test_another_backend_sees_records_reading_only_them(self) -> None:
        mine = await self.inbox()
        metas = await mine.append([AppendRequest(message(n)) for n in range(3)])
        other_store = await self.make().open_store("alice")
        other = await other_store.get_mailbox("INBOX")
        self.assertEqual(await other.uids(), [m.uid for m in metas])
        full_reads = []
        real = mbox_folder.load_index

        def counting(path):
            full_reads.append(path)
            return real(path)

        self.patch(mbox_folder, "load_index", counting)
        await mine.store_flags([metas[1].uid], "add", {"\\Flagged"})
        [added] = await mine.append([AppendRequest(message(3), frozenset({"$New"}))])

        # Opening it again (as SELECT and STATUS do) reads no whole index either.
        other = await other_store.get_mailbox("INBOX")
        metas_there = await other.metadata(await other.uids())
        self.assertEqual([m.uid for m in metas_there], [m.uid for m in metas] + [added.uid])
        self.assertEqual([m.flags for m in metas_there],
                         [frozenset(), {"\\Flagged"}, frozenset(), {"$New"}])
        self.assertEqual((await other.status()).highestmodseq,
                         (await mine.status()).highestmodseq)
        self.assertEqual(full_reads, [])
        self.assertEqual(await (await other.open_message(added.uid)).read(), message(3))

    async def test_other_backend_follows_a_rewrite(self) -> None:
        mine = await self.inbox()
        metas = await mine.append([AppendRequest(message(n)) for n in range(3)])
        other = await self.inbox(self.make())
        await other.status()
        await mine.store_flags([metas[0].uid], "add", {"\\Deleted"})
        await mine.expunge()
        await mine.store_flags([metas[1].uid], "add", {"\\Seen"})
        self.assertEqual([m.flags for m in await other.metadata(await other.uids())],
                         [{"\\Seen"}, frozenset()])

    async def test_check_reports_and_repairs_a_torn_journal(self) -> None:
        inbox = await self.inbox()
        metas = await inbox.append([AppendRequest(message(n)) for n in range(2)])
        await inbox.store_flags([metas[0].uid], "add", {"\\Seen"})
        with open(self.index_path, "ab") as f:
            f.write(b"\n@0000ff")
        report = await self.backend.check(["alice"])
        [problem] = report.problems
        self.assertEqual(problem.kind, "journal-tail")
        self.assertIn("3 whole records", problem.description)
        report = await self.backend.check(["alice"], repair=True)
        self.assertEqual([p.kind for p in report.problems], ["journal-tail"])
        loaded = self.loaded()
        self.assertEqual((loaded.records, loaded.tail), (0, 0))
        self.assertEqual([e.flags for e in loaded.index.entries], [{"\\Seen"}, frozenset()])
        self.assertEqual((await self.backend.check(["alice"])).problems, [])


APPENDER = textwrap.dedent("""
    import sys
    from twisted.internet import defer, task
    from twisted_mailhub.backends.mbox import MboxBackend
    from twisted_mailhub.model import AppendRequest

    async def main(reactor):
        backend = MboxBackend(sys.argv[1])
        inbox = await (await backend.open_store("alice")).get_mailbox("INBOX")
        previous = None
        for n in range(100000):
            body = b"Subject: m%d\\n\\n" % n + b"x" * (n % 5000) + b"\\n"
            [meta] = await inbox.append([AppendRequest(body, frozenset({"$N%d" % n}))])
            print("A", meta.uid, n, flush=True)
            if previous is not None:
                await inbox.store_flags([previous], "add", {"\\\\Seen"})
                print("S", previous, flush=True)
            previous = meta.uid

    task.react(lambda reactor: defer.ensureDeferred(main(reactor)))
""")


class CrashTests(JournalTestCase):
    async def test_kill_during_appends_keeps_what_was_acknowledged(self) -> None:
        source = os.path.dirname(os.path.dirname(twisted_mailhub.__file__))
        env = dict(os.environ, PYTHONPATH=source + os.pathsep + os.environ.get("PYTHONPATH", ""))
        for stop_after in (7, 23, 41):
            appended: dict[int, int] = {}
            seen: set[int] = set()
            child = subprocess.Popen([sys.executable, "-c", APPENDER, self.root],
                                     stdout=subprocess.PIPE, env=env)
            try:
                while len(appended) < stop_after:
                    line = child.stdout.readline().split()
                    self.assertTrue(line, "the appending process ended")
                    if line[0] == b"A":
                        appended[int(line[1])] = int(line[2])
                    else:
                        seen.add(int(line[1]))
            finally:
                child.send_signal(signal.SIGKILL)
                child.wait()
                child.stdout.close()
            inbox = await self.inbox(self.make())
            metas = {m.uid: m for m in await inbox.metadata(await inbox.uids())}
            for uid, n in appended.items():
                self.assertIn(uid, metas)
                self.assertIn("$N%d" % n, metas[uid].flags)
                if uid in seen:
                    self.assertIn("\\Seen", metas[uid].flags)
                content = await (await inbox.open_message(uid)).read()
                self.assertTrue(content.startswith(b"Subject: m%d\n" % n))
            report = await self.make().check(["alice"])
            self.assertEqual([p.kind for p in report.problems
                              if p.kind not in ("journal-tail", "interrupted-append")], [])
