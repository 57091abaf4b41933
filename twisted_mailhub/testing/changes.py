"""Flags and MODSEQ, \\Recent, notifications and read-only sessions."""

from __future__ import annotations

from twisted_mailhub.backends.base import copy_messages
from twisted_mailhub.errors import ReadOnlyMailbox
from twisted_mailhub.model import (
    AppendRequest,
    FlagsChanged,
    MessagesAdded,
    MessagesExpunged,
)
from twisted_mailhub.testing.support import (
    ConformanceBase,
    RecordingListener,
    added_uids,
    changed_uids,
    expunged_uids,
    make_message,
)


class ChangeConformance(ConformanceBase):
    """Tests of flags, MODSEQ, \\Recent, events and read-only mailboxes."""

    async def test_store_modes(self) -> None:
        store, inbox, [meta] = await self.inbox_with(1)
        uid = meta.uid
        update = await inbox.store_flags([uid], "add", {"\\seen", "$Label1"})
        self.assertEqual([m.flags for m in update.changed], [frozenset({"\\Seen", "$Label1"})])
        self.assertEqual(update.modified, [])
        update = await inbox.store_flags([uid], "remove", {"$Label1", "\\Flagged"})
        self.assertEqual([m.flags for m in update.changed], [frozenset({"\\Seen"})])
        update = await inbox.store_flags([uid], "set", {"\\Answered", "Custom"})
        self.assertEqual([m.flags for m in update.changed], [frozenset({"\\Answered", "Custom"})])
        [current] = await inbox.metadata([uid])
        self.assertEqual(current, update.changed[0])
        update = await inbox.store_flags([uid], "set", set())
        self.assertEqual(update.changed[0].flags, frozenset())

    async def test_store_ignores_missing_uids(self) -> None:
        store, inbox, [meta] = await self.inbox_with(1)
        update = await inbox.store_flags([meta.uid, meta.uid + 50], "add", {"\\Seen"})
        self.assertEqual([m.uid for m in update.changed], [meta.uid])

    async def test_modseq_grows_on_flag_change(self) -> None:
        store, inbox, metas = await self.inbox_with(2)
        highest = (await inbox.status()).highestmodseq
        self.assertGreaterEqual(highest, max(m.modseq for m in metas))
        update = await inbox.store_flags([metas[0].uid], "add", {"\\Flagged"})
        [changed] = update.changed
        self.assertGreater(changed.modseq, highest)
        self.assertEqual((await inbox.status()).highestmodseq, changed.modseq)
        [untouched] = await inbox.metadata([metas[1].uid])
        self.assertEqual(untouched.modseq, metas[1].modseq)
        second = (await inbox.store_flags([metas[0].uid], "remove", {"\\Flagged"})).changed[0]
        self.assertGreater(second.modseq, changed.modseq)

    async def test_noop_store_keeps_modseq(self) -> None:
        store, inbox, [meta] = await self.inbox_with(1, flags={"\\Seen"})
        highest = (await inbox.status()).highestmodseq
        for mode, flags in (("add", {"\\Seen"}), ("remove", {"\\Draft"}), ("set", {"\\Seen"})):
            update = await inbox.store_flags([meta.uid], mode, flags)
            self.assertEqual(update.changed, [], mode)
        self.assertEqual((await inbox.status()).highestmodseq, highest)
        self.assertEqual(await inbox.metadata([meta.uid]), [meta])

    async def test_modseq_grows_on_expunge(self) -> None:
        store, inbox, metas = await self.inbox_with(2, flags={"\\Deleted"})
        highest = (await inbox.status()).highestmodseq
        listener = await self.listen(inbox)
        uids = await inbox.expunge([metas[0].uid])
        events = await listener.wait_for(lambda events: set(uids) <= expunged_uids(events))
        after = (await inbox.status()).highestmodseq
        self.assertGreater(after, highest)
        [event] = [e for e in events if isinstance(e, MessagesExpunged)]
        self.assertEqual(event.modseq, after)

    async def test_unchangedsince(self) -> None:
        store, inbox, metas = await self.inbox_with(3)
        first, second, third = (m.uid for m in metas)
        touched = (await inbox.store_flags([first], "add", {"$A"})).changed[0]
        update = await inbox.store_flags(
            [first, second, third], "add", {"\\Seen"}, unchangedsince=touched.modseq - 1
        )
        self.assertEqual(update.modified, [first])
        self.assertEqual([m.uid for m in update.changed], [second, third])
        [kept] = await inbox.metadata([first])
        self.assertEqual(kept, touched)
        # A MODSEQ equal to UNCHANGEDSINCE passes (RFC 7162 section 3.1.3).
        update = await inbox.store_flags([first], "add", {"\\Seen"}, unchangedsince=touched.modseq)
        self.assertEqual((update.modified, [m.uid for m in update.changed]), ([], [first]))

    async def test_changes_since(self) -> None:
        store, inbox, metas = await self.inbox_with(3)
        mark = (await inbox.status()).highestmodseq
        self.assertEqual(await inbox.changes_since(mark), ([], []))
        await inbox.store_flags([metas[1].uid], "add", {"\\Answered"})
        await inbox.store_flags([metas[2].uid], "add", {"\\Deleted"})
        await inbox.expunge()
        changed, expunged = await inbox.changes_since(mark)
        self.assertEqual([(m.uid, m.flags) for m in changed],
                         [(metas[1].uid, frozenset({"\\Answered"}))])
        self.assertEqual(expunged, [metas[2].uid])
        everything, expunged = await inbox.changes_since(0)
        self.assertEqual([m.uid for m in everything], [metas[0].uid, metas[1].uid])
        self.assertEqual(expunged, [metas[2].uid])
        self.assertEqual(await inbox.changes_since((await inbox.status()).highestmodseq), ([], []))

    # -- \Recent --

    async def test_claim_recent(self) -> None:
        store, one, metas = await self.inbox_with(2)
        two = await store.get_mailbox("INBOX")
        uids = [m.uid for m in metas]
        self.assertEqual(await one.claim_recent(claim=False), uids)
        self.assertEqual(await two.claim_recent(claim=False), uids)
        self.assertEqual(await one.claim_recent(), uids)
        self.assertEqual(await two.claim_recent(), [])
        self.assertEqual((await two.status()).recent, 0)
        [meta] = await one.append([AppendRequest(make_message(5))])
        self.assertEqual(await two.claim_recent(), [meta.uid])
        self.assertEqual(await one.claim_recent(), [])

    # -- notifications --

    async def test_each_write_notifies_with_origin(self) -> None:
        store = await self.store()
        inbox = await store.get_mailbox("INBOX")
        other_session = await store.get_mailbox("INBOX")
        listener = await self.listen(other_session)
        metas = await inbox.append(
            [AppendRequest(make_message(n)) for n in range(2)], origin="s1"
        )
        uids = {m.uid for m in metas}
        events = await listener.wait_for(lambda ev: uids <= added_uids(ev))
        added = [m for e in events if isinstance(e, MessagesAdded) for m in e.messages]
        self.assertEqual(added, metas)
        self.assertEqual({e.origin for e in events}, {"s1"})

        mark = len(listener.events)
        update = await inbox.store_flags(uids, "add", {"\\Seen"}, origin="s2")
        events = (await listener.wait_for(lambda ev: uids <= changed_uids(ev[mark:])))[mark:]
        events = [e for e in events if isinstance(e, FlagsChanged)]
        self.assertEqual([m for e in events for m in e.messages], update.changed)
        self.assertEqual({e.origin for e in events}, {"s2"})

        # A store that changes nothing announces nothing: the next event is
        # the one of the following, real change.
        mark = len(listener.events)
        first = min(uids)
        await inbox.store_flags([first], "add", {"\\Seen"}, origin="noop")
        await inbox.store_flags([first], "add", {"\\Deleted"}, origin="s3")
        events = (await listener.wait_for(lambda ev: first in changed_uids(ev[mark:])))[mark:]
        self.assertEqual({e.origin for e in events}, {"s3"})

        mark = len(listener.events)
        await inbox.expunge(origin="s4")
        events = (await listener.wait_for(lambda ev: first in expunged_uids(ev[mark:])))[mark:]
        events = [e for e in events if isinstance(e, MessagesExpunged)]
        self.assertEqual([(e.uids, e.origin) for e in events], [((first,), "s4")])

    async def test_unsubscribed_listener_hears_nothing(self) -> None:
        store = await self.store()
        inbox = await store.get_mailbox("INBOX")
        gone, staying = RecordingListener(), await self.listen(inbox)
        inbox.subscribe(gone)
        inbox.unsubscribe(gone)
        [meta] = await inbox.append([AppendRequest(make_message())])
        await staying.wait_for(lambda ev: meta.uid in added_uids(ev))
        self.assertEqual(gone.events, [])

    # -- read-only sessions --

    async def test_read_only_refuses_writes(self) -> None:
        store, inbox, [meta] = await self.inbox_with(1, flags={"\\Deleted"})
        examined = await store.get_mailbox("INBOX", read_only=True)
        self.assertTrue(examined.read_only)
        self.assertFalse(inbox.read_only)
        before = await inbox.status()
        await self.assert_raises(ReadOnlyMailbox, examined.append([AppendRequest(make_message())]))
        await self.assert_raises(
            ReadOnlyMailbox, examined.store_flags([meta.uid], "add", {"\\Seen"})
        )
        await self.assert_raises(ReadOnlyMailbox, examined.expunge())
        await store.create_mailbox("Dest")
        dest = await store.get_mailbox("Dest", read_only=True)
        await self.assert_raises(ReadOnlyMailbox, copy_messages(inbox, dest, [meta.uid]))
        self.assertEqual(await dest.uids(), [])
        self.assertEqual(await inbox.status(), before)
        self.assertEqual(await examined.metadata([meta.uid]), [meta])
        self.assertEqual(await (await examined.open_message(meta.uid)).read(), make_message(0))
        # Reading a read-only mailbox still lets it be copied from.
        pairs = await copy_messages(examined, await store.get_mailbox("Dest"), [meta.uid])
        self.assertEqual(len(pairs), 1)
