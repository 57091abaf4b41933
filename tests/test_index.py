"""
The in-process mailbox index (twisted_mailhub.index): it is shared, it is
never stale, and what it serves is byte for byte what the store would give.
"""

from __future__ import annotations

from datetime import datetime, timezone

from twisted.internet import reactor, task
from twisted.trial import unittest

from harness import IMAPServerTestCase, on_every_store
from stores import make_store, store_kinds

from twisted_mailhub import index
from twisted_mailhub.model import AppendRequest, MessageMeta, MessagesAdded

from tests_messages import simple_message

WHEN = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)


def multipart(i: int) -> bytes:
    return (
        b"From: =?utf-8?q?J=C3=B6rg?= <jorg@example.org>\r\n"
        b"To: alice@example.com, \"Bob B.\" <bob@example.com>\r\n"
        b"Subject: part %d\r\nMessage-ID: <%d@example.org>\r\n"
        b"Date: Wed, 1 May 2024 12:00:00 +0200\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=xx\r\n\r\n"
        b"--xx\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nhello %d\r\n"
        b"--xx\r\nContent-Type: application/octet-stream; name=a.bin\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\nAAECAw==\r\n--xx--\r\n" % (i, i, i)
    )


class IndexUnitTests(unittest.TestCase):
    """The index against a real store's mailbox, without a protocol."""

    kind = "memory"

    async def open_inbox(self):
        backend = await make_store(self.kind, self)
        if hasattr(backend, "close"):
            self.addCleanup(backend.close)
        store = await backend.open_store("alice")
        return backend, store, await store.get_mailbox("INBOX")

    async def test_shared_and_released(self) -> None:
        _, store, inbox = await self.open_inbox()
        a, close_a = index.wrap(inbox)
        b, close_b = index.wrap(await store.get_mailbox("INBOX"))
        self.assertIs(a.index, b.index)
        close_a()
        close_a()  # idempotent
        self.assertEqual(a.index.users, 1)
        close_b()
        self.assertEqual(a.index.users, 0)
        # Kept warm: the next session of the mailbox gets the same index.
        c, close_c = index.wrap(inbox)
        self.assertIs(c.index, a.index)
        close_c()

    async def test_events_keep_it_current(self) -> None:
        _, store, inbox = await self.open_inbox()
        metas = await inbox.append([AppendRequest(simple_message(f"m{i}"), internaldate=WHEN)
                                    for i in range(5)])
        uids = [m.uid for m in metas]
        view, close = index.wrap(inbox)
        self.addCleanup(close)
        await view.index.load_all()
        self.assertTrue(view.index.complete)
        # Another session of the same store writes through its own object.
        other = await store.get_mailbox("INBOX")
        await other.store_flags([uids[1]], "add", {"\\Flagged"})
        await other.store_flags([uids[3]], "add", {"\\Deleted"})
        await other.expunge([uids[3]])
        added = await other.append([AppendRequest(simple_message("new"), internaldate=WHEN)])
        got = await view.metadata(uids + [added[0].uid])
        self.assertEqual(got, await other.metadata(uids + [added[0].uid]))
        self.assertEqual(await view.uids(), await other.uids())
        self.assertTrue(view.index.matches(await other.status()))

    async def test_a_late_event_cannot_bring_back_an_expunged_message(self) -> None:
        _, _, inbox = await self.open_inbox()
        metas = await inbox.append([AppendRequest(simple_message("x"), internaldate=WHEN)])
        view, close = index.wrap(inbox)
        self.addCleanup(close)
        await view.index.load_all()
        stale = metas[0]
        await inbox.store_flags([stale.uid], "add", {"\\Deleted"})
        await inbox.expunge([stale.uid])
        # An event (or a load) that read the message before its expunge:
        view.index.mailbox_event(MessagesAdded((stale,)))
        self.assertEqual(await view.metadata([stale.uid]), [])
        self.assertEqual(await view.uids(), [])

    async def test_an_older_load_does_not_overwrite_a_newer_event(self) -> None:
        _, _, inbox = await self.open_inbox()
        (meta,) = await inbox.append([AppendRequest(simple_message("x"), internaldate=WHEN)])
        view, close = index.wrap(inbox)
        self.addCleanup(close)
        update = await inbox.store_flags([meta.uid], "add", {"\\Seen"})
        newer = update.changed[0]
        view.index.mailbox_event(MessagesAdded((newer,)))
        older = MessageMeta(meta.uid, frozenset(), meta.internaldate, meta.size, meta.modseq)
        view.index._merge(older)
        self.assertEqual(await view.metadata([meta.uid]), [newer])

    async def test_a_disagreeing_index_is_dropped_at_validation(self) -> None:
        _, _, inbox = await self.open_inbox()
        await inbox.append([AppendRequest(simple_message("x"), internaldate=WHEN)])
        view, close = index.wrap(inbox)
        self.addCleanup(close)
        await view.index.load_all()
        # A change this process was never told of (another writer, no event):
        view.index._metas.clear()
        await view.validate()
        self.assertFalse(view.index.complete)
        self.assertEqual(len(await view.metadata(await view.uids())), 1)

    async def test_a_current_index_survives_the_next_select(self) -> None:
        _, store, inbox = await self.open_inbox()
        metas = await inbox.append([AppendRequest(simple_message(f"m{i}"), internaldate=WHEN)
                                    for i in range(3)])
        view, close = index.wrap(inbox)
        await view.validate()
        await view.index.load_all()
        await inbox.store_flags([metas[0].uid], "add", {"\\Seen"})
        await inbox.store_flags([metas[1].uid], "add", {"\\Deleted"})
        await inbox.expunge()
        await inbox.claim_recent(True)
        close()
        again, close = index.wrap(await store.get_mailbox("INBOX"))
        self.addCleanup(close)
        await again.validate()
        self.assertIs(again.index, view.index)
        self.assertTrue(again.index.complete)

    async def test_memoised_values_stay_within_the_budget(self) -> None:
        _, _, inbox = await self.open_inbox()
        metas = await inbox.append([AppendRequest(simple_message(f"m{i}"), internaldate=WHEN)
                                    for i in range(10)])
        view, close = index.wrap(inbox)
        await view.index.load_all()
        self.patch(index, "MEMO_BUDGET", 350)
        before = index._MemoUse.used
        for meta in metas:
            view.index.remember(meta.uid, "ENVELOPE", b"x" * 100)
        # The first three fit; later ones are not kept (none evicted).
        kept = [m.uid for m in metas if view.index.memo(m.uid, "ENVELOPE") is not None]
        self.assertEqual(kept, [m.uid for m in metas[:3]])
        self.assertEqual(index._MemoUse.used - before, 300)
        # An unused index keeps its metadata, not its memoised values.
        close()
        self.assertEqual(index._MemoUse.used, before)
        self.assertIsNone(view.index.memo(metas[0].uid, "ENVELOPE"))
        self.assertEqual(len(await view.index.metadata([m.uid for m in metas])), 10)

    async def test_flag_sets_are_shared(self) -> None:
        _, _, inbox = await self.open_inbox()
        await inbox.append([AppendRequest(simple_message(f"m{i}"), frozenset({"\\Seen"}),
                                          WHEN) for i in range(3)])
        view, close = index.wrap(inbox)
        self.addCleanup(close)
        await view.index.load_all()
        first, *rest = await view.metadata(await view.uids())
        for meta in rest:
            self.assertIs(meta.flags, first.flags)

    async def test_uids_by_flag_set_follow_every_change(self) -> None:
        _, store, inbox = await self.open_inbox()
        metas = await inbox.append([AppendRequest(simple_message(f"m{i}"), internaldate=WHEN)
                                    for i in range(6)])
        uids = [m.uid for m in metas]
        view, close = index.wrap(inbox)
        self.addCleanup(close)
        await view.index.load_all()
        other = await store.get_mailbox("INBOX")
        await other.store_flags(uids[:3], "add", {"\\Seen"})
        await other.store_flags([uids[1]], "add", {"\\Deleted"})
        await other.expunge([uids[1]])
        await other.store_flags([uids[4]], "set", {"\\Seen"})
        await other.append([AppendRequest(simple_message("new"), frozenset({"\\Seen"}), WHEN)])

        def grouped() -> dict[frozenset[str], set[int]]:
            return {flags: set(view.index.with_flags(flags))
                    for flags in view.index.flag_sets() if view.index.with_flags(flags)}

        expected: dict[frozenset[str], set[int]] = {}
        for meta in await other.metadata(await other.uids()):
            expected.setdefault(meta.flags, set()).add(meta.uid)
        self.assertEqual(grouped(), expected)
        view.index.reset()
        self.assertEqual(grouped(), {})
        await view.index.load_all()
        self.assertEqual(grouped(), expected)


