"""MOVE (RFC 6851) through the store, and tree changes racing each other."""

from __future__ import annotations

from twisted.internet.defer import ensureDeferred, gatherResults

from twisted_mailhub.backends.base import move_messages
from twisted_mailhub.errors import MailboxExists
from twisted_mailhub.interfaces import IMoveableMailbox, IRemovableMailbox
from twisted_mailhub.model import AppendRequest, FlagsChanged, MessagesAdded
from twisted_mailhub.testing.support import (
    DATE,
    ConformanceBase,
    added_uids,
    expunged_uids,
    make_message,
)

#: Flags of the three messages the tests move: a keyword, \Seen, and a
#: \Deleted set before the move (which the move keeps, as COPY would).
FLAGS = (
    frozenset({"\\Flagged", "$Work"}),
    frozenset({"\\Seen"}),
    frozenset({"\\Seen", "\\Deleted"}),
)


class MoveConformance(ConformanceBase):
    """Tests of moving messages and of concurrent CREATE and RENAME."""

    async def _three(self):
        store = await self.store()
        inbox = await store.get_mailbox("INBOX")
        metas = await inbox.append(
            [AppendRequest(make_message(n), FLAGS[n], DATE) for n in range(3)]
            + [AppendRequest(make_message(3))]
        )
        await store.create_mailbox("Archive")
        archive = await store.get_mailbox("Archive")
        return store, inbox, archive, metas

    async def _check_moved(self, inbox, archive, metas, pairs, source_events) -> None:
        moved = [m.uid for m in metas[:3]]
        self.assertEqual([old for old, _ in pairs], moved)
        new_uids = [new for _, new in pairs]
        self.assertEqual(await inbox.uids(), [metas[3].uid])
        self.assertEqual(await archive.uids(), new_uids)
        arrived = await archive.metadata(new_uids)
        self.assertEqual([(m.flags, m.internaldate, m.size) for m in arrived],
                         [(m.flags, m.internaldate, m.size) for m in metas[:3]])
        for n, uid in enumerate(new_uids):
            self.assertEqual(await (await archive.open_message(uid)).read(), make_message(n))
        # Other sessions are told of the expunge only, never of a \Deleted.
        self.assertEqual([e for e in source_events if isinstance(e, FlagsChanged)], [])
        self.assertEqual(expunged_uids(source_events), set(moved))
        source, target = await inbox.status(), await archive.status()
        self.assertEqual((source.messages, source.unseen, source.deleted, source.size),
                         (1, 1, 0, metas[3].size))
        self.assertEqual((target.messages, target.unseen, target.deleted, target.size),
                         (3, 1, 1, sum(m.size for m in metas[:3])))
        self.assertEqual(await archive.claim_recent(), new_uids)

    async def test_move_messages(self) -> None:
        store, inbox, archive, metas = await self._three()
        mark = (await inbox.status()).highestmodseq
        watching = await self.listen(await store.get_mailbox("INBOX"))
        arrivals = await self.listen(archive)
        pairs, removed = await move_messages(
            inbox, archive, [metas[2].uid, metas[0].uid, metas[1].uid, 999], origin="mover")
        self.assertEqual(removed, [m.uid for m in metas[:3]])
        events = await watching.wait_for(lambda ev: set(removed) <= expunged_uids(ev))
        await arrivals.wait_for(lambda ev: {new for _, new in pairs} <= added_uids(ev))
        await self._check_moved(inbox, archive, metas, pairs, events)
        self.assertEqual({e.origin for e in events}, {"mover"})
        # QRESYNC: the source remembers the moved UIDs as expunged.
        changed, gone = await inbox.changes_since(mark)
        self.assertEqual((changed, gone), ([], removed))
        self.assertEqual(await move_messages(inbox, archive, [999]), ([], []))

    async def test_move_to(self) -> None:
        store, inbox, archive, metas = await self._three()
        if not IMoveableMailbox.providedBy(inbox):
            self.skipTest("the mailbox does not provide the optional IMoveableMailbox")
        source_before, target_before = await inbox.status(), await archive.status()
        watching = await self.listen(await store.get_mailbox("INBOX"))
        arrivals = await self.listen(archive)
        pairs = await inbox.move_to([m.uid for m in metas[:3]], archive, origin="o")
        events = await watching.wait_for(
            lambda ev: {m.uid for m in metas[:3]} <= expunged_uids(ev))
        added = await arrivals.wait_for(lambda ev: {new for _, new in pairs} <= added_uids(ev))
        await self._check_moved(inbox, archive, metas, pairs, events)
        self.assertEqual({e.origin for e in events + added}, {"o"})
        # New MODSEQs above everything the destination had (RFC 6851 4.4).
        announced = [m for e in added if isinstance(e, MessagesAdded) for m in e.messages]
        self.assertEqual([m.uid for m in announced], [new for _, new in pairs])
        self.assertTrue(all(m.modseq > target_before.highestmodseq for m in announced))
        self.assertEqual((await archive.status()).highestmodseq, max(m.modseq for m in announced))
        self.assertGreater((await inbox.status()).highestmodseq, source_before.highestmodseq)
        # Another backend's mailbox is not one to move into directly.
        elsewhere = await (await (await self.backend()).open_store("alice")).get_mailbox("INBOX")
        self.assertIsNone(await inbox.move_to([metas[3].uid], elsewhere))
        self.assertEqual(await inbox.uids(), [metas[3].uid])

    async def test_move_within_one_mailbox(self) -> None:
        store, inbox, metas = await self.inbox_with(2, flags={"$Work"})
        same = await store.get_mailbox("INBOX")
        pairs, removed = await move_messages(inbox, same, [metas[0].uid])
        [(old, new)] = pairs
        self.assertEqual((old, removed), (metas[0].uid, [metas[0].uid]))
        self.assertGreater(new, metas[1].uid)
        self.assertEqual(await inbox.uids(), [metas[1].uid, new])
        [meta] = await inbox.metadata([new])
        self.assertEqual(meta.flags, frozenset({"$Work"}))
        self.assertEqual((await inbox.status()).messages, 2)

    async def test_remove(self) -> None:
        store, inbox, metas = await self.inbox_with(3, flags={"\\Seen"})
        if not IRemovableMailbox.providedBy(inbox):
            self.skipTest("the mailbox does not provide the optional IRemovableMailbox")
        listener = await self.listen(await store.get_mailbox("INBOX"))
        mark = (await inbox.status()).highestmodseq
        wanted = [metas[2].uid, metas[0].uid, metas[2].uid + 50]
        removed = await inbox.remove(wanted, origin="r")
        self.assertEqual(removed, [metas[0].uid, metas[2].uid])
        events = await listener.wait_for(lambda ev: set(removed) <= expunged_uids(ev))
        self.assertEqual([e for e in events if isinstance(e, FlagsChanged)], [])
        self.assertEqual(await inbox.uids(), [metas[1].uid])
        self.assertEqual(await inbox.changes_since(mark), ([], removed))
        status = await inbox.status()
        self.assertEqual((status.messages, status.deleted, status.size), (1, 0, metas[1].size))

    # -- tree changes racing --

    async def test_concurrent_create_of_one_name(self) -> None:
        store = await self.store()
        outcomes = await gatherResults([
            ensureDeferred(_outcome(store.create_mailbox("Projects/New"))) for _ in range(2)
        ] + [
            ensureDeferred(_outcome(store.create_mailbox(f"Shared/{side}")))
            for side in ("Left", "Right")
        ])
        self.assertCountEqual(outcomes[:2], [None, MailboxExists])
        self.assertEqual(outcomes[2:], [None, None])
        self.assertEqual(await self.names(store), [
            "INBOX", "Projects", "Projects/New", "Shared", "Shared/Left", "Shared/Right"])

    async def test_concurrent_rename_to_one_name(self) -> None:
        store = await self.store()
        for name, count in (("Left", 1), ("Right", 2)):
            await store.create_mailbox(name)
            await (await store.get_mailbox(name)).append(
                [AppendRequest(make_message(n)) for n in range(count)])
        outcomes = await gatherResults([
            ensureDeferred(_outcome(store.rename_mailbox(name, "Target")))
            for name in ("Left", "Right")
        ])
        self.assertCountEqual(outcomes, [None, MailboxExists])
        winner, loser = ("Left", "Right") if outcomes[0] is None else ("Right", "Left")
        self.assertEqual(await self.names(store), sorted(["INBOX", loser, "Target"]))
        counts = {"Left": 1, "Right": 2}
        self.assertEqual((await (await store.get_mailbox("Target")).status()).messages,
                         counts[winner])
        self.assertEqual((await (await store.get_mailbox(loser)).status()).messages,
                         counts[loser])


async def _outcome(awaitable) -> type[BaseException] | None:
    """C{None} if C{awaitable} succeeds, else the class of what it raised."""
    try:
        await awaitable
    except Exception as e:  # noqa: BLE001 - the test compares the class
        return type(e)
    return None
