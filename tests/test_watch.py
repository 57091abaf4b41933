"""
The change watcher with two backends on one store in one process, standing
for two server processes: what one writes reaches the other's listeners,
once, in UID order; deletions and renames make it leave; the PostgreSQL
listener reconnects.  (tests/test_multiprocess.py does the same with real
server processes and IMAP clients.)
"""

from __future__ import annotations

import os

from twisted.internet import defer, task, threads
from twisted.trial import unittest

from twisted_mailhub.backends.mbox import MboxBackend
from twisted_mailhub.backends.sql import open_backend
from twisted_mailhub.model import (
    AccessKeyReset,
    AppendRequest,
    FlagsChanged,
    MailboxCreated,
    MailboxDeleted,
    MailboxRemoved,
    MailboxRenamed,
    MessagesAdded,
    MessagesExpunged,
    SubscriptionChanged,
    TreeKey,
)
from twisted_mailhub.testing.support import RecordingListener
from twisted_mailhub.watch import PollingTrigger

from stores import PG_URL, create_pg_database, drop_pg_database

FAST = 0.02


def message(n: int) -> AppendRequest:
    return AppendRequest(b"Subject: %d\r\n\r\nbody %d\r\n" % (n, n))


def added_uids(events) -> list[int]:
    return [m.uid for e in events if isinstance(e, MessagesAdded) for m in e.messages]


class PollingTriggerTests(unittest.TestCase):
    def test_stop_waits_for_a_poll_of_a_loop_already_stopped(self):
        # The last key going stops the loop but not a poll under way; the
        # backend closes its threads after stop(), so stop() waits for it.
        from twisted_mailhub.watch import ChangeWatcher

        clock, probed = task.Clock(), defer.Deferred()
        trigger = PollingTrigger(lambda keys: probed, 1.0, clock=clock)
        trigger.start(ChangeWatcher(lambda key: None))
        trigger.watch("key")
        clock.advance(1.0)
        trigger.unwatch("key")
        stopped = defer.ensureDeferred(trigger.stop())
        self.assertFalse(stopped.called)
        probed.callback([])
        self.assertTrue(stopped.called)


