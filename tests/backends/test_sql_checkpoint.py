"""
WAL checkpoints of the SQLite store: SQLite's own (inside the commit that
crosses its threshold) is off, the store's runs in its thread pool once the
log is long, never inside a write, and a process killed while one runs
loses no acknowledged message and leaves a sound database.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import sys
import threading

from twisted.internet import reactor, threads
from twisted.internet.task import deferLater
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial import unittest

import twisted_mailhub
from twisted_mailhub.backends.sql import engine, open_backend
from twisted_mailhub.backends.sql.engine import CHECKPOINT_FRAMES, wal_frames
from twisted_mailhub.model import AppendRequest
from twisted_mailhub.testing import make_message

#: A message body of about 1.5 times the checkpoint threshold's pages.
LARGE = b"x" * (CHECKPOINT_FRAMES * 6 * 1024) + b"\r\n"


def _env() -> dict[str, str]:
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(twisted_mailhub.__file__))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    return env


class WalFrames(unittest.TestCase):

    def test_counts_frames_not_yet_checkpointed(self) -> None:
        path = os.path.join(os.path.abspath(self.mktemp()), "plain.db")
        os.makedirs(os.path.dirname(path))
        self.assertIsNone(wal_frames(path + "-shm"))
        db = sqlite3.connect(path, isolation_level=None)
        self.addCleanup(db.close)
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA wal_autocheckpoint = 0")
        db.execute("CREATE TABLE t (x BLOB)")
        before = wal_frames(path + "-shm")
        db.execute("INSERT INTO t VALUES (zeroblob(100000))")
        after = wal_frames(path + "-shm")
        # About 25 pages of 4 KiB, plus the table's own.
        self.assertGreaterEqual(after - before, 24)
        busy, frames, done = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        self.assertEqual((busy, done), (0, frames))
        self.assertEqual(wal_frames(path + "-shm"), 0)

    def test_not_a_wal_index(self) -> None:
        path = os.path.abspath(self.mktemp())
        with open(path, "wb") as f:
            f.write(b"\0" * 200)
        self.assertIsNone(wal_frames(path))


class BackgroundCheckpoints(unittest.TestCase):

    async def backend(self):
        path = os.path.join(os.path.abspath(self.mktemp()), "mail.db")
        os.makedirs(os.path.dirname(path))
        backend = open_backend("sqlite:" + path)
        self.addCleanup(backend.close)
        await backend.ready()
        return backend, path

    async def test_sqlite_does_not_checkpoint_in_the_commit(self) -> None:
        backend, _ = await self.backend()
        value = await backend.db.read(
            lambda conn: conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar())
        self.assertEqual(value, 0)

    async def test_long_log_is_checkpointed_after_the_write(self) -> None:
        backend, path = await self.backend()
        inbox = await (await backend.open_store("alice")).get_mailbox("INBOX")
        db = backend.db
        # The checkpoint waits until the APPEND has been answered.
        started, release = threading.Event(), threading.Event()
        checkpoint = db.checkpoint

        def held_checkpoint():
            started.set()
            release.wait(30)
            return checkpoint()

        db.checkpoint = held_checkpoint
        [meta] = await inbox.append([AppendRequest(make_message(1, LARGE))])
        # Acknowledged with the log still long: no checkpoint in the commit.
        self.assertGreaterEqual(wal_frames(path + "-shm"), CHECKPOINT_FRAMES)
        self.assertTrue(await threads.deferToThread(started.wait, 30))
        release.set()
        for _ in range(300):
            if db._checkpoint_running is None:
                break
            await deferLater(reactor, 0.01, lambda: None)
        self.assertLess(wal_frames(path + "-shm"), CHECKPOINT_FRAMES)
        # Another connection finds the pages copied into the database file.
        other = sqlite3.connect(path)
        self.addCleanup(other.close)
        busy, frames, done = other.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        self.assertEqual(busy, 0)
        self.assertLess(frames - done, CHECKPOINT_FRAMES)
        self.assertEqual(await (await inbox.open_message(meta.uid)).read(),
                         make_message(1, LARGE))

    async def test_short_log_is_left_alone(self) -> None:
        backend, path = await self.backend()
        inbox = await (await backend.open_store("alice")).get_mailbox("INBOX")
        calls = []
        checkpoint = backend.db.checkpoint
        backend.db.checkpoint = lambda: calls.append(1) or checkpoint()
        await inbox.append([AppendRequest(make_message(n)) for n in range(3)])
        # A due checkpoint is started before the write's result is given.
        self.assertFalse(backend.db._checkpoint_pending)
        await deferLater(reactor, 0.05, lambda: None)
        self.assertEqual(calls, [])
        self.assertGreater(wal_frames(path + "-shm"), 0)

    async def test_what_a_long_log_keeps_is_checkpointed_under_the_mutex(self) -> None:
        backend, path = await self.backend()
        db = backend.db
        self.patch(engine, "CHECKPOINT_FORCE_FRAMES", 1)
        inbox = await (await backend.open_store("alice")).get_mailbox("INBOX")
        await inbox.append([AppendRequest(make_message(1))])
        # A reader on that snapshot keeps the next APPEND's frames in the
        # log through the first pass, beside writers.
        reader = sqlite3.connect(path, isolation_level=None)
        self.addCleanup(reader.close)
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM messages").fetchall()
        await inbox.append([AppendRequest(make_message(2))])
        passes: list[bool] = []
        connect = db.engine.connect

        def traced():
            conn = connect()
            conn.connection.driver_connection.set_trace_callback(
                lambda sql: passes.append(db._write_lock.locked())
                if "wal_checkpoint" in sql else None)
            return conn

        db.engine.connect = traced
        try:
            busy, frames, done = await threads.deferToThread(db.checkpoint)
        finally:
            db.engine.connect = connect
        self.assertEqual(passes, [False, True])
        self.assertLess(done, frames)

    async def test_log_written_during_the_checkpoint_starts_again(self) -> None:
        backend, path = await self.backend()
        db = backend.db
        self.patch(engine, "CHECKPOINT_FORCE_FRAMES", 1)
        inbox = await (await backend.open_store("alice")).get_mailbox("INBOX")
        await inbox.append([AppendRequest(make_message(1))])
        real_state = engine.wal_state

        def written_meanwhile(shm_path):
            # Another APPEND commits while the first pass copies.
            if not written:
                written.append(1)
                other = sqlite3.connect(path, isolation_level=None)
                other.execute("INSERT INTO keywords VALUES (1, 'meanwhile')")
                other.close()
            return real_state(shm_path)

        written: list[int] = []
        self.patch(engine, "wal_state", written_meanwhile)
        await threads.deferToThread(db.checkpoint)
        self.assertEqual(written, [1])
        # Everything is in the database file, so the next commit writes
        # the log from its beginning again.
        self.assertEqual(wal_frames(path + "-shm"), 0)
        await inbox.append([AppendRequest(make_message(2))])
        frames, _ = real_state(path + "-shm")
        self.assertLess(frames, 100)

    async def test_stop_waits_for_a_running_checkpoint(self) -> None:
        backend, path = await self.backend()
        inbox = await (await backend.open_store("alice")).get_mailbox("INBOX")
        db = backend.db
        started, release = threading.Event(), threading.Event()
        checkpoint = db.checkpoint
        done = []

        def slow_checkpoint():
            started.set()
            release.wait(30)
            result = checkpoint()
            done.append(result)
            return result

        db.checkpoint = slow_checkpoint
        await inbox.append([AppendRequest(make_message(1, LARGE))])
        self.assertTrue(await threads.deferToThread(started.wait, 30))
        closing = backend.close()
        await deferLater(reactor, 0.05, lambda: None)
        self.assertEqual(done, [])
        release.set()
        await closing
        self.assertEqual(len(done), 1)

    async def test_killed_during_checkpoint_keeps_acknowledged_messages(self) -> None:
        path = os.path.join(os.path.abspath(self.mktemp()), "mail.db")
        os.makedirs(os.path.dirname(path))
        running = getProcessOutputAndValue(
            sys.executable, ["-c", _KILLED_IN_CHECKPOINT, path], env=_env())
        # A death by a signal fails with (out, err, signal number).
        running.addErrback(lambda failure: (*failure.value[:2], -failure.value[2]))
        out, err, code = await running
        self.assertEqual(code, -signal.SIGKILL, err)
        acknowledged = [int(line) for line in out.split()]
        self.assertEqual(len(acknowledged), 6, err)
        # The log was not checkpointed when the process died.
        self.assertTrue(os.path.exists(path + "-wal"))

        backend = open_backend("sqlite:" + path)
        self.addCleanup(backend.close)
        inbox = await (await backend.open_store("alice")).get_mailbox("INBOX")
        uids = await inbox.uids()
        self.assertTrue(set(acknowledged) <= set(uids))
        for n, uid in enumerate(acknowledged):
            self.assertEqual(await (await inbox.open_message(uid)).read(),
                             make_message(n, LARGE))
        check = await backend.db.read(
            lambda conn: conn.exec_driver_sql("PRAGMA integrity_check").scalar())
        self.assertEqual(check, "ok")


# Appends large messages; once a checkpoint is running in the pool (held
# there), the process is killed with SIGKILL right after an acknowledged
# APPEND, with more APPENDs in flight.
_KILLED_IN_CHECKPOINT = r"""
import os, signal, sys, threading
from twisted.internet import defer, task
from twisted_mailhub.backends.sql import open_backend
from twisted_mailhub.backends.sql.engine import CHECKPOINT_FRAMES
from twisted_mailhub.model import AppendRequest
from twisted_mailhub.testing import make_message

LARGE = b"x" * (CHECKPOINT_FRAMES * 6 * 1024) + b"\r\n"

async def main(reactor):
    backend = open_backend("sqlite:" + sys.argv[1])
    inbox = await (await backend.open_store("alice")).get_mailbox("INBOX")
    db = backend.db
    entered = threading.Event()
    checkpoint = db.checkpoint

    def copying():
        entered.set()
        return checkpoint()

    db.checkpoint = copying
    for n in range(6):
        [meta] = await inbox.append([AppendRequest(make_message(n, LARGE))])
        sys.stdout.write("%d\n" % meta.uid)
        sys.stdout.flush()
    entered.wait(30)
    for n in range(6, 9):
        defer.ensureDeferred(inbox.append([AppendRequest(make_message(n, LARGE))]))
    os.kill(os.getpid(), signal.SIGKILL)

task.react(lambda reactor: defer.ensureDeferred(main(reactor)))
"""
