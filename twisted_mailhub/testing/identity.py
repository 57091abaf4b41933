"""
Identities and save dates: what L{MessageMeta.identity},
L{MessageMeta.saved} and L{MailboxStatus.identity} promise.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from twisted_mailhub.backends.base import copy_messages, move_messages
from twisted_mailhub.interfaces import IStatusQuery
from twisted_mailhub.model import AppendRequest, is_object_id
from twisted_mailhub.testing.support import DATE, ConformanceBase, added_uids, make_message

#: How far a save date may be from the clock around the write that set it
#: (a store may keep whole seconds only).
SLACK = timedelta(seconds=2)


class IdentityConformance(ConformanceBase):
    """Tests of message and mailbox identities and of save dates."""

    def assert_saved_between(self, saved, before: datetime, after: datetime) -> None:
        self.assertIsNotNone(saved)
        self.assertIsNotNone(saved.tzinfo)
        self.assertTrue(before - SLACK <= saved <= after + SLACK, (before, saved, after))

    async def test_appended_messages_get_distinct_identities(self) -> None:
        before = datetime.now(timezone.utc)
        store, inbox, metas = await self.inbox_with(3)
        after = datetime.now(timezone.utc)
        identities = [m.identity for m in metas]
        self.assertTrue(all(isinstance(i, str) and is_object_id(i) for i in identities),
                        identities)
        self.assertEqual(len(set(identities)), 3)
        # The save date is the time of the APPEND, not the INTERNALDATE given.
        for meta in metas:
            self.assertEqual(meta.internaldate, DATE)
            self.assert_saved_between(meta.saved, before, after)
        self.assertEqual(await inbox.metadata(await inbox.uids()), metas)
        opened = await inbox.open_message(metas[1].uid)
        self.assertEqual((opened.meta.identity, opened.meta.saved),
                         (metas[1].identity, metas[1].saved))

    async def test_flag_changes_keep_identity_and_save_date(self) -> None:
        store, inbox, metas = await self.inbox_with(2)
        update = await inbox.store_flags([metas[0].uid], "add", {"\\Seen", "$Work"})
        [changed] = update.changed
        self.assertEqual((changed.identity, changed.saved), (metas[0].identity, metas[0].saved))
        [now] = await inbox.metadata([metas[0].uid])
        self.assertEqual((now.identity, now.saved), (metas[0].identity, metas[0].saved))
        changes, _ = await inbox.changes_since(0)
        self.assertEqual({m.uid: m.identity for m in changes},
                         {m.uid: m.identity for m in metas})

    async def test_copy_keeps_identity_and_gets_its_own_save_date(self) -> None:
        store, inbox, metas = await self.inbox_with(2)
        await store.create_mailbox("Archive")
        archive = await store.get_mailbox("Archive")
        listener = await self.listen(archive)
        before = datetime.now(timezone.utc)
        pairs = await copy_messages(inbox, archive, [m.uid for m in metas])
        after = datetime.now(timezone.utc)
        copies = await archive.metadata([new for _, new in pairs])
        self.assertEqual([c.identity for c in copies], [m.identity for m in metas])
        for copy in copies:
            self.assert_saved_between(copy.saved, before, after)
        # The originals keep theirs.
        self.assertEqual(await inbox.metadata([m.uid for m in metas]), metas)
        events = await listener.wait_for(lambda ev: {n for _, n in pairs} <= added_uids(ev))
        announced = {m.uid: (m.identity, m.saved) for e in events for m in e.messages}
        self.assertEqual(announced, {c.uid: (c.identity, c.saved) for c in copies})

    async def test_append_of_a_kept_identity(self) -> None:
        store, inbox, metas = await self.inbox_with(1)
        [again] = await inbox.append([AppendRequest(make_message(0), identity=metas[0].identity),
                                      ])
        self.assertEqual(again.identity, metas[0].identity)
        [fresh] = await inbox.append([AppendRequest(make_message(1), identity="not an id!")])
        self.assertTrue(is_object_id(fresh.identity))
        self.assertNotEqual(fresh.identity, metas[0].identity)

    async def test_move_keeps_identity_and_gets_a_new_save_date(self) -> None:
        store, inbox, metas = await self.inbox_with(3)
        await store.create_mailbox("Trash")
        trash = await store.get_mailbox("Trash")
        before = datetime.now(timezone.utc)
        pairs, _ = await move_messages(inbox, trash, [metas[0].uid, metas[2].uid])
        after = datetime.now(timezone.utc)
        moved = await trash.metadata([new for _, new in pairs])
        self.assertEqual([m.identity for m in moved], [metas[0].identity, metas[2].identity])
        for meta in moved:
            self.assert_saved_between(meta.saved, before, after)
        # Moving back within the store keeps it still.
        back, _ = await move_messages(trash, inbox, [moved[0].uid])
        [home] = await inbox.metadata([back[0][1]])
        self.assertEqual(home.identity, metas[0].identity)

    async def test_mailbox_identities(self) -> None:
        store = await self.store()
        await store.create_mailbox("A")
        await store.create_mailbox("B/C")
        ids = {}
        for name in ("INBOX", "A", "B", "B/C"):
            ids[name] = (await (await store.get_mailbox(name)).status()).identity
            self.assertTrue(isinstance(ids[name], str) and is_object_id(ids[name]), ids)
        self.assertEqual(len(set(ids.values())), 4)
        # RENAME keeps the mailbox, inferiors included (RFC 8474 section 4).
        await store.rename_mailbox("B", "D")
        self.assertEqual((await (await store.get_mailbox("D")).status()).identity, ids["B"])
        self.assertEqual((await (await store.get_mailbox("D/C")).status()).identity, ids["B/C"])
        # A name deleted and created again is another mailbox.
        await store.delete_mailbox("A")
        await store.create_mailbox("A")
        again = (await (await store.get_mailbox("A")).status()).identity
        self.assertNotIn(again, ids.values())
        # RENAME of INBOX makes a new mailbox of the messages (RFC 3501 6.3.5).
        await store.rename_mailbox("INBOX", "Old")
        old = (await (await store.get_mailbox("Old")).status()).identity
        self.assertNotIn(old, ids.values())
        self.assertNotEqual(old, again)
        query = IStatusQuery(store, None)
        if query is not None:
            self.assertEqual((await query.mailbox_status("D/C")).identity, ids["B/C"])

    async def test_identities_survive_restart(self) -> None:
        backend = await self.backend()
        store = await backend.open_store("alice")
        await store.create_mailbox("Work")
        _, inbox, metas = await self.inbox_with(2, store=store)
        work = await store.get_mailbox("Work")
        pairs = await copy_messages(inbox, work, [metas[1].uid])
        await store.rename_mailbox("Work", "Done")
        done = await store.get_mailbox("Done")
        before = ((await inbox.status()).identity, (await done.status()).identity,
                  await inbox.metadata(await inbox.uids()), await done.metadata(await done.uids()))

        backend = await self.restart(backend)
        store = await backend.open_store("alice")
        inbox, done = await store.get_mailbox("INBOX"), await store.get_mailbox("Done")
        after = ((await inbox.status()).identity, (await done.status()).identity,
                 await inbox.metadata(await inbox.uids()), await done.metadata(await done.uids()))
        self.assertEqual(after, before)
        self.assertEqual(after[3][0].identity, metas[1].identity)
        self.assertEqual([new for _, new in pairs], [m.uid for m in after[3]])
