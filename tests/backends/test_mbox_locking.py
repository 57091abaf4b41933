"""
Dotlocks of mbox files left by a program that died: broken at once when the
lock names a process of this host that is gone, kept while the process
lives, and aged out as before when the lock names no process or another
host.  The holder is a real child process taking the lock through the
backend's own locking code, killed with SIGKILL while holding it.
"""

from __future__ import annotations

import errno
import imaplib
import os
import signal
import socket
import subprocess
import sys
import textwrap

from twisted.cred.portal import Portal
from twisted.internet import defer, reactor, task, threads
from twisted.trial import unittest

import twisted_mailhub
from twisted_mailhub.auth.checkers import InMemoryChecker
from twisted_mailhub.auth.realm import MailhubRealm
from twisted_mailhub.backends.mbox import MboxBackend, locking
from twisted_mailhub.errors import StoreUnavailable
from twisted_mailhub.imap.protocol import IMAPServerFactory
from twisted_mailhub.model import AppendRequest
from twisted_mailhub.policy import ServerPolicy

HOLDER = textwrap.dedent("""
    import sys, time
    from twisted_mailhub.backends.mbox.locking import locked_mbox
    with locked_mbox(sys.argv[1], timeout=10, stale_after=300) as fd:
        print("locked", flush=True)
        time.sleep(600)
""")

MESSAGE = b"From: a@example.org\nSubject: after the crash\n\nHello.\n"

# Long enough never to be reached when the lock is broken at once; short
# enough that a regression fails fast rather than after the default 30 s.
TIMEOUT = 10.0