class WatchMixin:
    kind = "sqlite"

    async def backends(self, interval_a: float = FAST):
        """Two backends on one new store: C{a} watching, C{b} writing."""
        if self.kind == "sqlite":
            path = os.path.abspath(self.mktemp())
            os.makedirs(path)
            url = "sqlite:" + os.path.join(path, "mail.db")
            a, b = open_backend(url), open_backend(url)
        elif self.kind == "postgresql":
            url = await threads.deferToThread(create_pg_database)
            self.addCleanup(threads.deferToThread, drop_pg_database, url)
            a, b = open_backend(url), open_backend(url)
        else:
            root = os.path.abspath(self.mktemp())
            os.makedirs(root)
            a, b = MboxBackend(root), MboxBackend(root)
        self.addCleanup(lambda: defer.ensureDeferred(a.close()))
        self.addCleanup(lambda: defer.ensureDeferred(b.close()))
        a.watch_changes(interval_a)
        b.watch_changes(FAST)
        return a, b

    async def inbox_pair(self, interval_a: float = FAST):
        a, b = await self.backends(interval_a)
        store_b = await b.open_store("alice")
        store_a = await a.open_store("alice")
        box_a, box_b = await store_a.get_mailbox("INBOX"), await store_b.get_mailbox("INBOX")
        listener = RecordingListener()
        box_a.subscribe(listener)
        self.addCleanup(box_a.unsubscribe, listener)
        # The watcher's first read of the mailbox is done once a check
        # after it finds nothing: wait for one poll round trip.
        await self.settle(a)
        return (a, store_a, box_a), (b, store_b, box_b), listener

    async def settle(self, backend) -> None:
        from twisted.internet import reactor

        for _ in range(3):
            await task.deferLater(reactor, FAST * 2, lambda: None)
        while backend.notifier._running:
            await defer.DeferredList(list(backend.notifier._running))

    @defer.inlineCallbacks
    def test_foreign_writes_reach_listeners(self):
        (_, _, box_a), (_, _, box_b), listener = yield defer.ensureDeferred(self.inbox_pair())
        [meta] = yield defer.ensureDeferred(box_b.append([message(1)]))
        events = yield listener.wait_for(lambda es: added_uids(es) == [meta.uid])
        yield defer.ensureDeferred(box_b.store_flags([meta.uid], "add", {"\\Deleted"}))
        events = yield listener.wait_for(
            lambda es: any(isinstance(e, FlagsChanged) for e in es))
        changed = [e for e in events if isinstance(e, FlagsChanged)][0]
        self.assertEqual([(m.uid, m.flags) for m in changed.messages],
                         [(meta.uid, frozenset({"\\Deleted"}))])
        yield defer.ensureDeferred(box_b.expunge())
        events = yield listener.wait_for(
            lambda es: any(isinstance(e, MessagesExpunged) for e in es))
        gone = [e for e in events if isinstance(e, MessagesExpunged)][0]
        self.assertEqual(gone.uids, (meta.uid,))
        status = yield defer.ensureDeferred(box_a.status())
        self.assertEqual(gone.modseq, status.highestmodseq)

    @defer.inlineCallbacks
    def test_local_writes_are_announced_once(self):
        (_, _, box_a), (_, _, box_b), listener = yield defer.ensureDeferred(self.inbox_pair())
        [local] = yield defer.ensureDeferred(box_a.append([message(1)], origin="me"))
        yield defer.ensureDeferred(box_a.store_flags([local.uid], "add", {"\\Seen"}, origin="me"))
        yield defer.ensureDeferred(
            box_a.store_flags([local.uid], "add", {"\\Deleted"}, origin="me"))
        yield defer.ensureDeferred(box_a.expunge(origin="me"))
        # A foreign change afterwards: by the time it arrives, the checks
        # that might have repeated the local ones are done.
        [foreign] = yield defer.ensureDeferred(box_b.append([message(2)]))
        events = yield listener.wait_for(lambda es: foreign.uid in added_uids(es))
        yield defer.ensureDeferred(self.settle(self.backend_of(box_a)))
        kinds = [(type(e).__name__, e.origin) for e in listener.events]
        self.assertEqual(kinds, [
            ("MessagesAdded", "me"), ("FlagsChanged", "me"), ("FlagsChanged", "me"),
            ("MessagesExpunged", "me"), ("MessagesAdded", None),
        ])

    @defer.inlineCallbacks
    def test_local_write_between_foreign_ones_is_not_repeated(self):
        # A polls rarely; the test says when to look, as a trigger would.
        (a, _, box_a), (_, _, box_b), listener = yield defer.ensureDeferred(
            self.inbox_pair(interval_a=30.0))
        one, two = yield defer.ensureDeferred(box_b.append([message(1), message(2)]))
        a.notifier.check()
        yield listener.wait_for(lambda es: added_uids(es) == [one.uid, two.uid])
        yield defer.ensureDeferred(box_b.store_flags([one.uid], "add", {"\\Flagged"}))
        # Not yet seen here: this local change does not follow the last
        # MODSEQ A knows, and the next read returns both.
        yield defer.ensureDeferred(box_a.store_flags([two.uid], "add", {"\\Seen"}, origin="me"))
        a.notifier.check()
        yield listener.wait_for(lambda es: any(
            isinstance(e, FlagsChanged) and e.messages[0].uid == one.uid for e in es))
        yield defer.ensureDeferred(self.settle(a))
        changes = sorted((m.uid, e.origin or "")
                         for e in listener.events if isinstance(e, FlagsChanged)
                         for m in e.messages)
        self.assertEqual(changes, [(one.uid, ""), (two.uid, "me")])

    def backend_of(self, mailbox):
        return mailbox._backend if hasattr(mailbox, "_backend") else mailbox._store.backend

    @defer.inlineCallbacks
    def test_local_append_waits_for_lower_foreign_uid(self):
        # A polls rarely, so it has not seen B's append when it appends.
        (_, _, box_a), (_, _, box_b), listener = yield defer.ensureDeferred(
            self.inbox_pair(interval_a=30.0))
        [first] = yield defer.ensureDeferred(box_b.append([message(1)]))
        [second] = yield defer.ensureDeferred(box_a.append([message(2)]))
        self.assertLess(first.uid, second.uid)
        events = yield listener.wait_for(lambda es: second.uid in added_uids(es))
        # A session adds UIDs above the ones it knows only: the lower one
        # must come first or with it.
        self.assertEqual(added_uids(events), [first.uid, second.uid])

    @defer.inlineCallbacks
    def test_delete_elsewhere_removes(self):
        a, b = yield defer.ensureDeferred(self.backends())
        store_b = yield defer.ensureDeferred(b.open_store("alice"))
        yield defer.ensureDeferred(store_b.create_mailbox("Work"))
        yield defer.ensureDeferred(store_b.create_mailbox("Old"))
        store_a = yield defer.ensureDeferred(a.open_store("alice"))
        work = yield defer.ensureDeferred(store_a.get_mailbox("Work"))
        old = yield defer.ensureDeferred(store_a.get_mailbox("Old"))
        listeners = {}
        for box in (work, old):
            listeners[box.name] = RecordingListener()
            box.subscribe(listeners[box.name])
            self.addCleanup(box.unsubscribe, listeners[box.name])
        yield defer.ensureDeferred(self.settle(a))
        yield defer.ensureDeferred(store_b.delete_mailbox("Work"))
        yield defer.ensureDeferred(store_b.rename_mailbox("Old", "New"))
        for listener in listeners.values():
            yield listener.wait_for(lambda es: any(isinstance(e, MailboxRemoved) for e in es))


    # -- the tree of mailboxes (RFC 5465 MailboxName, SubscriptionChange) -----

    #: Whether the store keeps an identity of each mailbox that a rename
    #: keeps, so that another process's rename is told as one.
    renames_seen = True

    async def tree_pair(self, interval_a: float = FAST):
        a, b = await self.backends(interval_a)
        store_b = await b.open_store("alice")
        store_a = await a.open_store("alice")
        listener = RecordingListener()
        a.notifier.subscribe(TreeKey("alice"), listener)
        self.addCleanup(a.notifier.unsubscribe, TreeKey("alice"), listener)
        await self.settle(a)
        return (a, store_a), (b, store_b), listener

    def told(self, listener, *events):
        """Wait (a few seconds at most) until C{listener} heard C{events}."""
        from twisted.internet import reactor

        return listener.wait_for(lambda es: all(e in es for e in events)).addTimeout(10, reactor)

    @defer.inlineCallbacks
    def test_foreign_tree_changes_reach_tree_listeners(self):
        (a, _), (_, store_b), listener = yield defer.ensureDeferred(self.tree_pair())
        yield defer.ensureDeferred(store_b.create_mailbox("Lists"))
        yield self.told(listener, MailboxCreated("Lists"))
        yield defer.ensureDeferred(store_b.create_mailbox("Lists/IETF"))
        yield defer.ensureDeferred(store_b.subscribe("Lists/IETF"))
        yield self.told(listener, MailboxCreated("Lists/IETF"),
                        SubscriptionChanged("Lists/IETF", True))
        yield defer.ensureDeferred(store_b.rename_mailbox("Lists", "Groups"))
        if self.renames_seen:
            # One rename for the mailbox and its inferiors, as here.
            renamed = [MailboxRenamed("Lists", "Groups")]
        else:
            # Told as a CREATE of the inferior is, its superior with it.
            renamed = [MailboxDeleted("Lists"), MailboxDeleted("Lists/IETF"),
                       MailboxCreated("Groups/IETF")]
        yield self.told(listener, *renamed)
        yield defer.ensureDeferred(store_b.unsubscribe("Lists/IETF"))
        yield defer.ensureDeferred(store_b.delete_mailbox("Groups/IETF"))
        yield self.told(listener, SubscriptionChanged("Lists/IETF", False),
                        MailboxDeleted("Groups/IETF"))
        yield defer.ensureDeferred(self.settle(a))
        # Each told once.
        self.assertEqual(len(listener.events), len(set(listener.events)), listener.events)
        self.assertEqual(len(listener.events), 3 + len(renamed) + 2, listener.events)

    @defer.inlineCallbacks
    def test_local_tree_changes_are_told_once(self):
        (a, store_a), (_, store_b), listener = yield defer.ensureDeferred(self.tree_pair())
        yield defer.ensureDeferred(store_a.create_mailbox("Mine"))
        yield defer.ensureDeferred(store_a.subscribe("Mine"))
        yield defer.ensureDeferred(store_a.rename_mailbox("Mine", "Ours"))
        # A foreign change afterwards: by the time it arrives, the checks
        # that might have repeated the local ones are done.
        yield defer.ensureDeferred(store_b.create_mailbox("Theirs"))
        yield self.told(listener, MailboxCreated("Theirs"))
        yield defer.ensureDeferred(self.settle(a))
        self.assertEqual(listener.events, [
            MailboxCreated("Mine"), SubscriptionChanged("Mine", True),
            MailboxRenamed("Mine", "Ours"), MailboxCreated("Theirs")])

    @defer.inlineCallbacks
    def test_watching_waits_for_the_first_reading(self):
        # NOTIFY answers once the tree is known as it is: a change another
        # process makes after that is told.
        a, b = yield defer.ensureDeferred(self.backends())
        store_b = yield defer.ensureDeferred(b.open_store("alice"))
        yield defer.ensureDeferred(a.open_store("alice"))
        listener = RecordingListener()
        a.notifier.subscribe(TreeKey("alice"), listener)
        self.addCleanup(a.notifier.unsubscribe, TreeKey("alice"), listener)
        ready = a.notifier.watching(TreeKey("alice"))
        self.assertFalse(ready.called)
        yield ready
        yield defer.ensureDeferred(store_b.create_mailbox("Right after"))
        yield self.told(listener, MailboxCreated("Right after"))
        self.assertTrue(a.notifier.watching(TreeKey("alice")).called)
        self.assertTrue(a.notifier.watching(TreeKey("nobody")).called)

    @defer.inlineCallbacks
    def test_tree_is_watched_while_listened_to(self):
        (a, _), (_, store_b), listener = yield defer.ensureDeferred(self.tree_pair())
        a.notifier.unsubscribe(TreeKey("alice"), listener)
        yield defer.ensureDeferred(store_b.create_mailbox("Unheard"))
        yield defer.ensureDeferred(self.settle(a))
        self.assertEqual(listener.events, [])
        self.assertEqual(a.notifier.watched(), [])