class SQLiteIndexUnitTests(IndexUnitTests):
    kind = "sqlite"


class MboxIndexUnitTests(IndexUnitTests):
    kind = "mbox"


@on_every_store
class IndexOverIMAPTests(IMAPServerTestCase):
    """What clients see when the index serves their FETCHes."""

    async def test_memoised_fetch_is_byte_for_byte_the_same(self) -> None:
        store = await self.backend.open_store("alice")
        inbox = await store.get_mailbox("INBOX")
        await inbox.append([AppendRequest(multipart(i), internaldate=WHEN) for i in range(3)])
        items = (b"(UID FLAGS ENVELOPE BODYSTRUCTURE BODY.PEEK[HEADER] "
                 b"BODY.PEEK[HEADER.FIELDS (SUBJECT FROM)] RFC822.HEADER BODY)")

        def run():
            c = self.raw()
            c.line()
            c.command(b"a1 LOGIN alice wonderland")
            c.command(b"a2 SELECT INBOX")
            first = c.command(b"a3 FETCH 1:* " + items)
            second = c.command(b"a4 FETCH 1:* " + items)
            c.command(b"a5 LOGOUT")
            c.close()
            return first, second

        first, second = await self.in_thread(run)
        self.assertEqual(first[:-1], second[:-1])
        joined = b"".join(first)
        self.assertIn(b"BODYSTRUCTURE ((\"TEXT\" \"PLAIN\"", joined)
        self.assertIn(b"Subject: part 2\r\n", joined)
        self.assertEqual(joined.count(b" FETCH ("), 3)

    async def test_searches_from_a_complete_index_equal_the_store_s(self) -> None:
        store = await self.backend.open_store("alice")
        inbox = await store.get_mailbox("INBOX")
        flag_sets = [frozenset(), frozenset({"\\Seen"}), frozenset({"\\Seen", "\\Flagged"}),
                     frozenset({"\\Deleted"}), frozenset({"$Junk", "\\Seen"})]
        await inbox.append([AppendRequest(simple_message(f"m{i}"), flag_sets[i % 5], WHEN)
                            for i in range(100)])
        keys = [b"UNSEEN", b"FLAGGED", b"NOT DELETED", b"KEYWORD $junk", b"UNKEYWORD $Junk",
                b"OR FLAGGED DELETED", b"SEEN UID 30:60", b"UNSEEN 10:20,90:*", b"NOT SEEN",
                b"DRAFT", b"KEYWORD $Nowhere"]

        def searches(c, prefix):
            return [c.command(b"%s%d SEARCH %s" % (prefix, i, key))[0]
                    for i, key in enumerate(keys)]

        def run():
            a = self.raw()
            a.line()
            a.command(b"a1 LOGIN alice wonderland")
            a.command(b"a2 SELECT INBOX")
            # A gap in the UIDs: sequence numbers no longer follow UIDs.
            a.command(b"a3 UID STORE 5:8 +FLAGS.SILENT (\\Deleted)")
            a.command(b"a4 UID EXPUNGE 5:8")
            cold = searches(a, b"c")
            a.command(b"a5 FETCH 1:* (FLAGS)")  # most of the mailbox: the index loads it all
            b = self.imaplib_client()
            b.select("INBOX")
            b.store("1:10", "+FLAGS", "(\\Flagged)")
            b.logout()
            a.command(b"a6 NOOP")
            warm = searches(a, b"w")
            a.command(b"a7 LOGOUT")
            a.close()
            return cold, warm

        cold, warm = await self.in_thread(run)
        view = [uid for uid in range(1, 101) if not 5 <= uid <= 8]
        unseen = [seq for seq, uid in enumerate(view, 1) if (uid - 1) % 5 in (0, 3)]
        self.assertEqual(cold[0], b"* SEARCH %s\r\n" % b" ".join(b"%d" % n for n in unseen))
        flagged = {b"%d" % n for n in range(1, 11)}
        for key, before, after in zip(keys, cold, warm):
            if key == b"FLAGGED":
                self.assertEqual(set(after.split()[2:]), flagged | set(before.split()[2:]))
            elif key == b"OR FLAGGED DELETED":
                self.assertEqual(set(after.split()[2:]), flagged | set(before.split()[2:]))
            else:
                self.assertEqual(after, before, key)

    async def test_first_unseen_at_select_from_a_complete_index(self) -> None:
        store = await self.backend.open_store("alice")
        inbox = await store.get_mailbox("INBOX")
        await inbox.append([
            AppendRequest(simple_message(f"m{i}"), frozenset({"\\Seen"}) if i < 40 else frozenset(),
                          WHEN) for i in range(70)])

        def run():
            a = self.imaplib_client()
            a.select("INBOX")
            a.fetch("1:*", "(FLAGS)")  # most of the mailbox: the index loads it all
            a.store("41:50", "+FLAGS", "(\\Seen)")
            a.logout()
            b = self.imaplib_client()
            b.select("INBOX")
            second = b.response("UNSEEN")[1]
            b.store("1:70", "+FLAGS", "(\\Seen)")
            b.select("INBOX")
            third = b.response("UNSEEN")[1]
            b.logout()
            return second, third

        second, third = await self.in_thread(run)
        self.assertEqual(second, [b"51"])
        self.assertEqual(third, [None])

    async def test_other_sessions_changes_reach_a_warm_index(self) -> None:
        store = await self.backend.open_store("alice")
        inbox = await store.get_mailbox("INBOX")
        await inbox.append([AppendRequest(simple_message(f"m{i}"), internaldate=WHEN)
                            for i in range(4)])

        def run():
            a, b = self.imaplib_client(), self.imaplib_client()
            a.select("INBOX")
            b.select("INBOX")
            warm = a.fetch("1:*", "(UID FLAGS ENVELOPE)")[1]
            b.store("2", "+FLAGS", "(\\Flagged $Work)")
            b.store("3", "+FLAGS", "(\\Deleted)")
            b.expunge()
            b.append("INBOX", "(\\Seen)", None, simple_message("late"))
            a.noop()
            after = a.fetch("1:*", "(UID FLAGS)")[1]
            truth = b.fetch("1:*", "(UID FLAGS)")[1]
            a.logout()
            b.logout()
            return warm, after, truth

        warm, after, truth = await self.in_thread(run)
        self.assertEqual(len(warm), 4)

        def without_recent(lines):
            # \\Recent is each session's own (RFC 3501 2.3.2).
            # Unsolicited FETCHes (no UID) may come along; compare the answers.
            return [line.replace(b" \\Recent", b"").replace(b"\\Recent ", b"")
                    .replace(b"\\Recent", b"") for line in lines if b"UID" in line]

        self.assertEqual(without_recent(after), without_recent(truth))
        after = without_recent(after)
        self.assertEqual(len(after), 4)
        self.assertIn(b"\\Flagged", after[1])
        self.assertIn(b"$Work", after[1])
        self.assertIn(b"\\Seen", after[3])


