"""The mbox backend: the conformance suite plus interoperability with other mail programs."""

from __future__ import annotations

import mailbox
import os
import subprocess
import sys
import textwrap

from twisted.internet import defer
from twisted.trial import unittest

from twisted_mailhub.backends import files
from twisted_mailhub.backends.mbox import MboxBackend
from twisted_mailhub.backends.mbox.format import quote, scan, unquote
from twisted_mailhub.errors import InvalidMailboxName, PermissionDenied, StoreUnavailable
from twisted_mailhub.interfaces import IContentAccess
from twisted_mailhub.model import (
    AppendRequest,
    FlagsChanged,
    MailboxRemoved,
    MessagesAdded,
    MessagesExpunged,
)
from twisted_mailhub.testing import BackendConformanceMixin, RecordingListener

CLASSIC = (
    b"From alice@example.org Mon Jan  6 10:00:00 2020\n"
    b"From: Alice <alice@example.org>\n"
    b"Subject: first\n"
    b"Status: RO\n"
    b"\n"
    b"Hello,\n"
    b">From the start it was quoted.\n"
    b">>From twice.\n"
    b"\n"
    b"From bob@example.org Tue Jan  7 11:30:00 2020\n"
    b"From: Bob <bob@example.org>\n"
    b"Subject: second\n"
    b"X-Status: F\n"
    b"\n"
    b"Second body.\n"
)


