"""
Group commit in the SQLite store: APPENDs waiting for the writer share one
transaction commit (and its fsync), each succeeding or failing alone and
reported only once that commit is done.  (Killing the process mid-APPEND
is tested in test_sql.py and tests/lmtp/test_lmtp_crash.py.)
"""

from __future__ import annotations

import imaplib
import os
import re
import sqlite3
import threading

from sqlalchemy import event, insert
from twisted.internet import reactor, threads
from twisted.internet.task import deferLater
from twisted.trial import unittest

from harness import IMAPServerTestCase

from twisted_mailhub.backends.sql import open_backend
from twisted_mailhub.backends.sql.mailbox import _append_txn, _prepare
from twisted_mailhub.backends.sql.schema import keywords
from twisted_mailhub.model import AppendRequest
from twisted_mailhub.testing import make_message


class GroupedWrites(unittest.TestCase):

    async def test_waiting_appends_share_one_commit_and_fail_alone(self) -> None:
        path = os.path.join(os.path.abspath(self.mktemp()), "mail.db")
        os.makedirs(os.path.dirname(path))
        backend = open_backend("sqlite:" + path)
        self.addCleanup(backend.close)
        await backend.ready()
        inbox = await (await backend.open_store("alice")).get_mailbox("INBOX")
        db = backend.db
        prepared = [await db.call(_prepare, [AppendRequest(make_message(n))], False)
                    for n in range(3)]
        commits: list[int] = []
        event.listen(db.engine, "commit", lambda conn: commits.append(1))

        # A write holds the writer's turn while the APPENDs line up.
        entered, release = threading.Event(), threading.Event()

        def hold(conn) -> None:
            entered.set()
            release.wait(30)

        held = db.write(hold)
        await threads.deferToThread(entered.wait, 30)

        def broken(conn) -> None:
            # Writes a row, then fails: only its own savepoint is undone.
            conn.execute(insert(keywords).values(message_id=1, keyword="stray"))
            raise ValueError("refused")

        def peek(conn) -> int:
            # Another connection does not see the first APPEND yet: the
            # group is one transaction, committed after its last write.
            other = sqlite3.connect(path)
            try:
                return other.execute("SELECT count(*) FROM messages").fetchone()[0]
            finally:
                other.close()

        first = db.write_grouped(_append_txn, inbox.mailbox_id, prepared[0])
        seen = db.write_grouped(peek)
        failing = db.write_grouped(broken)
        rest = [db.write_grouped(_append_txn, inbox.mailbox_id, p) for p in prepared[1:]]
        release.set()
        await held
        metas = [await first] + [await d for d in rest]
        self.assertEqual(await seen, 0)
        with self.assertRaises(ValueError):
            await failing

        # The hold's commit, then one for the three APPENDs.
        self.assertEqual(len(commits), 2)
        self.assertEqual([m[0].uid for m in metas], [1, 2, 3])
        self.assertEqual(len({m[0].modseq for m in metas}), 3)
        status = await inbox.status()
        self.assertEqual((status.messages, status.uidnext), (3, 4))
        for n, uid in enumerate(await inbox.uids()):
            self.assertEqual(await (await inbox.open_message(uid)).read(), make_message(n))
        stray = await db.read(lambda conn: conn.exec_driver_sql(
            "SELECT count(*) FROM keywords WHERE keyword = 'stray'").scalar())
        self.assertEqual(stray, 0)


    async def backend(self):
        path = os.path.join(os.path.abspath(self.mktemp()), "mail.db")
        os.makedirs(os.path.dirname(path))
        backend = open_backend("sqlite:" + path)
        self.addCleanup(backend.close)
        await backend.ready()
        return backend

    async def test_prepared_in_the_writing_thread_outside_the_transaction(self) -> None:
        backend = await self.backend()
        db = backend.db
        seen = []

        def prepare():
            # Outside any transaction: another writer can take the lock.
            other = sqlite3.connect(str(db.url.database), timeout=5)
            try:
                other.execute("BEGIN IMMEDIATE")
                other.execute("ROLLBACK")
            finally:
                other.close()
            seen.append(threading.get_ident())
            return "prepared"

        def write(conn, first, second):
            seen.append(threading.get_ident())
            return first, second

        self.assertEqual(await db.write_grouped(write, "given", prepare=prepare),
                         ("given", "prepared"))
        self.assertEqual(len(set(seen)), 1)

    async def test_prepared_writes_queued_behind_a_writer_share_its_next_commit(self) -> None:
        backend = await self.backend()
        db = backend.db
        inbox = await (await backend.open_store("alice")).get_mailbox("INBOX")
        commits: list[int] = []
        event.listen(db.engine, "commit", lambda conn: commits.append(1))
        entered, release = threading.Event(), threading.Event()

        def hold(conn) -> None:
            entered.set()
            release.wait(30)

        held = db.write(hold)
        await threads.deferToThread(entered.wait, 30)
        writes = [db.write_grouped(_append_txn, inbox.mailbox_id, prepare=lambda n=n: _prepare(
            [AppendRequest(make_message(n))], False)) for n in range(3)]
        # Each is prepared, finds the mutex held and is left queued.
        for _ in range(500):
            if len(db._grouped) == 3:
                break
            await deferLater(reactor, 0.01, lambda: None)
        self.assertEqual(len(db._grouped), 3)
        release.set()
        await held
        metas = [await d for d in writes]
        self.assertEqual(sorted(m[0].uid for m in metas), [1, 2, 3])
        self.assertEqual(len(commits), 2)
        for uid in (1, 2, 3):
            self.assertIn(await (await inbox.open_message(uid)).read(),
                          [make_message(n) for n in range(3)])

    async def test_failed_preparation_writes_nothing(self) -> None:
        backend = await self.backend()
        calls = []

        def prepare():
            raise ValueError("unparsable")

        with self.assertRaises(ValueError):
            await backend.db.write_grouped(lambda conn, value: calls.append(value),
                                           prepare=prepare)
        self.assertEqual(calls, [])

    async def test_a_write_alone_that_fails_leaves_nothing(self) -> None:
        backend = await self.backend()
        inbox = await (await backend.open_store("alice")).get_mailbox("INBOX")
        await inbox.append([AppendRequest(make_message(1))])

        def broken(conn) -> None:
            conn.execute(insert(keywords).values(message_id=1, keyword="stray"))
            raise ValueError("refused")

        with self.assertRaises(ValueError):
            await backend.db.write_grouped(broken)
        stray = await backend.db.read(lambda conn: conn.exec_driver_sql(
            "SELECT count(*) FROM keywords WHERE keyword = 'stray'").scalar())
        self.assertEqual(stray, 0)
        # The writer goes on.
        [meta] = await inbox.append([AppendRequest(make_message(2))])
        self.assertEqual(meta.uid, 2)