def twin(backend):
    """A second backend object on the same stored data (another process's view)."""
    from twisted_mailhub.backends.maildir import MaildirBackend
    from twisted_mailhub.backends.mbox import MboxBackend
    from twisted_mailhub.backends.sql import open_backend

    if isinstance(backend, MboxBackend):
        return MboxBackend(backend.root)
    if isinstance(backend, MaildirBackend):
        return MaildirBackend(backend.root)
    return open_backend(backend.url.render_as_string(hide_password=False))


class _ChangedBehindTheServersBack:
    """
    A write this process hears nothing of (another process on the same
    store, a restart): a later SELECT checks the kept index against the
    store and serves the truth.
    """

    async def test_a_warm_index_is_checked_at_select(self) -> None:
        store = await self.backend.open_store("alice")
        inbox = await store.get_mailbox("INBOX")
        await inbox.append([AppendRequest(simple_message(f"m{i}"), internaldate=WHEN)
                            for i in range(3)])

        def fetch_flags():
            c = self.imaplib_client()
            c.select("INBOX")
            flags = c.fetch("1:*", "(FLAGS)")[1]
            c.logout()
            return flags

        self.assertEqual(len(await self.in_thread(fetch_flags)), 3)
        other = twin(self.backend)
        try:
            box = await (await other.open_store("alice")).get_mailbox("INBOX")
            uids = await box.uids()
            await box.store_flags(uids[:1], "add", {"\\Flagged"})
            await box.store_flags(uids[1:2], "add", {"\\Deleted"})
            await box.expunge(uids[1:2])
        finally:
            await other.close()
        after = await self.in_thread(fetch_flags)
        self.assertEqual(len(after), 2)
        self.assertIn(b"\\Flagged", after[0])


