"""State that must survive a restart of the backend."""

from __future__ import annotations

from dataclasses import replace

from twisted_mailhub.model import AppendRequest
from twisted_mailhub.testing.support import (
    DATE,
    ConformanceBase,
    make_message,
    make_multipart_message,
)


class RestartConformance(ConformanceBase):
    """Tests that closing and reopening the backend loses nothing."""

    async def test_restart_keeps_state(self) -> None:
        backend = await self.backend()
        store = await backend.open_store("alice")
        await store.create_mailbox("Work/Projects")
        await store.subscribe("Work")
        _, inbox, metas = await self.inbox_with(4, store=store, flags={"\\Seen"})
        await inbox.store_flags([metas[1].uid], "add", {"$Important"})
        await inbox.store_flags([metas[3].uid], "add", {"\\Deleted"})
        await inbox.expunge()
        multipart = make_multipart_message()
        [extra] = await inbox.append([AppendRequest(multipart, frozenset({"\\Draft"}), DATE)])
        structure = await (await inbox.open_message(extra.uid)).structure()
        before = (
            await store.list_mailboxes(),
            await store.subscriptions(),
            replace(await inbox.status(), recent=0),
            await inbox.metadata(await inbox.uids()),
            await inbox.changes_since(0),
            inbox.uidvalidity,
            (await store.get_mailbox("Work/Projects")).uidvalidity,
        )

        backend = await self.restart(backend)
        store = await backend.open_store("alice")
        inbox = await store.get_mailbox("INBOX")
        after = (
            await store.list_mailboxes(),
            await store.subscriptions(),
            replace(await inbox.status(), recent=0),
            await inbox.metadata(await inbox.uids()),
            await inbox.changes_since(0),
            inbox.uidvalidity,
            (await store.get_mailbox("Work/Projects")).uidvalidity,
        )
        self.assertEqual(after, before)
        message = await inbox.open_message(extra.uid)
        self.assertEqual(await message.read(), multipart)
        self.assertEqual(await message.structure(), structure)
        self.assertEqual(await (await inbox.open_message(metas[0].uid)).read(), make_message(0))

        [new] = await inbox.append([AppendRequest(make_message(5))])
        self.assertGreater(new.uid, extra.uid)
        self.assertGreater(new.modseq, before[2].highestmodseq)

    async def test_restart_in_the_middle_of_appends(self) -> None:
        backend = await self.backend()
        store = await backend.open_store("bob")
        inbox = await store.get_mailbox("INBOX")
        first = await inbox.append([AppendRequest(make_message(n), frozenset({"$X"}), DATE)
                                    for n in range(3)])
        backend = await self.restart(backend)
        inbox = await (await backend.open_store("bob")).get_mailbox("INBOX")
        self.assertEqual(await inbox.metadata(await inbox.uids()), first)
        second = await inbox.append([AppendRequest(make_message(n)) for n in range(3, 5)])
        update = await inbox.store_flags([first[0].uid], "remove", {"$X"})
        backend = await self.restart(backend)
        inbox = await (await backend.open_store("bob")).get_mailbox("INBOX")
        expected = update.changed + first[1:] + second
        self.assertEqual(await inbox.metadata(await inbox.uids()), expected)
        for meta, n in zip(expected, range(5)):
            self.assertEqual(await (await inbox.open_message(meta.uid)).read(), make_message(n))