class DeadHolderTests(unittest.TestCase):
    def setUp(self) -> None:
        self.root = os.path.abspath(self.mktemp())
        self.waits: list[str] = []

    def make(self, **options) -> MboxBackend:
        options.setdefault("lock_timeout", TIMEOUT)
        backend = MboxBackend(self.root, on_lock_wait=self.waits.append, **options)
        self.addCleanup(lambda: defer.ensureDeferred(backend.close()))
        return backend

    def path(self, *parts: str) -> str:
        return os.path.join(self.root, "alice", *parts)

    def lock_path(self) -> str:
        return self.path("INBOX") + ".lock"

    async def inbox(self, backend: MboxBackend):
        store = await backend.open_store("alice")
        return await store.get_mailbox("INBOX")

    def hold(self) -> subprocess.Popen:
        """A child process holding INBOX's locks through the backend's locking code."""
        env = dict(os.environ)
        source_root = os.path.dirname(os.path.dirname(twisted_mailhub.__file__))
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [source_root, env.get("PYTHONPATH")]))
        holder = subprocess.Popen([sys.executable, "-c", HOLDER, self.path("INBOX")],
                                  stdout=subprocess.PIPE, env=env)
        self.addCleanup(holder.stdout.close)
        self.addCleanup(holder.wait)
        self.addCleanup(lambda: holder.poll() is None and holder.kill())
        self.assertEqual(holder.stdout.readline(), b"locked\n")
        return holder

    def kill(self, holder: subprocess.Popen, reap: bool = True) -> None:
        holder.send_signal(signal.SIGKILL)
        if reap:
            self.assertEqual(holder.wait(), -signal.SIGKILL)
        else:
            # Wait until it has died, but leave it unreaped: a zombie.
            info = os.waitid(os.P_PID, holder.pid, os.WEXITED | os.WNOWAIT)
            self.assertEqual(info.si_status, signal.SIGKILL)

    def lock_owner(self):
        with open(self.lock_path(), "rb") as f:
            return locking.parse_lock(f.read())

    # -- a process killed while holding the lock ---------------------------------

    async def test_lock_of_a_killed_process_is_broken_at_once(self) -> None:
        backend = self.make()
        inbox = await self.inbox(backend)
        holder = self.hold()
        self.assertEqual(self.lock_owner(), (holder.pid, socket.gethostname()))
        self.kill(holder)
        # The dead process's lock is still there, fresh (well under the age rule).
        self.assertTrue(os.path.exists(self.lock_path()))

        [meta] = await inbox.append([AppendRequest(MESSAGE)])
        self.assertEqual(await inbox.uids(), [meta.uid])
        self.assertEqual(self.waits, [])  # not a single wait for the lock
        self.assertFalse(os.path.exists(self.lock_path()))
        # Nothing moved aside while breaking it is left behind either.
        self.assertEqual([n for n in os.listdir(self.path()) if ".lock" in n], [])

    async def test_imap_select_after_the_holder_was_killed(self) -> None:
        backend = self.make()
        await self.inbox(backend)
        portal = Portal(MailhubRealm(backend), [InMemoryChecker({"alice": "secret"})])
        factory = IMAPServerFactory(
            portal, policy=ServerPolicy(auth_failure_delay=0.0, auth_failure_delay_max=0.0))
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        holder = self.hold()
        # Killed and not yet reaped by its parent: a zombie, which holds nothing.
        self.kill(holder, reap=False)

        def select() -> tuple:
            client = imaplib.IMAP4("127.0.0.1", port.getHost().port, timeout=TIMEOUT * 2)
            try:
                client.login("alice", "secret")
                return client.select("INBOX")
            finally:
                client.logout()

        status, data = await threads.deferToThread(select)
        self.assertEqual((status, data), ("OK", [b"0"]))
        self.assertEqual(self.waits, [])
        self.assertFalse(os.path.exists(self.lock_path()))
        await task.deferLater(reactor, 0, lambda: None)

    # -- locks that must be respected -------------------------------------------

    async def test_lock_of_a_live_process_is_respected(self) -> None:
        backend = self.make(lock_timeout=0.2, stale_lock_after=60)
        inbox = await self.inbox(backend)
        holder = self.hold()
        await self.assertFailure(
            defer.ensureDeferred(inbox.append([AppendRequest(MESSAGE)])), StoreUnavailable)
        self.assertEqual(self.waits, [self.path("INBOX")])
        self.assertEqual(self.lock_owner(), (holder.pid, socket.gethostname()))
        self.kill(holder)
        await inbox.append([AppendRequest(MESSAGE)])
        self.assertEqual(len(await inbox.uids()), 1)

    async def test_locks_naming_no_process_or_another_host_follow_the_age_rule(self) -> None:
        backend = self.make(lock_timeout=0.2, stale_lock_after=60)
        inbox = await self.inbox(backend)
        dead = self.hold()
        self.kill(dead)
        for contents in (b"", b"%d\n" % dead.pid, b"%d\nsomewhere.else.example\n" % dead.pid,
                         b"%d:somewhere.else.example\n" % dead.pid):
            with open(self.lock_path(), "wb") as f:
                f.write(contents)
            # Fresh: kept, since nothing says its owner is gone.
            await self.assertFailure(
                defer.ensureDeferred(inbox.append([AppendRequest(MESSAGE)])), StoreUnavailable)
            self.assertTrue(os.path.exists(self.lock_path()), contents)
            # Older than stale_lock_after: broken.
            os.utime(self.lock_path(), (1, 1))
            await inbox.append([AppendRequest(MESSAGE)])
            self.assertFalse(os.path.exists(self.lock_path()), contents)
        self.assertEqual(len(await inbox.uids()), 4)


