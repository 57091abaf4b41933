"""
Locking an mbox file the way other mail programs do.

Writers and readers of one mbox file take, in this order:

  1. a lock inside this process (POSIX record locks do not exclude the
     threads of one process);
  2. the dotlock C{<file>.lock}, created with C{O_EXCL}; one older than
     C{stale_after} seconds is left over from a crashed program and is
     removed (procmail and Postfix do the same);
  3. an exclusive C{fcntl} record lock on the file itself.

Every wait is bounded: after C{timeout} seconds L{LockTimeout} is raised.
These functions block; call them off the reactor thread.
"""

from __future__ import annotations

import errno
import fcntl
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

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
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            if _remove_if_stale(name, stale_after):
                continue
            waiter.wait(deadline, "dotlock")
            continue
        except FileNotFoundError:
            raise MailboxNotFound(f"Mailbox does not exist: {os.path.basename(path)}")
        try:
            os.write(fd, b"%d\n" % os.getpid())
        finally:
            os.close(fd)
        break
    try:
        yield
    finally:
        try:
            os.unlink(name)
        except FileNotFoundError:
            pass


def _remove_if_stale(name: str, stale_after: float) -> bool:
    try:
        age = time.time() - os.stat(name).st_mtime
    except FileNotFoundError:
        return True
    if age <= stale_after:
        return False
    try:
        os.unlink(name)
    except FileNotFoundError:
        pass
    return True


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
