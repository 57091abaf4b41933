"""
L{Migration} against a store in memory, with a scripted source: the cases
a real server rarely produces on demand (a store that cannot keep UIDs, a
UIDVALIDITY equal by chance, a name the target cannot hold, a message
expunged between listing and fetching).
"""

from __future__ import annotations

import io
from datetime import datetime, timedelta, timezone

from twisted.internet import defer
from twisted.trial import unittest
from zope.interface import implementer

from twisted_mailhub.backends.memory import MemoryBackend
from twisted_mailhub.interfaces import IMailbox, IRestorableMailbox
from twisted_mailhub.model import AppendRequest
from twisted_mailhub.sync.migrate import Migration, SyncOptions
from twisted_mailhub.sync.source import ConnectionLost, FolderState, SourceFolder, SourceMessage
from twisted_mailhub.sync.wire import message_id

DAY = datetime(2022, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=-5)))


def content(n: int) -> bytes:
    return b"Message-ID: <%d@source>\r\nSubject: %d\r\n\r\nbody %d\r\n" % (n, n, n)


class ScriptedSource:
    """The calls L{Migration} makes of a L{SourceServer}, answered from a dict."""

    def __init__(self, folders: dict[tuple[str, ...], tuple[int, dict[int, frozenset[str]]]],
                 subscribed: tuple[tuple[str, ...], ...] = ()) -> None:
        self.data = folders
        self.subscribed = subscribed
        self.vanish: set[int] = set()
        self._current: tuple[str, ...] = ()

    def _folder(self, levels: tuple[str, ...]) -> SourceFolder:
        return SourceFolder(".".join(levels), levels, True, frozenset())

    def folders(self) -> list[SourceFolder]:
        return [self._folder(levels) for levels in self.data]

    def subscriptions(self) -> list[SourceFolder]:
        return [self._folder(levels) for levels in self.subscribed]

    def examine(self, folder: SourceFolder) -> FolderState:
        self._current = folder.levels
        uidvalidity, messages = self.data[folder.levels]
        return FolderState(uidvalidity, max(messages, default=0) + 1, len(messages))

    def listing(self, exists: int) -> list[SourceMessage]:
        _, messages = self.data[self._current]
        return [SourceMessage(uid, flags, DAY, len(content(uid)), message_id(content(uid)))
                for uid, flags in sorted(messages.items())]

    def bodies(self, uids: list[int]) -> dict[int, bytes]:
        return {uid: content(uid) for uid in uids if uid not in self.vanish}


@implementer(IMailbox)
class PlainMailbox:
    """A mailbox of the memory store showing only L{IMailbox}: it cannot keep UIDs."""

    def __init__(self, inner) -> None:
        self._inner = inner

    def __getattr__(self, name):
        return getattr(self._inner, name)


class PlainStore:
    def __init__(self, inner) -> None:
        self._inner = inner

    def __getattr__(self, name):
        return getattr(self._inner, name)

    async def get_mailbox(self, name, read_only=False):
        return PlainMailbox(await self._inner.get_mailbox(name, read_only))