class AccessKeyWatchMixin:
    """RESETKEY through another backend (RFC 4467: every session is told)."""

    @defer.inlineCallbacks
    def test_foreign_key_reset_is_announced_local_once(self):
        from twisted.internet import reactor

        (a, _, box_a), (b, _, box_b), listener = yield defer.ensureDeferred(self.inbox_pair())
        yield defer.ensureDeferred(b.reset_access_key("alice", "INBOX"))
        yield listener.wait_for(lambda es: AccessKeyReset() in es).addTimeout(10, reactor)
        yield defer.ensureDeferred(a.reset_access_key("alice", "INBOX", origin="me"))
        # A foreign change afterwards: by the time it arrives, a repeat of
        # the local reset would have been announced.
        [meta] = yield defer.ensureDeferred(box_b.append([message(1)]))
        yield listener.wait_for(lambda es: meta.uid in added_uids(es)).addTimeout(10, reactor)
        yield defer.ensureDeferred(self.settle(a))
        self.assertEqual([e for e in listener.events if isinstance(e, AccessKeyReset)],
                         [AccessKeyReset(), AccessKeyReset("me")])


class SQLiteWatchTests(AccessKeyWatchMixin, WatchMixin, unittest.TestCase):
    kind = "sqlite"

    @defer.inlineCallbacks
    def test_polls_only_while_listened_to(self):
        (a, _, box_a), _, listener = yield defer.ensureDeferred(self.inbox_pair())
        trigger = a.notifier._trigger
        self.assertIsInstance(trigger, PollingTrigger)
        self.assertIsNotNone(trigger._loop)
        box_a.unsubscribe(listener)
        self.assertIsNone(trigger._loop)

    @defer.inlineCallbacks
    def test_close_stops_polling(self):
        (a, _, _), _, _ = yield defer.ensureDeferred(self.inbox_pair())
        trigger, probe = a.notifier._trigger, a.notifier._trigger._probe
        self.assertIsNotNone(probe._connection)
        yield defer.ensureDeferred(a.close())
        self.assertIsNone(trigger._loop)
        self.assertIsNone(probe._connection)

    def test_poll_interval_must_be_positive(self):
        with self.assertRaises(ValueError):
            PollingTrigger(lambda keys: [], 0)


