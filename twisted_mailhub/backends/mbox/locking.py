"""
Locking an mbox file the way other mail programs do.

Writers and readers of one mbox file take, in this order:

  1. a lock inside this process (POSIX record locks do not exclude the
     threads of one process);
  2. the dotlock C{<file>.lock}, created with its contents (a link to a
     file of a unique name, or C{O_EXCL}), holding our process id and host
     name (``<pid>\\n<host>\\n``).  A dotlock left over from a program that
     crashed is broken at once when it names this host and a process that
     no longer exists (or a zombie); any dotlock older
     than C{stale_after} seconds is broken too (procmail and Postfix do the
     same), which is all that can be done for one naming no process (some
     programs leave it empty) or another host on a shared spool;
  3. an exclusive C{fcntl} record lock on the file itself.

Every wait is bounded: after C{timeout} seconds L{LockTimeout} is raised.
These functions block; call them off the reactor thread.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from twisted_mailhub.backends.files import process_gone
from twisted_mailhub.backends.mbox.naming import lock_file
from twisted_mailhub.errors import MailboxNotFound, StoreUnavailable

POLL_INTERVAL = 0.02

_registry_lock = threading.Lock()
_process_locks: dict[str, threading.Lock] = {}


class LockTimeout(StoreUnavailable):
    """The mailbox is locked by another program; try again later."""


def process_lock(path: str) -> threading.Lock:
    """The lock that serialises this process's threads on C{path}."""
    with _registry_lock:
        lock = _process_locks.get(path)
        if lock is None:
            lock = _process_locks[path] = threading.Lock()
        return lock


@contextmanager
def locked_mbox(
    path: str,
    timeout: float,
    stale_after: float,
    on_wait: Callable[[str], None] | None = None,
) -> Iterator[int]:
    """
    Hold all three locks on the mbox file C{path} and yield a read-write
    descriptor of it.  Raises L{MailboxNotFound} if the file does not
    exist, L{LockTimeout} if the locks are not had within C{timeout}.
    """
    deadline = time.monotonic() + timeout
    waited = _Waiter(path, on_wait)
    thread_lock = process_lock(path)
    if not thread_lock.acquire(timeout=max(timeout, 0.001)):
        raise LockTimeout(f"Mailbox is busy: {os.path.basename(path)}")
    try:
        with _dotlock(path, deadline, stale_after, waited):
            fd = _fcntl_locked(path, deadline, waited)
            try:
                yield fd
            finally:
                os.close(fd)
    finally:
        thread_lock.release()


@contextmanager
def locked_file(path: str, timeout: float) -> Iterator[int]:
    """
    A process lock plus an C{fcntl} lock on the private file C{path}
    (created if missing); for the backend's own files, which no other
    program touches, so no dotlock.
    """
    deadline = time.monotonic() + timeout
    thread_lock = process_lock(path)
    if not thread_lock.acquire(timeout=max(timeout, 0.001)):
        raise LockTimeout(f"Busy: {os.path.basename(path)}")
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            _fcntl_wait(fd, path, deadline, _Waiter(path, None))
            yield fd
        finally:
            os.close(fd)
    finally:
        thread_lock.release()


class _Waiter:
    """Sleeps between attempts and reports the first wait once."""

    def __init__(self, path: str, on_wait: Callable[[str], None] | None) -> None:
        self.path = path
        self.on_wait = on_wait
        self.reported = False

    def wait(self, deadline: float, what: str) -> None:
        if time.monotonic() >= deadline:
            raise LockTimeout(f"Mailbox is locked ({what}): {os.path.basename(self.path)}")
        if not self.reported:
            self.reported = True
            if self.on_wait is not None:
                self.on_wait(self.path)
        time.sleep(POLL_INTERVAL)


@contextmanager
def _dotlock(path: str, deadline: float, stale_after: float, waiter: _Waiter) -> Iterator[None]:
    name = lock_file(path)
    while True:
        try:
            _create_with_contents(name, lock_contents())
        except FileExistsError:
            if _remove_if_stale(name, stale_after):
                continue
            waiter.wait(deadline, "dotlock")
            continue
        except FileNotFoundError:
            raise MailboxNotFound(f"Mailbox does not exist: {os.path.basename(path)}")
        break
    try:
        yield
    finally:
        try:
            os.unlink(name)
        except FileNotFoundError:
            pass


def _create_with_contents(name: str, contents: bytes) -> None:
    """
    Create the file C{name} holding C{contents}, or raise L{FileExistsError}.
    The contents go into a private file (a leading dot: the backend's own)
    linked to C{name}, so that a process killed at any moment never leaves
    an empty dotlock, which only the age rule could break.  Where hard links
    are not allowed, C{O_EXCL} creation is used instead.
    """
    directory, base = os.path.split(name)
    private = os.path.join(
        directory, f".{base}.{socket.gethostname()}.{os.getpid()}.{threading.get_ident()}")
    fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        try:
            os.write(fd, contents)
        finally:
            os.close(fd)
        try:
            os.link(private, name)
            return
        except FileExistsError:
            raise
        except OSError as e:
            if e.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EMLINK):
                raise
    finally:
        try:
            os.unlink(private)
        except FileNotFoundError:
            pass
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        os.write(fd, contents)
    finally:
        os.close(fd)