class ConcurrentAppends(IMAPServerTestCase):
    """Eight connections APPENDing at once: every message kept, each UID its own."""

    store = "sqlite"

    async def test_every_acknowledged_append_is_its_message(self) -> None:
        clients, per = 8, 5
        go = threading.Barrier(clients)

        def append_many(k: int) -> dict[int, bytes]:
            client = imaplib.IMAP4("127.0.0.1", self.port, timeout=30)
            client.login("alice", "wonderland")
            go.wait(30)
            given = {}
            for j in range(per):
                content = make_message(k * 100 + j)
                typ, data = client.append("INBOX", None, None, content)
                assert typ == "OK", data
                uid = int(re.search(rb"APPENDUID \d+ (\d+)", data[0]).group(1))
                given[uid] = content
            client.logout()
            return given

        results = await threads.deferToThread(
            lambda: _in_threads([lambda k=k: append_many(k) for k in range(clients)]))
        given = {uid: content for part in results for uid, content in part.items()}
        self.assertEqual(len(given), clients * per)
        inbox = await (await self.backend.open_store("alice")).get_mailbox("INBOX")
        self.assertEqual(sorted(await inbox.uids()), sorted(given))
        for uid, content in given.items():
            self.assertEqual(await (await inbox.open_message(uid)).read(), content)
        status = await inbox.status()
        self.assertEqual(status.messages, clients * per)


def _in_threads(functions) -> list:
    """Run C{functions} each in a thread of its own; their results, in order."""
    results: list = [None] * len(functions)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            results[i] = functions[i]()
        except BaseException as e:  # noqa: BLE001 - re-raised below
            errors.append(e)

    workers = [threading.Thread(target=run, args=(i,)) for i in range(len(functions))]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    if errors:
        raise errors[0]
    return results