class BreakingRaceTests(unittest.TestCase):
    """Two programs breaking one stale lock must not remove a third's fresh one."""

    def setUp(self) -> None:
        self.dir = os.path.abspath(self.mktemp())
        os.makedirs(self.dir)
        self.name = os.path.join(self.dir, "INBOX.lock")

    def write(self, data: bytes) -> None:
        with open(self.name + ".new", "wb") as f:
            f.write(data)
        os.rename(self.name + ".new", self.name)

    def read(self) -> bytes:
        with open(self.name, "rb") as f:
            return f.read()

    def test_fresh_lock_taken_after_the_judgement_survives(self) -> None:
        self.write(locking.lock_contents(pid=2**22 + 12345))  # no such process
        fresh = locking.lock_contents(pid=os.getppid())
        judge = locking.lock_is_stale

        def judged_then_replaced(data, mtime, stale_after):
            verdict = judge(data, mtime, stale_after)
            # Meanwhile another program broke the stale lock and a third
            # took the mailbox.
            os.unlink(self.name)
            self.write(fresh)
            return verdict

        self.patch(locking, "lock_is_stale", judged_then_replaced)
        self.assertTrue(locking._remove_if_stale(self.name, 300))
        self.assertEqual(self.read(), fresh)
        self.assertEqual(os.listdir(self.dir), ["INBOX.lock"])

    def test_stale_lock_is_removed_and_nothing_left_aside(self) -> None:
        self.write(locking.lock_contents(pid=2**22 + 12345))
        self.assertTrue(locking._remove_if_stale(self.name, 300))
        self.assertEqual(os.listdir(self.dir), [])

    def test_live_lock_is_kept(self) -> None:
        self.write(locking.lock_contents(pid=os.getppid()))
        self.assertFalse(locking._remove_if_stale(self.name, 300))
        self.assertEqual(os.listdir(self.dir), ["INBOX.lock"])

    def test_lock_of_a_reused_pid_is_stale(self) -> None:
        # The holder died and its pid went to a process started after the
        # lock was written (pids wrap quickly where many processes run):
        # that process cannot be the holder.
        later = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        self.addCleanup(later.wait)
        self.addCleanup(later.kill)
        self.write(locking.lock_contents(pid=later.pid))
        written = os.stat(self.name).st_mtime - 30
        os.utime(self.name, (written, written))
        self.assertTrue(locking._remove_if_stale(self.name, 300))
        self.assertEqual(os.listdir(self.dir), [])


class LockContentsTests(unittest.TestCase):
    def test_parse(self) -> None:
        parse = locking.parse_lock
        self.assertEqual(parse(locking.lock_contents(pid=42, host="mx1")), (42, "mx1"))
        self.assertEqual(parse(b"42:mx1\n"), (42, "mx1"))
        self.assertEqual(parse(b"  42\n"), (42, None))
        self.assertEqual(parse(b""), (None, None))
        self.assertEqual(parse(b"\x00\x00\x00\x2a"), (None, None))
        self.assertEqual(parse(b"0\nmx1\n"), (None, "mx1"))
        self.assertEqual(parse(b"-1\nmx1\n"), (None, "mx1"))

    def test_process_gone(self) -> None:
        self.assertFalse(locking.process_gone(os.getpid()))
        self.assertFalse(locking.process_gone(0))
        self.assertTrue(locking.process_gone(2**22 + 12345))
        # A live process is the holder of a lock written after it started,
        # and cannot be of one written before.
        import time

        self.assertFalse(locking.process_gone(os.getpid(), since=time.time()))
        self.assertTrue(locking.process_gone(os.getpid(), since=0.0))


class LockCreationTests(unittest.TestCase):
    """A dotlock exists only with its contents: never empty, whenever its taker dies."""

    def setUp(self) -> None:
        self.dir = os.path.abspath(self.mktemp())
        os.makedirs(self.dir)
        self.name = os.path.join(self.dir, "INBOX.lock")

    def test_created_whole_and_nothing_left_beside_it(self) -> None:
        locking._create_with_contents(self.name, b"42\nmx1\n")
        with open(self.name, "rb") as f:
            self.assertEqual(f.read(), b"42\nmx1\n")
        self.assertEqual(os.listdir(self.dir), ["INBOX.lock"])
        with self.assertRaises(FileExistsError):
            locking._create_with_contents(self.name, b"43\nmx1\n")
        self.assertEqual(os.listdir(self.dir), ["INBOX.lock"])

    def test_without_hard_links(self) -> None:
        def no_links(source, target):
            raise OSError(errno.EPERM, "Operation not permitted")

        self.patch(os, "link", no_links)
        locking._create_with_contents(self.name, b"42\nmx1\n")
        with open(self.name, "rb") as f:
            self.assertEqual(f.read(), b"42\nmx1\n")
        self.assertEqual(os.listdir(self.dir), ["INBOX.lock"])