def lock_contents(pid: int | None = None, host: str | None = None) -> bytes:
    """What a dotlock of ours holds: the process id, then the host name."""
    pid = os.getpid() if pid is None else pid
    host = socket.gethostname() if host is None else host
    return b"%d\n%s\n" % (pid, host.encode("utf-8", "replace"))


def parse_lock(data: bytes) -> tuple[int | None, str | None]:
    """
    The process id and host name a dotlock names, either as ours (pid and
    host on two lines), as ``pid:host`` on one line, or a bare pid; C{None}
    for what is missing or unreadable (an empty lock, a binary pid).
    """
    lines = data.decode("utf-8", "replace").split("\n")
    first = lines[0].strip()
    host: str | None = None
    if ":" in first:
        first, _, host = first.partition(":")
    elif len(lines) > 1 and lines[1].strip():
        host = lines[1].strip()
    pid = int(first) if first.isdigit() and 0 < int(first) < 2**31 else None
    return pid, (host.strip() or None) if host is not None else None


def lock_is_stale(data: bytes, mtime: float, stale_after: float) -> bool:
    """
    Whether a dotlock holding C{data}, last written at C{mtime}, is stale:
    its process (on this host) is gone or is not the one that wrote it, or
    it is older than C{stale_after} seconds.  Shared by the mbox and Maildir
    stores.
    """
    pid, host = parse_lock(data)
    if pid is not None and host == socket.gethostname():
        # Our own pid is a process before us that had it (pids repeat, in a
        # container at every start): this process takes its dotlocks under
        # the process lock of the file, which the caller holds.
        if pid == os.getpid() or process_gone(pid, since=mtime):
            return True
    # A live owner, or none to ask (an empty lock, another host on a shared
    # spool): the age rule.  It also ends a lock whose pid was reused.
    return time.time() - mtime > stale_after


def _remove_if_stale(name: str, stale_after: float) -> bool:
    """
    Break the dotlock C{name} if it is stale (L{break_if_stale}), moving it
    aside to a dot name in the same directory: the backend's own, never a
    mailbox.
    """
    aside = os.path.join(os.path.dirname(name), ".%s.broken.%d.%d" % (
        os.path.basename(name), os.getpid(), threading.get_ident()))
    return break_if_stale(name, stale_after, lambda: aside)


def break_if_stale(name: str, stale_after: float, aside: Callable[[], str]) -> bool:
    """
    Break the lock file C{name} if it is stale (L{lock_is_stale}); True if
    the caller should try to take it again (broken, or gone meanwhile).
    Shared by the mbox and Maildir stores.

    Another program may break the same lock at the same moment and a third
    take a fresh one: the lock judged stale is moved aside by C{rename},
    which is atomic, to the name C{aside()} gives (on the same file system,
    in a directory that exists), and removed only if what was moved is the
    very file judged (same inode, same contents).  If the rename caught a
    fresh lock instead, it is linked back where it was.  A
    C{FileNotFoundError} from C{aside()}, or from a rename into a directory
    that is gone, is raised.
    """
    judged = _read_lock(name)
    if judged is None:
        return True
    st, data = judged
    if not lock_is_stale(data, st.st_mtime, stale_after):
        return False
    moved_to = aside()
    try:
        os.rename(name, moved_to)
    except FileNotFoundError:
        if not os.path.isdir(os.path.dirname(moved_to) or "."):
            raise
        return True  # someone else broke it first
    try:
        found = _read_lock(moved_to)
        if found is None:
            return True
        moved, moved_data = found
        same = (moved.st_ino, moved.st_dev, moved.st_mtime_ns, moved_data) == (
            st.st_ino, st.st_dev, st.st_mtime_ns, data)
        if not same:
            # A fresh lock taken after the stale one was broken by another:
            # put it back (unless yet another lock already took the name).
            try:
                os.link(moved_to, name)
            except FileExistsError:
                pass
    finally:
        try:
            os.unlink(moved_to)
        except FileNotFoundError:
            pass
    return True


def _read_lock(name: str) -> tuple[os.stat_result, bytes] | None:
    """The stat and the first octets of the lock file C{name}; C{None} if there is none."""
    try:
        fd = os.open(name, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        return os.fstat(fd), os.read(fd, 256)
    finally:
        os.close(fd)


def _fcntl_locked(path: str, deadline: float, waiter: _Waiter) -> int:
    while True:
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            raise MailboxNotFound(f"Mailbox does not exist: {os.path.basename(path)}")
        try:
            _fcntl_wait(fd, path, deadline, waiter)
            # A program that does not take the dotlock may have renamed a
            # new file over the one locked; the lock must be on the file
            # the path names now.
            try:
                current = os.stat(path).st_ino
            except FileNotFoundError:
                raise MailboxNotFound(f"Mailbox does not exist: {os.path.basename(path)}")
            if os.fstat(fd).st_ino == current:
                return fd
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)


def _fcntl_wait(fd: int, path: str, deadline: float, waiter: _Waiter) -> None:
    while True:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.EACCES):
                raise
        waiter.wait(deadline, "fcntl")
