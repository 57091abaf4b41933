"""The in-memory backend: the conformance suite plus what is particular to it."""

from __future__ import annotations

from twisted.trial import unittest

from twisted_mailhub.backends.memory import MemoryBackend
from twisted_mailhub.errors import MailboxNotFound
from twisted_mailhub.model import AppendRequest, MailboxRemoved
from twisted_mailhub.notify import LocalNotifier
from twisted_mailhub.testing import BackendConformanceMixin, RecordingListener, make_message


class MemoryConformanceTests(BackendConformanceMixin, unittest.TestCase):
    async def make_backend(self) -> MemoryBackend:
        return MemoryBackend()


class MemoryBackendTests(unittest.TestCase):
    async def test_open_store_returns_the_same_tree(self) -> None:
        backend = MemoryBackend()
        first = await backend.open_store("alice")
        await first.create_mailbox("Notes")
        second = await backend.open_store("alice")
        self.assertEqual([i.name for i in await second.list_mailboxes()], ["INBOX", "Notes"])

    async def test_backends_do_not_share_users(self) -> None:
        one, two = MemoryBackend(), MemoryBackend()
        await (await one.open_store("alice")).create_mailbox("Notes")
        self.assertEqual(
            [i.name for i in await (await two.open_store("alice")).list_mailboxes()], ["INBOX"]
        )

    async def test_given_notifier_is_used(self) -> None:
        notifier = LocalNotifier()
        backend = MemoryBackend(notifier)
        self.assertIs(backend.notifier, notifier)
        inbox = await (await backend.open_store("alice")).get_mailbox("INBOX")
        listener = RecordingListener()
        notifier.subscribe(inbox.key, listener)
        [meta] = await inbox.append([AppendRequest(make_message())])
        self.assertEqual([e.messages for e in listener.events], [(meta,)])

    async def test_uidvalidity_unique_in_a_tree(self) -> None:
        store = await MemoryBackend().open_store("alice")
        for name in ("a", "b", "c/d"):
            await store.create_mailbox(name)
        values = [
            (await store.get_mailbox(info.name)).uidvalidity
            for info in await store.list_mailboxes()
        ]
        self.assertEqual(len(set(values)), len(values))

    async def test_key_stable_across_rename(self) -> None:
        store = await MemoryBackend().open_store("alice")
        await store.create_mailbox("a")
        before = (await store.get_mailbox("a")).key
        await store.rename_mailbox("a", "b")
        self.assertEqual((await store.get_mailbox("b")).key, before)

    async def test_view_follows_rename(self) -> None:
        store = await MemoryBackend().open_store("alice")
        await store.create_mailbox("a")
        view = await store.get_mailbox("a")
        await store.rename_mailbox("a", "b")
        self.assertEqual(view.name, "b")
        [meta] = await view.append([AppendRequest(make_message())])
        self.assertEqual(await (await store.get_mailbox("b")).uids(), [meta.uid])

    async def test_write_to_deleted_mailbox_fails(self) -> None:
        store = await MemoryBackend().open_store("alice")
        await store.create_mailbox("a")
        view = await store.get_mailbox("a")
        listener = RecordingListener()
        view.subscribe(listener)
        await store.delete_mailbox("a")
        self.assertEqual(listener.events, [MailboxRemoved()])
        with self.assertRaises(MailboxNotFound):
            await view.append([AppendRequest(make_message())])
        await store.create_mailbox("a")
        self.assertEqual(await (await store.get_mailbox("a")).uids(), [])

    async def test_one_modseq_per_write(self) -> None:
        store = await MemoryBackend().open_store("alice")
        inbox = await store.get_mailbox("INBOX")
        metas = await inbox.append([AppendRequest(make_message(n)) for n in range(3)])
        self.assertEqual({m.modseq for m in metas}, {2})
        update = await inbox.store_flags([m.uid for m in metas], "add", {"\\Seen"})
        self.assertEqual({m.modseq for m in update.changed}, {3})
        self.assertEqual((await inbox.status()).highestmodseq, 3)

    async def test_failed_append_adds_nothing(self) -> None:
        from twisted_mailhub.mime import parse

        real = parse.parse_message

        def refuse_second(content: bytes):
            if content == make_message(2):
                raise ValueError("cannot parse")
            return real(content)

        self.patch(parse, "parse_message", refuse_second)
        inbox = await (await MemoryBackend().open_store("alice")).get_mailbox("INBOX")
        before = await inbox.status()
        with self.assertRaises(ValueError):
            await inbox.append([AppendRequest(make_message(n)) for n in range(1, 4)])
        self.assertEqual(await inbox.status(), before)
        [meta] = await inbox.append([AppendRequest(make_message(1))])
        self.assertEqual(meta.uid, 1)

    async def test_rename_inbox_keeps_parsed_structure(self) -> None:
        store = await MemoryBackend().open_store("alice")
        inbox = await store.get_mailbox("INBOX")
        [meta] = await inbox.append([AppendRequest(make_message(1))])
        structure = await (await inbox.open_message(meta.uid)).structure()
        await store.rename_mailbox("INBOX", "Old")
        old = await store.get_mailbox("Old")
        [uid] = await old.uids()
        self.assertIs(await (await old.open_message(uid)).structure(), structure)