class MboxWatchTests(WatchMixin, unittest.TestCase):
    kind = "mbox"
    renames_seen = False


class PostgreSQLWatchTests(AccessKeyWatchMixin, WatchMixin, unittest.TestCase):
    kind = "postgresql"
    skip = None if PG_URL else "set MAILHUB_TEST_POSTGRESQL_URL to run these tests"

    @defer.inlineCallbacks
    def test_close_ends_the_listening_thread(self):
        import threading

        (a, _, _), _, _ = yield defer.ensureDeferred(self.inbox_pair())
        names = lambda: [t.name for t in threading.enumerate() if t.is_alive()]  # noqa: E731
        self.assertIn("mailhub-pg-listen", names())
        yield defer.ensureDeferred(a.close())
        self.assertNotIn("mailhub-pg-listen", names())

    @defer.inlineCallbacks
    def test_change_whose_notification_was_lost_is_swept_up(self):
        from twisted_mailhub.backends.sql import watch

        self.patch(watch, "SWEEP_INTERVAL", FAST * 5)
        url = yield threads.deferToThread(create_pg_database)
        self.addCleanup(threads.deferToThread, drop_pg_database, url)
        # b stands for a process that died between its commit and its
        # NOTIFY: it does not watch, so it sends none.
        a, b = open_backend(url), open_backend(url)
        self.addCleanup(lambda: defer.ensureDeferred(a.close()))
        self.addCleanup(lambda: defer.ensureDeferred(b.close()))
        a.watch_changes(FAST)
        box_b = yield defer.ensureDeferred(
            (yield defer.ensureDeferred(b.open_store("alice"))).get_mailbox("INBOX"))
        box_a = yield defer.ensureDeferred(
            (yield defer.ensureDeferred(a.open_store("alice"))).get_mailbox("INBOX"))
        listener = RecordingListener()
        box_a.subscribe(listener)
        self.addCleanup(box_a.unsubscribe, listener)
        yield defer.ensureDeferred(self.settle(a))
        [meta] = yield defer.ensureDeferred(box_b.append([message(1)]))
        from twisted.internet import reactor

        yield listener.wait_for(lambda es: added_uids(es) == [meta.uid]).addTimeout(10, reactor)

    @defer.inlineCallbacks
    def test_listener_reconnects(self):
        from sqlalchemy import text

        (a, _, _), (b, _, box_b), listener = yield defer.ensureDeferred(self.inbox_pair())
        trigger = a.notifier._trigger
        self.assertEqual(trigger.connections, 1)

        def kill(conn):
            return conn.execute(text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = 'mailhub-listen' AND datname = current_database()"
            )).scalar()

        killed = yield b.db.write(kill)
        self.assertGreaterEqual(killed, 1)
        [meta] = yield defer.ensureDeferred(box_b.append([message(1)]))
        yield listener.wait_for(lambda es: meta.uid in added_uids(es))
        from twisted.internet import reactor

        for _ in range(500):
            if trigger.connections >= 2:
                break
            yield task.deferLater(reactor, FAST, lambda: None)
        self.assertEqual(trigger.connections, 2)