def read_file(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def write_file(path: str, data: bytes, mode: str = "wb") -> None:
    with open(path, mode) as f:
        f.write(data)


def message(n: int, body: bytes = b"") -> bytes:
    return (
        b"From: sender%d@example.org\nTo: rcpt@example.org\nSubject: message %d\n\n"
        b"Body of message %d.\n" % (n, n, n)
    ) + body


class MboxConformanceTests(BackendConformanceMixin, unittest.TestCase):
    persistent = True

    async def make_backend(self) -> MboxBackend:
        return MboxBackend(self.mktemp())

    async def restart_backend(self, backend: MboxBackend) -> MboxBackend:
        await backend.close()
        return MboxBackend(backend.root)


class MboxTestCase(unittest.TestCase):
    """A fresh backend per test, closed at the end."""

    def setUp(self) -> None:
        self.root = os.path.abspath(self.mktemp())
        self.backend = self.make()

    def make(self, **options) -> MboxBackend:
        backend = MboxBackend(self.root, **options)
        self.addCleanup(lambda: defer.ensureDeferred(backend.close()))
        return backend

    def path(self, *parts: str) -> str:
        return os.path.join(self.root, "alice", *parts)

    async def inbox(self, backend: MboxBackend | None = None):
        store = await (backend or self.backend).open_store("alice")
        return store, await store.get_mailbox("INBOX")

    async def names(self, store) -> list[str]:
        return [info.name for info in await store.list_mailboxes()]

    async def contents(self, box) -> list[bytes]:
        return [await (await box.open_message(uid)).read() for uid in await box.uids()]


class ReadingTests(MboxTestCase):
    async def test_classic_mbox_written_by_hand(self) -> None:
        os.makedirs(self.path())
        write_file(self.path("INBOX"), CLASSIC, "wb")
        _, inbox = await self.inbox()
        first, second = await inbox.metadata(await inbox.uids())
        self.assertEqual((first.uid, second.uid), (1, 2))
        self.assertEqual(first.flags, {"\\Seen"})
        self.assertEqual(second.flags, {"\\Flagged"})
        self.assertEqual(first.internaldate.timetuple()[:6], (2020, 1, 6, 10, 0, 0))
        content = await (await inbox.open_message(1)).read()
        self.assertEqual(
            content,
            b"From: Alice <alice@example.org>\nSubject: first\n\n"
            b"Hello,\nFrom the start it was quoted.\n>From twice.\n",
        )
        self.assertEqual(first.size, len(content))
        self.assertEqual(
            await (await inbox.open_message(2)).read(),
            b"From: Bob <bob@example.org>\nSubject: second\n\nSecond body.\n",
        )

    async def test_mboxrd_quoting_is_reversible(self) -> None:
        text = b"From a\n>From b\n>>From c\nFromage\n From d\n"
        self.assertEqual(quote(text), b">From a\n>>From b\n>>>From c\nFromage\n From d\n")
        self.assertEqual(unquote(quote(text)), text)

    async def test_header_read_alone_is_the_served_header(self) -> None:
        """
        The header given without reading the whole message (what FETCH
        BODY[HEADER] is cut from) is that of the served message: unquoted,
        without the status fields, however long.
        """
        from twisted_mailhub.mime.parse import parse_message

        received = b"".join(b"Received: from relay%d.example.org\n" % i for i in range(600))
        os.makedirs(self.path())
        write_file(self.path("INBOX"), CLASSIC + (
            b"\nFrom carol@example.org Wed Jan  8 09:00:00 2020\n"
            + received + b"Subject: long\nStatus: RO\nX-Status: A\nX-Keywords: work\n\n"
            b">From the body\n" * 2000
            + b"\nFrom dan@example.org Thu Jan  9 09:00:00 2020\n"
            b"Subject: only a header\nStatus: O\n"
        ), "wb")
        store, inbox = await self.inbox()
        uids = await inbox.uids()
        self.assertEqual(uids, [1, 2, 3, 4])
        found = await inbox.summaries(uids, ["header"])
        for uid in uids:
            content = await (await inbox.open_message(uid)).read()
            self.assertEqual(found[uid]["header"],
                             content[: parse_message(content).root.body_start], uid)
        self.assertNotIn(b"Status", found[3]["header"])
        self.assertTrue(found[3]["header"].startswith(received))

    def test_entries_are_found_by_uid_in_any_order(self) -> None:
        from datetime import datetime, timezone

        from twisted_mailhub.backends.mbox.index import Entry, Index

        def entry(uid: int) -> Entry:
            return Entry(uid, frozenset(), 1, datetime.now(timezone.utc), 0, 0, 0, "", 0, 0, "")

        index = Index(uidvalidity=1, entries=[entry(u) for u in (2, 5, 9)])
        self.assertEqual([index.entry(u).uid for u in (2, 5, 9)], [2, 5, 9])
        self.assertEqual([index.entry(u) for u in (1, 3, 10)], [None, None, None])
        index.entries.reverse()
        self.assertEqual([index.entry(u).uid for u in (2, 5, 9)], [2, 5, 9])

    def test_scan_keeps_content_of_message_without_final_separator(self) -> None:
        data = b"From a Mon Jan  6 10:00:00 2020\nX: 1\n\nbody\n"
        [found] = scan(data)
        self.assertEqual(data[found.body_start:found.body_end], b"X: 1\n\nbody\n")


class ContentAccessTests(MboxTestCase):
    """L{IContentAccess.contents}: what L{IMailbox.open_message} serves, in one call."""

    async def test_contents_are_the_served_bytes(self) -> None:
        os.makedirs(self.path())
        write_file(self.path("INBOX"), CLASSIC, "wb")
        _, inbox = await self.inbox()
        self.assertTrue(IContentAccess.providedBy(inbox))
        await inbox.append([AppendRequest(message(3, b"From here on.\n")),
                            AppendRequest(b"Subject: x\nStatus: RO\nX-UID: 9\n\nbody\n")])
        uids = await inbox.uids()
        served = {uid: await (await inbox.open_message(uid)).read() for uid in uids}
        found = await inbox.contents(uids + [99], 1 << 20)
        self.assertEqual(found, served)
        self.assertEqual(found[1], b"From: Alice <alice@example.org>\nSubject: first\n\n"
                                   b"Hello,\nFrom the start it was quoted.\n>From twice.\n")
        self.assertEqual(found[4], b"Subject: x\n\nbody\n")

    async def test_expunged_and_larger_messages_are_left_out(self) -> None:
        _, inbox = await self.inbox()
        metas = await inbox.append([AppendRequest(message(n), frozenset({"\\Deleted"})
                                                  if n == 1 else frozenset())
                                    for n in range(3)])
        await inbox.expunge()
        first, _, last = metas
        self.assertEqual(await inbox.contents([last.uid, first.uid, metas[1].uid], last.size),
                         {first.uid: message(0), last.uid: message(2)})
        self.assertEqual(await inbox.contents([first.uid, last.uid], last.size - 1), {})
        self.assertEqual(await inbox.contents([], 1 << 20), {})

    async def test_message_changed_behind_the_index(self) -> None:
        _, inbox = await self.inbox()
        metas = await inbox.append([AppendRequest(message(n)) for n in range(3)])
        path = self.path("INBOX")
        stat = os.stat(path)
        # Same size, same times: only the content tells.
        write_file(path, read_file(path).replace(b"Body of message 1.", b"Body of message X."))
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        found = await inbox.contents([meta.uid for meta in metas], 1 << 20)
        self.assertEqual(found[metas[0].uid], message(0))
        self.assertEqual(found[metas[2].uid], message(2))
        self.assertNotIn(b"Body of message 1.", b"".join(found.values()))
        if metas[1].uid in found:
            self.assertIn(b"Body of message X.", found[metas[1].uid])
        uids = await inbox.uids()
        for uid, content in found.items():
            self.assertIn(uid, uids)
            self.assertEqual(content, await (await inbox.open_message(uid)).read())


class WritingTests(MboxTestCase):
    async def test_appended_messages_read_back_by_python_mailbox(self) -> None:
        _, inbox = await self.inbox()
        plain = message(1)
        quoted = message(2, b"From here on the line is quoted.\n")
        crlf = message(3).replace(b"\n", b"\r\n")
        await inbox.append([AppendRequest(plain), AppendRequest(quoted),
                            AppendRequest(crlf, frozenset({"\\Seen", "\\Answered"}))])
        box = mailbox.mbox(self.path("INBOX"), create=False)
        try:
            got = [box.get_bytes(key) for key in box.iterkeys()]
            flags = box[box.keys()[2]].get_flags()
        finally:
            box.close()
        self.assertEqual(got[0], plain)
        # Python reads the mboxrd quoting as it is written.
        self.assertEqual(got[1], quoted.replace(b"\nFrom here", b"\n>From here"))
        # Flags are in the status fields other programs read; the content
        # follows them unchanged.
        self.assertEqual(got[2], b"Status: RO\r\nX-Status: A\r\n" + crlf)
        self.assertEqual(set(flags), set("ROA"))
        self.assertEqual(await self.contents(inbox), [plain, quoted, crlf])

    async def test_served_bytes_never_include_internal_fields(self) -> None:
        _, inbox = await self.inbox()
        content = b"Subject: x\nX-UID: 77\nStatus: RO\nX-Keywords: junk\n\nbody\n"
        [meta] = await inbox.append([AppendRequest(content, frozenset({"$Later"}))])
        served = await (await inbox.open_message(meta.uid)).read()
        self.assertEqual(served, b"Subject: x\n\nbody\n")
        self.assertEqual(meta.size, len(served))
        self.assertEqual(meta.flags, {"$Later"})

    async def test_message_without_final_newline_is_served_unchanged(self) -> None:
        _, inbox = await self.inbox()
        await inbox.append([AppendRequest(b"Subject: a\n\nno newline"),
                            AppendRequest(b"Subject: b\n\nnext\n")])
        backend = self.make()
        _, inbox = await self.inbox(backend)
        self.assertEqual(await self.contents(inbox),
                         [b"Subject: a\n\nno newline", b"Subject: b\n\nnext\n"])

    async def test_expunge_writes_flags_for_other_programs(self) -> None:
        _, inbox = await self.inbox()
        metas = await inbox.append([AppendRequest(message(n)) for n in range(3)])
        await inbox.store_flags([metas[0].uid], "add", {"\\Deleted"})
        await inbox.store_flags([metas[1].uid], "add", {"\\Seen", "\\Flagged"})
        self.assertEqual(await inbox.expunge(), [metas[0].uid])
        box = mailbox.mbox(self.path("INBOX"), create=False)
        try:
            self.assertEqual([set(m.get_flags()) for m in box], [set("ROF"), set()])
        finally:
            box.close()
        self.assertEqual(await self.contents(inbox), [message(1), message(2)])

    async def test_failure_after_temporary_file_leaves_mailbox_intact(self) -> None:
        _, inbox = await self.inbox()
        metas = await inbox.append([AppendRequest(message(n)) for n in range(3)])
        await inbox.store_flags([metas[1].uid], "add", {"\\Deleted"})
        before = read_file(self.path("INBOX"))

        written = []

        def fail(source: str, target: str) -> None:
            with open(source, "rb") as f:
                written.append(f.read())
            raise OSError("disk on fire")

        self.patch(files, "_rename", fail)
        with self.assertRaises(OSError):
            await inbox.expunge()
        self.assertEqual(len(written), 1)
        self.assertNotEqual(written[0], before)
        self.assertEqual(read_file(self.path("INBOX")), before)
        self.assertEqual([n for n in os.listdir(self.path()) if n.endswith(".tmp")], [])
        self.assertEqual(await inbox.uids(), [m.uid for m in metas])

        self.patch(files, "_rename", os.replace)
        self.assertEqual(await inbox.expunge(), [metas[1].uid])
        self.assertEqual(await self.contents(inbox), [message(0), message(2)])

    async def test_interrupted_append_is_cut_off(self) -> None:
        _, inbox = await self.inbox()
        [kept] = await inbox.append([AppendRequest(message(0))])
        good = read_file(self.path("INBOX"))
        # What a crash in the middle of a write leaves: the index says an
        # append was under way, the file has half of it.
        from twisted_mailhub.backends.mbox.index import read_index, write_index

        index = read_index(self.path("INBOX.mailhub"))
        index.pending = (len(good), len(good) + 500)
        write_index(self.path("INBOX.mailhub"), index)
        write_file(self.path("INBOX"), b"From x Mon Jan  6 10:00:00 2020\nSubject: half", "ab")
        _, inbox = await self.inbox(self.make())
        self.assertEqual(await inbox.metadata(await inbox.uids()), [kept])
        self.assertEqual(read_file(self.path("INBOX")), good)


class OtherProgramTests(MboxTestCase):
    async def test_external_append_is_announced(self) -> None:
        _, inbox = await self.inbox()
        [first] = await inbox.append([AppendRequest(message(0))])
        listener = RecordingListener()
        inbox.subscribe(listener)
        self.addCleanup(inbox.unsubscribe, listener)

        # Python's mailbox module takes the dotlock and an fcntl lock too.
        box = mailbox.mbox(self.path("INBOX"), create=False)
        box.lock()
        try:
            box.add(mailbox.mboxMessage(message(1)))
            box.flush()
        finally:
            box.unlock()
            box.close()

        status = await inbox.status()
        self.assertEqual(status.messages, 2)
        [event] = listener.events
        self.assertIsInstance(event, MessagesAdded)
        [added] = event.messages
        self.assertEqual(added.uid, first.uid + 1)
        self.assertEqual(await (await inbox.open_message(added.uid)).read(), message(1))

    async def test_rewrite_by_another_program_is_reconciled(self) -> None:
        _, inbox = await self.inbox()
        metas = await inbox.append([AppendRequest(message(n)) for n in range(3)])
        listener = RecordingListener()
        inbox.subscribe(listener)
        self.addCleanup(inbox.unsubscribe, listener)

        # As a mail reader does: drop the first message, mark the last read.
        box = mailbox.mbox(self.path("INBOX"), create=False)
        box.lock()
        try:
            keys = box.keys()
            last = box[keys[2]]
            last.set_flags("RO")
            box[keys[2]] = last
            box.remove(keys[0])
            box.flush()
        finally:
            box.unlock()
            box.close()

        self.assertEqual(await inbox.uids(), [metas[1].uid, metas[2].uid])
        expunged, changed = listener.events
        self.assertEqual(expunged, MessagesExpunged((metas[0].uid,), expunged.modseq))
        self.assertIsInstance(changed, FlagsChanged)
        self.assertEqual([(m.uid, m.flags) for m in changed.messages],
                         [(metas[2].uid, frozenset({"\\Seen"}))])
        self.assertEqual(await self.contents(inbox), [message(1), message(2)])
        _, expunged_uids = await inbox.changes_since(metas[2].modseq)
        self.assertEqual(expunged_uids, [metas[0].uid])

    async def test_moved_message_comes_back_with_a_new_uid(self) -> None:
        _, inbox = await self.inbox()
        metas = await inbox.append([AppendRequest(message(n)) for n in range(2)])
        before = inbox.uidvalidity
        data = read_file(self.path("INBOX"))
        _, second = scan(data)
        write_file(self.path("INBOX"), data[second.start:] + data[:second.start], "wb")
        # The first message can no longer have the smaller UID: it counts
        # as expunged and delivered again.
        self.assertEqual(await inbox.uids(), [metas[1].uid, metas[1].uid + 1])
        self.assertEqual(inbox.uidvalidity, before)
        self.assertEqual(await self.contents(inbox), [message(1), message(0)])

    async def test_message_inserted_before_others_starts_new_uidvalidity(self) -> None:
        _, inbox = await self.inbox()
        metas = await inbox.append([AppendRequest(message(n)) for n in range(2)])
        await inbox.store_flags([metas[1].uid], "add", {"$Kept"})
        before = inbox.uidvalidity
        listener = RecordingListener()
        inbox.subscribe(listener)
        self.addCleanup(inbox.unsubscribe, listener)
        data = read_file(self.path("INBOX"))
        inserted = b"From x Mon Jan  6 10:00:00 2020\nSubject: inserted\n\nnew\n\n"
        write_file(self.path("INBOX"), inserted + data)
        self.assertEqual(await inbox.uids(), [1, 2, 3])
        self.assertGreater(inbox.uidvalidity, before)
        self.assertEqual(listener.events, [MailboxRemoved()])
        self.assertEqual(await self.contents(inbox),
                         [b"Subject: inserted\n\nnew\n", message(0), message(1)])
        self.assertEqual([m.flags for m in await inbox.metadata([1, 2, 3])],
                         [frozenset(), frozenset(), {"$Kept"}])


HOLD_LOCK = textwrap.dedent("""
    import fcntl, os, sys
    path = sys.argv[1]
    fd = os.open(path + ".lock", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    os.close(fd)
    mbox = open(path, "ab")
    fcntl.lockf(mbox, fcntl.LOCK_EX)
    print("locked", flush=True)
    sys.stdin.readline()
    mbox.write(b"From other Mon Jan  6 10:00:00 2020\\nSubject: other\\n\\nhi\\n\\n")
    mbox.flush()
    os.unlink(path + ".lock")
    fcntl.lockf(mbox, fcntl.LOCK_UN)
    print("released", flush=True)
""")


class LockingTests(MboxTestCase):
    def hold_lock(self) -> subprocess.Popen:
        holder = subprocess.Popen(
            [sys.executable, "-c", HOLD_LOCK, self.path("INBOX")],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        )
        self.addCleanup(holder.wait)
        self.addCleanup(holder.stdin.close)
        self.assertEqual(holder.stdout.readline(), b"locked\n")
        return holder

    async def test_append_waits_for_another_program(self) -> None:
        waiting = defer.Deferred()
        backend = self.make(on_lock_wait=waiting.callback)
        _, inbox = await self.inbox(backend)
        holder = self.hold_lock()

        appending = defer.ensureDeferred(inbox.append([AppendRequest(message(0))]))
        self.assertEqual(await waiting, self.path("INBOX"))
        self.assertFalse(appending.called)
        holder.stdin.write(b"go\n")
        holder.stdin.flush()
        self.assertEqual(holder.stdout.readline(), b"released\n")

        [meta] = await appending
        # The other program's message came first and was noticed.
        self.assertEqual(meta.uid, 2)
        self.assertEqual(await self.contents(inbox),
                         [b"Subject: other\n\nhi\n", message(0)])
        self.assertFalse(os.path.exists(self.path("INBOX.lock")))

    async def test_wait_is_bounded(self) -> None:
        backend = self.make(lock_timeout=0.05)
        _, inbox = await self.inbox(backend)
        holder = self.hold_lock()
        await self.assertFailure(
            defer.ensureDeferred(inbox.append([AppendRequest(message(0))])), StoreUnavailable
        )
        holder.stdin.write(b"go\n")
        holder.stdin.flush()
        self.assertEqual(holder.stdout.readline(), b"released\n")
        self.assertEqual(len(await inbox.uids()), 1)

    async def test_stale_dotlock_is_removed(self) -> None:
        backend = self.make(stale_lock_after=60)
        _, inbox = await self.inbox(backend)
        write_file(self.path("INBOX.lock"), b"99999\n")
        os.utime(self.path("INBOX.lock"), (1, 1))
        await inbox.append([AppendRequest(message(0))])
        self.assertEqual(len(await inbox.uids()), 1)
        self.assertFalse(os.path.exists(self.path("INBOX.lock")))


HOSTILE_NAMES = ["../evil", "a/../../evil", "/etc/passwd", "a\\b", "..\\evil", "a\x00b",
                 ".", "..", "a/./b", "a//b", ""]


class NameTests(MboxTestCase):
    async def test_hostile_mailbox_names_refused(self) -> None:
        store = await self.backend.open_store("alice")
        for name in HOSTILE_NAMES:
            for attempt in (store.create_mailbox, store.get_mailbox,
                            lambda name: store.rename_mailbox("INBOX", name)):
                await self.assertFailure(defer.ensureDeferred(attempt(name)), InvalidMailboxName)
        self.assertEqual(sorted(os.listdir(self.root)), ["alice"])
        self.assertEqual(await self.names(store), ["INBOX"])

    async def test_looking_up_one_name_agrees_with_the_listing(self) -> None:
        store = await self.backend.open_store("alice")
        await store.create_mailbox("Work/Projects/2024")
        await store.create_mailbox("Work/Notes")
        await store.create_mailbox("Sent", frozenset({"\\Sent"}))
        await store.create_mailbox("foo.lock/bar")
        await store.delete_mailbox("Work")  # Work stays as a level only
        os.makedirs(self.path("Old.d", "2019.d"))
        write_file(self.path("Old.d", "2019.d", "March"), b"")
        write_file(self.path("inbox"), b"")  # INBOX in another case: not shown
        os.makedirs(self.path("inbox.d"))
        write_file(self.path("inbox.d", "child"), b"")
        write_file(self.path("a%41"), b"")  # not the canonical encoding of a name
        write_file(self.path(".hidden"), b"")
        os.symlink(self.path("Sent"), self.path("Linked"))
        os.symlink(self.path("Work.d"), self.path("Elsewhere.d"))
        write_file(self.path("Plain.d"), b"")  # a file, not a children directory
        listed = {info.name: info for info in store._list_sync()}
        candidates = set(listed) | {
            "Work/Projects/2024/x", "Work/Nothing", "Old/2019/April", "inbox", "Inbox",
            "inbox/child", "aA", "a%41", "hidden", ".hidden", "Linked", "Elsewhere",
            "Elsewhere/Projects", "Plain", "Plain/x", "foo.lock", "Nope", "Sent/x",
        }
        for name in sorted(candidates):
            self.assertEqual(store._info_sync(name), listed.get(name), name)
        self.assertIn("Work", listed)
        self.assertFalse(listed["Work"].selectable)
        self.assertEqual(listed["Sent"].special_use, {"\\Sent"})

    async def test_hostile_user_names_refused(self) -> None:
        for username in ["..", ".", "", "../bob", "a/b", "a\\b", "x\x00", "/etc"]:
            await self.assertFailure(defer.ensureDeferred(self.backend.open_store(username)),
                                     PermissionDenied)
        self.assertEqual(os.listdir(self.root), [])

    async def test_names_like_reserved_files_stay_apart(self) -> None:
        store = await self.backend.open_store("alice")
        names = ["foo", "foo.lock", "foo.d", "foo.mailhub", ".hidden", "a.b/c.d",
                 "Ünïcode"]
        for name in names:
            await store.create_mailbox(name)
        self.assertEqual(await self.names(store), sorted(["INBOX", "a.b"] + names))
        foo = await store.get_mailbox("foo")
        await foo.append([AppendRequest(message(0))])
        lock_box = await store.get_mailbox("foo.lock")
        self.assertEqual(await lock_box.uids(), [])
        on_disk = set(os.listdir(self.path()))
        self.assertIn("foo%2Elock", on_disk)
        self.assertIn("%2Ehidden", on_disk)
        self.assertNotIn("foo.lock", on_disk)

    async def test_mailbox_with_children_and_messages(self) -> None:
        store = await self.backend.open_store("alice")
        await store.create_mailbox("Work/Projects")
        work = await store.get_mailbox("Work")
        await work.append([AppendRequest(message(0))])
        self.assertTrue(os.path.isfile(self.path("Work")))
        self.assertTrue(os.path.isfile(self.path("Work.d", "Projects")))
        await store.delete_mailbox("Work")
        infos = {i.name: i.selectable for i in await store.list_mailboxes()}
        self.assertEqual(infos, {"INBOX": True, "Work": False, "Work/Projects": True})
        await store.rename_mailbox("Work", "Archive/2020")
        self.assertEqual(await self.names(store),
                         ["Archive", "Archive/2020", "Archive/2020/Projects", "INBOX"])
        self.assertTrue(os.path.isfile(self.path("Archive.d", "2020.d", "Projects")))

    async def test_rename_never_replaces_a_mailbox_another_process_made(self) -> None:
        # Two servers on one directory: the other one creates the target
        # between this one's check and its rename.  Nothing may be lost.
        from twisted_mailhub.backends.mbox import store as mbox_store
        from twisted_mailhub.errors import MailboxExists

        store = await self.backend.open_store("alice")
        await store.create_mailbox("Old")
        await (await store.get_mailbox("Old")).append([AppendRequest(message(1))])
        other = MboxBackend(self.backend.root)
        self.addCleanup(other.close)
        other_store = await other.open_store("alice")
        await other_store.create_mailbox("New")
        await (await other_store.get_mailbox("New")).append([AppendRequest(message(2))])
        real_lexists = os.path.lexists
        self.patch(mbox_store.os.path, "lexists",
                   lambda path: False if "New" in os.path.basename(path) else real_lexists(path))
        with self.assertRaises(MailboxExists):
            # The core step itself, past the tree's own existence check.
            store._rename_sync("Old", "New", ["Old"])
        self.patch(mbox_store.os.path, "lexists", real_lexists)
        self.assertEqual(len(await (await store.get_mailbox("Old")).uids()), 1)
        self.assertEqual(len(await (await other_store.get_mailbox("New")).uids()), 1)
