"""Messages: UIDs, APPEND, reading content and structure, EXPUNGE, COPY."""

from __future__ import annotations

from datetime import datetime, timezone

from twisted.internet.defer import ensureDeferred, gatherResults

from twisted_mailhub.backends.base import copy_messages
from twisted_mailhub.errors import MessageExpunged
from twisted_mailhub.interfaces import ICopyableMailbox
from twisted_mailhub.model import AppendRequest
from twisted_mailhub.testing.support import (
    DATE,
    ConformanceBase,
    added_uids,
    make_message,
    make_multipart_message,
)


class MessageConformance(ConformanceBase):
    """Tests of message UIDs, APPEND, reading, EXPUNGE and COPY."""

    async def test_append_assigns_ascending_uids(self) -> None:
        store, inbox, metas = await self.inbox_with(3)
        uids = [m.uid for m in metas]
        self.assertEqual(uids, sorted(set(uids)))
        self.assertEqual(await inbox.uids(), uids)
        more = await inbox.append([AppendRequest(make_message(7))])
        self.assertGreater(more[0].uid, uids[-1])
        status = await inbox.status()
        self.assertGreater(status.uidnext, more[0].uid)

    async def test_uids_not_reused_after_expunge(self) -> None:
        store, inbox, metas = await self.inbox_with(3)
        last = metas[-1].uid
        await inbox.store_flags([last], "add", {"\\Deleted"})
        self.assertEqual(await inbox.expunge(), [last])
        uidnext = (await inbox.status()).uidnext
        self.assertGreater(uidnext, last)
        [meta] = await inbox.append([AppendRequest(make_message(4))])
        self.assertGreater(meta.uid, last)
        self.assertGreaterEqual(meta.uid, uidnext)
        self.assertEqual(await inbox.uids(), [m.uid for m in metas[:-1]] + [meta.uid])

    # -- APPEND and reading --

    async def test_append_metas(self) -> None:
        store = await self.store()
        inbox = await store.get_mailbox("INBOX")
        before = datetime.now(timezone.utc).replace(microsecond=0)
        given, default = await inbox.append([
            AppendRequest(make_message(1), frozenset({"\\seen", "$Junk"}), DATE),
            AppendRequest(make_message(2)),
        ])
        after = datetime.now(timezone.utc)
        self.assertEqual(given.flags, frozenset({"\\Seen", "$Junk"}))
        self.assertEqual(given.internaldate, DATE)
        self.assertEqual(given.size, len(make_message(1)))
        self.assertEqual(default.flags, frozenset())
        self.assertIsNotNone(default.internaldate.tzinfo)
        self.assertTrue(before <= default.internaldate <= after, default.internaldate)
        self.assertEqual(await inbox.metadata([default.uid, given.uid]), [given, default])

    async def test_append_never_stores_recent(self) -> None:
        store = await self.store()
        inbox = await store.get_mailbox("INBOX")
        [meta] = await inbox.append([AppendRequest(make_message(), frozenset({"\\Recent"}))])
        self.assertEqual(meta.flags, frozenset())
        update = await inbox.store_flags([meta.uid], "add", {"\\Recent"})
        self.assertEqual(update.changed, [])
        self.assertEqual(await inbox.metadata([meta.uid]), [meta])

    async def test_status_counts(self) -> None:
        store, inbox, metas = await self.inbox_with(3)
        await inbox.store_flags([metas[0].uid], "add", {"\\Seen"})
        await inbox.store_flags([metas[1].uid], "add", {"\\Deleted"})
        status = await inbox.status()
        self.assertEqual(status.messages, 3)
        self.assertEqual(status.unseen, 2)
        self.assertEqual(status.uidvalidity, inbox.uidvalidity)
        self.assertGreater(status.uidnext, metas[-1].uid)
        current = await inbox.metadata(await inbox.uids())
        self.assertEqual(status.highestmodseq, max(m.modseq for m in current))
        self.assertEqual(status.recent, 3)
        self.assertEqual(status.size, sum(m.size for m in metas))
        self.assertEqual(status.deleted, 1)

    async def test_empty_mailbox_highestmodseq_positive(self) -> None:
        store = await self.store()
        status = await (await store.get_mailbox("INBOX")).status()
        self.assertGreaterEqual(status.highestmodseq, 1)

    async def test_multi_append_is_atomic(self) -> None:
        store = await self.store()
        one = await store.get_mailbox("INBOX")
        two = await store.get_mailbox("INBOX")
        batches = await gatherResults([
            ensureDeferred(mailbox.append([AppendRequest(make_message(10 * k + n))
                                           for n in range(3)]))
            for k, mailbox in enumerate((one, two, one))
        ])
        order = await one.uids()
        self.assertEqual(len(order), 9)
        for batch in batches:
            positions = [order.index(m.uid) for m in batch]
            self.assertEqual(positions, list(range(positions[0], positions[0] + 3)))

    async def test_metadata_and_missing_messages(self) -> None:
        store, inbox, metas = await self.inbox_with(2)
        missing = metas[-1].uid + 100
        self.assertEqual(await inbox.metadata([missing, metas[1].uid, metas[0].uid]), metas)
        await self.assert_raises(MessageExpunged, inbox.open_message(missing))

    async def test_read_ranges(self) -> None:
        store, inbox, [meta] = await self.inbox_with(1)
        content = make_message(0)
        message = await inbox.open_message(meta.uid)
        self.assertEqual(await message.read(), content)
        self.assertEqual(await message.read(5, 10), content[5:15])
        self.assertEqual(await message.read(len(content) - 3, 100), content[-3:])
        self.assertEqual(await message.read(len(content) + 10), b"")
        self.assertEqual(await message.read(7), content[7:])

    async def test_large_message(self) -> None:
        line = b"".join(bytes([65 + (i % 26)]) for i in range(76)) + b"\r\n"
        body = b"".join(b"%07d " % i + line for i in range(5 * 1024 * 1024 // len(line)))
        content = make_message(1, body)
        store = await self.store()
        inbox = await store.get_mailbox("INBOX")
        [meta] = await inbox.append([AppendRequest(content)])
        self.assertEqual(meta.size, len(content))
        message = await inbox.open_message(meta.uid)
        self.assertEqual(await message.read(), content)
        chunk = 1024 * 1024
        parts = [await message.read(offset, chunk) for offset in range(0, len(content), chunk)]
        self.assertEqual([len(p) for p in parts[:-1]], [chunk] * (len(parts) - 1))
        self.assertEqual(b"".join(parts), content)

    async def test_structure_is_parsed_content(self) -> None:
        from twisted_mailhub.mime.parse import parse_message

        store = await self.store()
        inbox = await store.get_mailbox("INBOX")
        contents = [make_multipart_message(), make_message(3)]
        metas = await inbox.append([AppendRequest(c) for c in contents])
        for meta, content in zip(metas, contents):
            message = await inbox.open_message(meta.uid)
            self.assertEqual(await message.structure(), parse_message(content))

    async def test_expunge_only_deleted(self) -> None:
        store, inbox, metas = await self.inbox_with(4)
        uids = [m.uid for m in metas]
        highest = (await inbox.status()).highestmodseq
        self.assertEqual(await inbox.expunge(), [])
        self.assertEqual((await inbox.status()).highestmodseq, highest)
        await inbox.store_flags(uids[:3], "add", {"\\Deleted"})
        self.assertEqual(await inbox.expunge(uids[1:]), uids[1:3])
        self.assertEqual(await inbox.uids(), [uids[0], uids[3]])
        self.assertEqual(await inbox.expunge(), [uids[0]])
        self.assertEqual(await inbox.uids(), [uids[3]])
        await self.assert_raises(MessageExpunged, inbox.open_message(uids[0]))

    # -- COPY --

    async def test_copy_keeps_flags_and_date(self) -> None:
        store, inbox, metas = await self.inbox_with(3, flags={"\\Seen", "$Work"})
        await store.create_mailbox("Archive")
        archive = await store.get_mailbox("Archive")
        await archive.append([AppendRequest(make_message(99))])
        await archive.claim_recent()
        wanted = [metas[2].uid, metas[0].uid, metas[2].uid + 10]
        pairs = await copy_messages(inbox, archive, wanted, origin="copier")
        self.assertEqual([src for src, _ in pairs], [metas[0].uid, metas[2].uid])
        new_uids = [dst for _, dst in pairs]
        self.assertEqual(new_uids, sorted(new_uids))
        copied = await archive.metadata(new_uids)
        self.assertEqual([(m.flags, m.internaldate, m.size) for m in copied],
                         [(m.flags, m.internaldate, m.size) for m in (metas[0], metas[2])])
        for (src, dst) in pairs:
            original = await (await inbox.open_message(src)).read()
            self.assertEqual(await (await archive.open_message(dst)).read(), original)
        self.assertEqual(await archive.claim_recent(), new_uids)
        self.assertEqual(await inbox.metadata(await inbox.uids()), metas)

    async def test_copy_to(self) -> None:
        store, inbox, metas = await self.inbox_with(2)
        if not ICopyableMailbox.providedBy(inbox):
            self.skipTest("the mailbox does not provide the optional ICopyableMailbox")
        await store.create_mailbox("Dest")
        dest = await store.get_mailbox("Dest")
        listener = await self.listen(dest)
        pairs = await inbox.copy_to([m.uid for m in metas], dest, origin="o")
        self.assertEqual([s for s, _ in pairs], [m.uid for m in metas])
        self.assertEqual(await dest.uids(), [d for _, d in pairs])
        events = await listener.wait_for(lambda ev: {d for _, d in pairs} <= added_uids(ev))
        self.assertEqual({e.origin for e in events}, {"o"})
        elsewhere = await (await (await self.backend()).open_store("alice")).get_mailbox("INBOX")
        self.assertIsNone(await inbox.copy_to([metas[0].uid], elsewhere))
        self.assertEqual(await elsewhere.uids(), [])