for _kind in store_kinds():
    _name = f"ChangedBehindTheServersBack_{_kind}"
    globals()[_name] = type(_name, (_ChangedBehindTheServersBack, IMAPServerTestCase),
                            {"store": _kind})


class SummariesKeptByTheStore(IMAPServerTestCase):
    """
    What a FETCH rendered (ENVELOPE, BODYSTRUCTURE) is kept by an SQL store,
    so another process, or this one after a restart, serves it without
    reading a message.
    """

    store = "sqlite"

    async def test_rendered_items_outlive_the_process(self) -> None:
        from sqlalchemy import event, func, select

        from twisted_mailhub.backends.sql.schema import summaries
        from twisted_mailhub.imap import commands as C
        from twisted_mailhub.imap import fetch as F

        store = await self.backend.open_store("alice")
        inbox = await store.get_mailbox("INBOX")
        await inbox.append([AppendRequest(multipart(i), internaldate=WHEN) for i in range(4)])

        def run():
            c = self.raw()
            c.line()
            c.command(b"a1 LOGIN alice wonderland")
            c.command(b"a2 SELECT INBOX")
            lines = c.command(b"a3 UID FETCH 1:* (ENVELOPE BODYSTRUCTURE)")
            c.command(b"a4 LOGOUT")
            c.close()
            return lines

        lines = await self.in_thread(run)
        self.assertEqual(len(lines), 5)

        async def kept() -> int:
            return await self.backend.db.read(lambda conn: conn.execute(
                select(func.count()).select_from(summaries)).scalar_one())

        # Kept after the answer, by a write the client does not wait for.
        for _ in range(200):
            if await kept() == 8:
                break
            await task.deferLater(reactor, 0.01, lambda: None)
        self.assertEqual(await kept(), 8)

        other = twin(self.backend)
        self.addCleanup(other.close)
        box = await (await other.open_store("alice")).get_mailbox("INBOX")
        view, close = index.wrap(box)
        self.addCleanup(close)
        await view.validate()
        uids = await view.uids()
        metas = await view.metadata(uids)
        read: list[str] = []
        event.listen(other.db.engine, "before_cursor_execute",
                     lambda conn, cursor, statement, *args: read.append(statement))
        await view.index.recall(uids, ["BODYSTRUCTURE", "ENVELOPE"])
        attrs = [C.FetchAttr("ENVELOPE"), C.FetchAttr("BODYSTRUCTURE")]
        again = [F.render_memoised(n, meta, attrs, view.index, uid=True, recent=False,
                                   modseq=False)
                 for n, meta in enumerate(metas, 1)]
        self.assertEqual(again, lines[:-1])
        self.assertFalse([s for s in read if "chunks" in s or "contents" in s])
