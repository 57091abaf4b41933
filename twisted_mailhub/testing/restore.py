"""
L{IRestorableMailbox}: a mailbox taking the UIDVALIDITY and UIDs another
store gave, as a migration needs.  Backends without the capability skip
these tests (it is optional).
"""

from __future__ import annotations

from twisted.trial.unittest import SkipTest
from zope.interface.verify import verifyObject

from twisted_mailhub.errors import IdentityConflict
from twisted_mailhub.interfaces import IRestorableMailbox
from twisted_mailhub.model import AppendRequest, MailboxRemoved
from twisted_mailhub.testing.support import DATE, ConformanceBase, make_message

#: A UIDVALIDITY another server might have used (not one this store draws).
FOREIGN_UIDVALIDITY = 3_000_000_001


class RestoreConformance(ConformanceBase):
    """Tests of restoring a mailbox's UIDVALIDITY and its messages' UIDs."""

    async def _fresh(self, name: str = "Moved", store=None):
        if store is None:
            store = await self.store()
        await store.create_mailbox(name)
        mailbox = await store.get_mailbox(name)
        if IRestorableMailbox(mailbox, None) is None:
            raise SkipTest("this backend does not provide IRestorableMailbox (optional)")
        verifyObject(IRestorableMailbox, mailbox)
        return store, mailbox

    async def test_restore_then_append_with_uids(self) -> None:
        store, mailbox = await self._fresh()
        status = await mailbox.restore_identity(FOREIGN_UIDVALIDITY)
        self.assertEqual((status.uidvalidity, status.uidnext), (FOREIGN_UIDVALIDITY, 1))
        self.assertEqual(mailbox.uidvalidity, FOREIGN_UIDVALIDITY)
        metas = await mailbox.append([
            AppendRequest(make_message(1), frozenset({"\\Seen", "$Work"}), DATE, uid=3),
            AppendRequest(make_message(2), frozenset(), DATE, uid=7),
            AppendRequest(make_message(3), frozenset(), DATE),
        ])
        self.assertEqual([m.uid for m in metas], [3, 7, 8])
        self.assertEqual(metas[0].flags, frozenset({"\\Seen", "$Work"}))
        self.assertEqual(metas[0].internaldate, DATE)
        # Raising UIDNEXT to where the other store was; the UIDs skipped are never given.
        status = await mailbox.restore_identity(FOREIGN_UIDVALIDITY, 20)
        self.assertEqual((status.uidvalidity, status.uidnext, status.messages),
                         (FOREIGN_UIDVALIDITY, 20, 3))
        [after] = await mailbox.append([AppendRequest(make_message(4))])
        self.assertEqual(after.uid, 20)
        again = await store.get_mailbox("Moved")
        self.assertEqual(again.uidvalidity, FOREIGN_UIDVALIDITY)
        self.assertEqual(await again.uids(), [3, 7, 8, 20])
        self.assertEqual(await (await again.open_message(7)).read(), make_message(2))

    async def test_uidnext_is_never_lowered(self) -> None:
        _, mailbox = await self._fresh()
        await mailbox.restore_identity(FOREIGN_UIDVALIDITY, 50)
        status = await mailbox.restore_identity(FOREIGN_UIDVALIDITY, 10)
        self.assertEqual(status.uidnext, 50)
        self.assertEqual((await mailbox.status()).uidnext, 50)

    async def test_uid_already_passed_is_refused_and_nothing_appended(self) -> None:
        _, mailbox = await self._fresh()
        await mailbox.restore_identity(FOREIGN_UIDVALIDITY)
        await mailbox.append([AppendRequest(make_message(1), uid=5)])
        await self.assert_raises(IdentityConflict, mailbox.append(
            [AppendRequest(make_message(2), uid=9), AppendRequest(make_message(3), uid=9)]))
        await self.assert_raises(IdentityConflict, mailbox.append(
            [AppendRequest(make_message(4), uid=5)]))
        self.assertEqual(await mailbox.uids(), [5])
        self.assertEqual((await mailbox.status()).uidnext, 6)

    async def test_mailbox_that_held_messages_keeps_its_uidvalidity(self) -> None:
        _, mailbox = await self._fresh()
        before = mailbox.uidvalidity
        [meta] = await mailbox.append([AppendRequest(make_message(1), frozenset({"\\Deleted"}))])
        await mailbox.expunge()
        self.assertEqual(await mailbox.uids(), [])
        await self.assert_raises(IdentityConflict, mailbox.restore_identity(FOREIGN_UIDVALIDITY))
        self.assertEqual((await mailbox.status()).uidvalidity, before)
        # Its own UIDVALIDITY is fine: UIDNEXT only goes up.
        status = await mailbox.restore_identity(before, 100)
        self.assertEqual((status.uidvalidity, status.uidnext), (before, 100))
        self.assertGreater(status.uidnext, meta.uid)

    async def test_new_uidvalidity_tells_sessions_the_mailbox_went(self) -> None:
        _, mailbox = await self._fresh()
        listener = await self.listen(mailbox)
        await mailbox.restore_identity(FOREIGN_UIDVALIDITY)
        await listener.wait_for(lambda events: any(isinstance(e, MailboxRemoved) for e in events))

    async def test_restored_uidvalidity_is_not_drawn_again(self) -> None:
        store, mailbox = await self._fresh()
        # Just above what the store would give next: a later mailbox of this
        # name (or any) must not get it.
        await store.create_mailbox("Probe")
        wanted = (await store.get_mailbox("Probe")).uidvalidity + 1
        await mailbox.restore_identity(wanted)
        await store.delete_mailbox("Moved")
        await store.create_mailbox("Moved")
        await store.create_mailbox("Other")
        drawn = {(await store.get_mailbox(name)).uidvalidity for name in ("Moved", "Other")}
        self.assertNotIn(wanted, drawn)

    async def test_restore_survives_restart(self) -> None:
        backend = await self.backend()
        store = await backend.open_store("alice")
        _, mailbox = await self._fresh(store=store)
        await mailbox.restore_identity(FOREIGN_UIDVALIDITY, 1)
        await mailbox.append([AppendRequest(make_message(1), uid=41)])
        await mailbox.restore_identity(FOREIGN_UIDVALIDITY, 60)
        backend = await self.restart(backend)
        mailbox = await (await backend.open_store("alice")).get_mailbox("Moved")
        status = await mailbox.status()
        self.assertEqual((status.uidvalidity, status.uidnext), (FOREIGN_UIDVALIDITY, 60))
        self.assertEqual(await mailbox.uids(), [41])
        [new] = await mailbox.append([AppendRequest(make_message(2))])
        self.assertEqual(new.uid, 60)