class MigrationTests(unittest.TestCase):
    async def migrate(self, source: ScriptedSource, store, **options) -> tuple[object, str, str]:
        out, err = io.StringIO(), io.StringIO()
        migration = Migration(source, store, SyncOptions(**options), out, err,
                              in_thread=lambda f, *a: defer.maybeDeferred(f, *a))
        outcome = await migration.run()
        return outcome, out.getvalue(), err.getvalue()

    async def test_store_that_cannot_keep_uids(self) -> None:
        store = PlainStore(await MemoryBackend().open_store("alice"))
        source = ScriptedSource({("INBOX",): (777, {3: frozenset({"\\Seen"}), 8: frozenset()})})
        outcome, out, _ = await self.migrate(source, store, batch=1)
        self.assertEqual(outcome.copied, 2)
        self.assertIn("UIDs not kept (this store cannot take another server's UIDs)", out)
        inbox = await store.get_mailbox("INBOX")
        self.assertNotEqual(inbox.uidvalidity, 777)
        metas = await inbox.metadata(await inbox.uids())
        self.assertEqual([(m.uid, m.flags, m.internaldate) for m in metas],
                         [(1, frozenset({"\\Seen"}), DAY), (2, frozenset(), DAY)])
        source.data[("INBOX",)][1][8] = frozenset({"$Later"})
        outcome, out, _ = await self.migrate(source, store)
        self.assertIn("INBOX: 0 copied, 2 already there, 1 with flags updated", out)
        self.assertEqual(len(await inbox.uids()), 2)

    async def test_uidvalidity_equal_by_chance_is_not_taken_as_kept(self) -> None:
        store = await MemoryBackend().open_store("alice")
        inbox = await store.get_mailbox("INBOX")
        await inbox.append([AppendRequest(b"Subject: mine\r\n\r\nmine\r\n")])
        source = ScriptedSource({("INBOX",): (inbox.uidvalidity, {1: frozenset()})})
        outcome, out, _ = await self.migrate(source, store)
        self.assertIn(f"UIDVALIDITY {inbox.uidvalidity} is the same here by chance", out)
        self.assertEqual(await inbox.uids(), [1, 2])
        self.assertEqual(await (await inbox.open_message(2)).read(), content(1))
        self.assertEqual(outcome.failed, [])

    async def test_names_the_target_cannot_hold_fail_alone(self) -> None:
        store = await MemoryBackend().open_store("alice")
        source = ScriptedSource({("INBOX",): (5, {1: frozenset()}),
                                 ("a/b", "c"): (6, {1: frozenset()}),
                                 ("Work", "Projects"): (7, {4: frozenset()})},
                                subscribed=(("Work", "Projects"), ("a/b", "c")))
        outcome, out, err = await self.migrate(source, store)
        self.assertEqual(outcome.failed, ["a/b.c"])
        self.assertIn("a/b.c: a level of this name holds '/'", err)
        projects = await store.get_mailbox("Work/Projects")
        self.assertEqual((projects.uidvalidity, await projects.uids()), (7, [4]))
        self.assertEqual(await store.subscriptions(), {"Work/Projects"})
        self.assertEqual((await projects.status()).uidnext, 5)

    async def test_message_gone_before_its_body_was_read(self) -> None:
        store = await MemoryBackend().open_store("alice")
        source = ScriptedSource({("INBOX",): (9, dict.fromkeys([1, 2, 3], frozenset()))})
        source.vanish = {2}
        outcome, out, _ = await self.migrate(source, store, batch=2)
        self.assertIn("INBOX: 2 copied, 0 already there, 0 with flags updated, "
                      "1 gone from the source meanwhile", out)
        inbox = await store.get_mailbox("INBOX")
        self.assertEqual((inbox.uidvalidity, await inbox.uids()), (9, [1, 3]))

    async def test_dry_run_changes_nothing(self) -> None:
        store = await MemoryBackend().open_store("alice")
        source = ScriptedSource({("INBOX",): (9, {1: frozenset()}), ("Old",): (3, {})},
                                subscribed=(("Old",),))
        outcome, out, _ = await self.migrate(source, store, dry_run=True)
        self.assertIn("INBOX: 1 would be copied", out)
        self.assertIn("subscriptions: 1 would be added", out)
        self.assertEqual([i.name for i in await store.list_mailboxes()], ["INBOX"])
        inbox = await store.get_mailbox("INBOX")
        self.assertNotEqual(inbox.uidvalidity, 9)
        self.assertEqual(await store.subscriptions(), set())
        self.assertIsNotNone(IRestorableMailbox(inbox, None))

    async def test_lost_connection_ends_the_run(self) -> None:
        store = await MemoryBackend().open_store("alice")
        one = {1: frozenset()}
        source = ScriptedSource({("INBOX",): (9, one), ("Lists",): (4, one), ("Zoo",): (5, one)},
                                subscribed=(("Zoo",),))
        bodies = source.bodies

        def breaking(uids):
            if source._current == ("Lists",):
                raise ConnectionLost("connection to imap://alice@old:143 lost (UID FETCH): EOF")
            return bodies(uids)

        source.bodies = breaking
        outcome, out, err = await self.migrate(source, store)
        self.assertTrue(outcome.lost)
        self.assertEqual(outcome.failed, ["Lists"])
        self.assertIn("Lists: connection to imap://alice@old:143 lost", err)
        self.assertNotIn("Zoo", out)
        self.assertEqual(await (await store.get_mailbox("INBOX")).uids(), [1])
        self.assertEqual(await store.subscriptions(), set())
