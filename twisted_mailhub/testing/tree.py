"""The mailbox tree: names, INBOX, CREATE, DELETE, RENAME, subscriptions, UIDVALIDITY."""

from __future__ import annotations

from zope.interface.verify import verifyObject

from twisted_mailhub.errors import (
    InvalidMailboxName,
    MailboxExists,
    MailboxHasChildren,
    MailboxNotFound,
    MailhubError,
    NotSelectable,
)
from twisted_mailhub.interfaces import (
    IBackend,
    ICopyableMailbox,
    IExpungeHistory,
    IMailbox,
    IMailStore,
    IMessage,
    IMoveableMailbox,
    INotifier,
    IRemovableMailbox,
)
from twisted_mailhub.model import AppendRequest, MailboxRemoved, MessagesAdded
from twisted_mailhub.testing.support import (
    DATE,
    ConformanceBase,
    added_uids,
    make_message,
)


class TreeConformance(ConformanceBase):
    """Tests of one user's mailbox tree and of UIDVALIDITY."""

    async def test_provides_interfaces(self) -> None:
        backend = await self.backend()
        verifyObject(IBackend, backend)
        verifyObject(INotifier, backend.notifier)
        store = await backend.open_store("alice")
        verifyObject(IMailStore, store)
        inbox = await store.get_mailbox("INBOX")
        verifyObject(IMailbox, inbox)
        for optional in (ICopyableMailbox, IMoveableMailbox, IRemovableMailbox, IExpungeHistory):
            if optional.providedBy(inbox):
                verifyObject(optional, inbox)
        [meta] = await inbox.append([AppendRequest(make_message())])
        message = await inbox.open_message(meta.uid)
        verifyObject(IMessage, message)
        self.assertEqual(message.meta.uid, meta.uid)

    # -- the mailbox tree --

    async def test_new_store_has_only_inbox(self) -> None:
        store = await self.store()
        [info] = await store.list_mailboxes()
        self.assertEqual((info.name, info.selectable), ("INBOX", True))
        self.assertEqual(store.username, "alice")
        self.assertEqual(len(store.delimiter), 1)
        status = await (await store.get_mailbox("INBOX")).status()
        self.assertEqual((status.messages, status.unseen, status.recent), (0, 0, 0))

    async def test_inbox_is_case_insensitive(self) -> None:
        store = await self.store()
        mailbox = await store.get_mailbox("iNbOx")
        self.assertEqual(mailbox.name, "INBOX")
        await self.assert_raises(MailboxExists, store.create_mailbox("Inbox"))
        await store.create_mailbox("inbox/Sub")
        self.assertIn("INBOX/Sub", await self.names(store))
        await self.assert_raises(MailhubError, store.delete_mailbox("inbox"))
        self.assertIn("INBOX", await self.names(store))

    async def test_invalid_names_refused(self) -> None:
        store = await self.store()
        for name in ("", "a//b", "../x", "a/*", "a/%"):
            await self.assert_raises(InvalidMailboxName, store.create_mailbox(name))
            await self.assert_raises(InvalidMailboxName, store.rename_mailbox("INBOX", name))
        self.assertEqual(await self.names(store), ["INBOX"])

    async def test_create_makes_superiors(self) -> None:
        store = await self.store()
        await store.create_mailbox("a/b/c")
        self.assertEqual(await self.names(store), ["INBOX", "a", "a/b", "a/b/c"])
        await self.assert_raises(MailboxExists, store.create_mailbox("a/b"))
        await store.create_mailbox("a/d/")
        self.assertIn("a/d", await self.names(store))
        mailbox = await store.get_mailbox("a/b/c")
        self.assertEqual(mailbox.name, "a/b/c")

    async def test_create_special_use(self) -> None:
        store = await self.store()
        await store.create_mailbox("Sent", frozenset({"\\Sent"}))
        infos = {info.name: info for info in await store.list_mailboxes()}
        self.assertEqual(infos["Sent"].special_use, frozenset({"\\Sent"}))

    async def test_missing_mailbox(self) -> None:
        store = await self.store()
        await self.assert_raises(MailboxNotFound, store.get_mailbox("nope"))
        await self.assert_raises(MailboxNotFound, store.delete_mailbox("nope"))
        await self.assert_raises(MailboxNotFound, store.rename_mailbox("nope", "other"))

    async def test_delete_leaf(self) -> None:
        store = await self.store()
        await store.create_mailbox("a/b")
        await store.delete_mailbox("a/b")
        self.assertEqual(await self.names(store), ["INBOX", "a"])
        await self.assert_raises(MailboxNotFound, store.get_mailbox("a/b"))

    async def test_delete_with_children(self) -> None:
        store = await self.store()
        await store.create_mailbox("a/b")
        parent = await store.get_mailbox("a")
        await parent.append([AppendRequest(make_message())])
        await store.delete_mailbox("a")
        infos = {info.name: info for info in await store.list_mailboxes()}
        self.assertFalse(infos["a"].selectable)
        self.assertTrue(infos["a/b"].selectable)
        await self.assert_raises(NotSelectable, store.get_mailbox("a"))
        await self.assert_raises(MailboxHasChildren, store.delete_mailbox("a"))
        await store.delete_mailbox("a/b")
        await store.delete_mailbox("a")
        self.assertEqual(await self.names(store), ["INBOX"])

    async def test_delete_publishes_removal(self) -> None:
        store = await self.store()
        await store.create_mailbox("gone")
        listener = await self.listen(await store.get_mailbox("gone"))
        await store.delete_mailbox("gone")
        await listener.wait_for(lambda events: any(isinstance(e, MailboxRemoved) for e in events))

    async def test_rename_hierarchy(self) -> None:
        store = await self.store()
        await store.create_mailbox("a/b/c")
        await store.create_mailbox("ab")
        b = await store.get_mailbox("a/b")
        metas = await b.append([AppendRequest(make_message(n), frozenset({"\\Seen"}), DATE)
                                for n in range(2)])
        before = {
            name: (await store.get_mailbox(name)).uidvalidity for name in ("a", "a/b", "a/b/c")
        }
        await store.rename_mailbox("a", "x/y")
        self.assertEqual(await self.names(store), ["INBOX", "ab", "x", "x/y", "x/y/b", "x/y/b/c"])
        await self.assert_raises(MailboxNotFound, store.get_mailbox("a/b"))
        for old, new in (("a", "x/y"), ("a/b", "x/y/b"), ("a/b/c", "x/y/b/c")):
            self.assertEqual((await store.get_mailbox(new)).uidvalidity, before[old])
        moved = await store.get_mailbox("x/y/b")
        self.assertEqual(await moved.metadata(await moved.uids()), metas)
        message = await moved.open_message(metas[1].uid)
        self.assertEqual(await message.read(), make_message(1))

    async def test_rename_conflicts(self) -> None:
        store = await self.store()
        await store.create_mailbox("a")
        await store.create_mailbox("b")
        await self.assert_raises(MailboxExists, store.rename_mailbox("a", "b"))
        await self.assert_raises(MailhubError, store.rename_mailbox("a", "a/inner"))
        self.assertEqual(await self.names(store), ["INBOX", "a", "b"])

    async def test_rename_publishes_removal(self) -> None:
        store = await self.store()
        await store.create_mailbox("a")
        listener = await self.listen(await store.get_mailbox("a"))
        await store.rename_mailbox("a", "b")
        await listener.wait_for(lambda events: any(isinstance(e, MailboxRemoved) for e in events))

    async def test_rename_inbox(self) -> None:
        store, inbox, metas = await self.inbox_with(2, flags={"\\Flagged"})
        await store.create_mailbox("INBOX/kept")
        await store.rename_mailbox("INBOX", "Old/Mail")
        self.assertEqual(await self.names(store), ["INBOX", "INBOX/kept", "Old", "Old/Mail"])
        inbox = await store.get_mailbox("INBOX")
        self.assertEqual(await inbox.uids(), [])
        self.assertEqual((await inbox.status()).messages, 0)
        old = await store.get_mailbox("Old/Mail")
        moved = await old.metadata(await old.uids())
        self.assertEqual([(m.flags, m.internaldate, m.size) for m in moved],
                         [(m.flags, m.internaldate, m.size) for m in metas])
        contents = [await (await old.open_message(m.uid)).read() for m in moved]
        self.assertEqual(contents, [make_message(0), make_message(1)])
        [new] = await inbox.append([AppendRequest(make_message(9))])
        self.assertGreater(new.uid, max(m.uid for m in metas))

    async def test_subscriptions(self) -> None:
        backend = await self.backend()
        store = await backend.open_store("alice")
        self.assertEqual(await store.subscriptions(), set())
        await store.subscribe("not/existing")
        await store.subscribe("inbox")
        self.assertEqual(await store.subscriptions(), {"not/existing", "INBOX"})
        await store.unsubscribe("not/existing")
        await store.unsubscribe("never/subscribed")
        again = await backend.open_store("alice")
        self.assertEqual(await again.subscriptions(), {"INBOX"})
        other = await backend.open_store("bob")
        self.assertEqual(await other.subscriptions(), set())

    async def test_users_are_separate(self) -> None:
        backend = await self.backend()
        alice = await backend.open_store("alice")
        bob = await backend.open_store("bob")
        await alice.create_mailbox("Projects")
        self.assertEqual(await self.names(bob), ["INBOX"])
        alice_inbox = await alice.get_mailbox("INBOX")
        bob_inbox = await bob.get_mailbox("INBOX")
        self.assertNotEqual(alice_inbox.key, bob_inbox.key)
        bob_listener = await self.listen(bob_inbox)
        await alice_inbox.append([AppendRequest(make_message(1))])
        self.assertEqual(await bob_inbox.uids(), [])
        [meta] = await bob_inbox.append([AppendRequest(make_message(2))])
        await bob_listener.wait_for(lambda events: meta.uid in added_uids(events))
        self.assertEqual(
            [e.messages for e in bob_listener.events if isinstance(e, MessagesAdded)],
            [(meta,)],
        )
        self.assertEqual(await (await bob_inbox.open_message(meta.uid)).read(), make_message(2))

    async def test_sessions_share_state(self) -> None:
        backend = await self.backend()
        one = await (await backend.open_store("alice")).get_mailbox("INBOX")
        two = await (await backend.open_store("alice")).get_mailbox("INBOX")
        self.assertEqual(one.key, two.key)
        [meta] = await one.append([AppendRequest(make_message())])
        await two.store_flags([meta.uid], "add", {"\\Seen"})
        [seen] = await one.metadata([meta.uid])
        self.assertEqual(seen.flags, frozenset({"\\Seen"}))

    # -- UIDVALIDITY --

    async def test_uidvalidity_range(self) -> None:
        store = await self.store()
        await store.create_mailbox("x")
        for name in ("INBOX", "x"):
            uidvalidity = (await store.get_mailbox(name)).uidvalidity
            self.assertTrue(1 <= uidvalidity <= 2**32 - 1, uidvalidity)
            self.assertEqual((await (await store.get_mailbox(name)).status()).uidvalidity,
                             uidvalidity)

    async def test_uidvalidity_changes_on_recreate(self) -> None:
        store = await self.store()
        await store.create_mailbox("box")
        first = (await store.get_mailbox("box")).uidvalidity
        await store.delete_mailbox("box")
        await store.create_mailbox("box")
        second = (await store.get_mailbox("box")).uidvalidity
        self.assertNotEqual(first, second)
        await store.rename_mailbox("box", "elsewhere")
        await store.create_mailbox("box")
        third = (await store.get_mailbox("box")).uidvalidity
        self.assertEqual((await store.get_mailbox("elsewhere")).uidvalidity, second)
        self.assertNotIn(third, (first, second))
