"""
The dotlocks Dovecot takes on a Maildir folder's files, taken the same way.

C{dovecot-uidlist.lock} excludes every program that assigns UIDs (Dovecot,
other server processes, other threads of this one); this server holds it
for every change of a folder.  A file's dotlock is also how its new
content is written: while it is held, the new content is written to a
private file, fsynced and renamed over the file, and then the lock is
released (L{DotLock.replace}).  C{dovecot-keywords} is
replaced the same way under its own C{.lock}, while the uidlist lock is
held.

While held, the lock holds C{<pid>:<host>} (written before the lock
appears: the contents are linked into place), which Dovecot reads too, so
a lock left by a process that died on this host is broken at once.  A lock
older than C{stale_after} seconds is broken whoever holds it (Dovecot's
own rule, with two minutes).  Breaking moves the lock aside into the
folder's C{tmp/} and removes it only if it is the very file judged stale.

Locks are taken under L{process_lock} of the folder, so a lock naming this
very process is a leftover of an earlier process with the same pid.  Every
wait is bounded by C{timeout} (then L{LockTimeout}).  Everything blocks;
call it off the reactor thread.
"""

from __future__ import annotations

import errno
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from twisted_mailhub.backends.files import replace_file
from twisted_mailhub.backends.mbox.locking import LockTimeout, break_if_stale, process_lock
from twisted_mailhub.errors import MailboxNotFound

POLL_INTERVAL = 0.01

__all__ = ["DotLock", "LockTimeout", "dotlocked", "process_lock"]


class DotLock:
    """A held dotlock of C{path}: replace the file through it, or release it."""

    def __init__(self, path: str, fd: int) -> None:
        self.path = path
        self.lock_path = path + ".lock"
        self._fd: int | None = fd

    @property
    def held(self) -> bool:
        return self._fd is not None

    def replace(self, data: bytes, mode: int = 0o600) -> os.stat_result:
        """
        Make C{data} the content of the locked file, then release the lock:
        written into a private file of the folder's C{tmp/}, fsynced,
        renamed over the file, the directory fsynced.  Returns the new
        file's stat.

        Dovecot writes the new content into the lock itself; this does not,
        so that the lock names its holder until the very end and a process
        killed while writing leaves a lock that is broken at once (a lock
        holding anything else waits out the age rule).
        """
        self._check_held()
        folder = os.path.dirname(self.path)
        spare = os.path.join(folder, "tmp")
        os.makedirs(spare, 0o700, exist_ok=True)
        new = os.path.join(spare, f"{os.path.basename(self.path)}.new."
                                  f"{os.getpid()}.{threading.get_ident()}")
        stat = replace_file(self.path, [data], mode, temporary=new)
        self.release()
        return stat

    def release(self) -> None:
        """Give the lock up without changing the file (idempotent)."""
        if self._fd is None:
            return
        os.close(self._take())
        _unlink_quietly(self.lock_path)

    def _check_held(self) -> None:
        if self._fd is None:
            raise RuntimeError(f"{self.lock_path} is no longer held")

    def _take(self) -> int:
        fd, self._fd = self._fd, None
        if fd is None:
            raise RuntimeError(f"{self.lock_path} is no longer held")
        return fd


@contextmanager
def dotlocked(
    path: str,
    timeout: float,
    stale_after: float,
    on_wait: Callable[[str], None] | None = None,
) -> Iterator[DotLock]:
    """
    Hold the dotlock C{path + ".lock"}; released on exit unless
    L{DotLock.replace} consumed it.  The caller holds the folder's
    L{process_lock}.  Raises L{MailboxNotFound} when the folder is gone.
    """
    lock_path = path + ".lock"
    deadline = time.monotonic() + timeout
    reported = False
    while True:
        try:
            fd = _create_lock(lock_path)
            break
        except FileExistsError:
            if _break_if_stale(lock_path, stale_after):
                continue
        except FileNotFoundError:
            raise MailboxNotFound(f"Mailbox does not exist: {os.path.dirname(path)}")
        if time.monotonic() >= deadline:
            raise LockTimeout(f"Mailbox is locked: {os.path.basename(os.path.dirname(path))}")
        if not reported:
            reported = True
            if on_wait is not None:
                on_wait(path)
        time.sleep(POLL_INTERVAL)
    lock = DotLock(path, fd)
    try:
        yield lock
    finally:
        lock.release()


def _create_lock(lock_path: str) -> int:
    """
    Create the lock holding C{<pid>:<host>} and return a read-write
    descriptor of it, or raise C{FileExistsError}.  The contents are
    written to a file of the folder's C{tmp/} first and linked to the lock
    name, so that a process killed at any moment never leaves an empty lock
    (which only the age rule could break).  Where hard links are not
    allowed, the lock is created with C{O_EXCL} and then written.
    """
    owner = b"%d:%s\n" % (os.getpid(), socket.gethostname().encode("utf-8", "replace"))
    private = os.path.join(os.path.dirname(lock_path), "tmp", (
        f"{os.path.basename(lock_path)}.{socket.gethostname()}.{os.getpid()}."
        f"{threading.get_ident()}"))
    try:
        fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    except FileNotFoundError:
        if not os.path.isdir(os.path.dirname(lock_path)):
            raise
        private = None
    if private is not None:
        try:
            try:
                os.write(fd, owner)
            finally:
                os.close(fd)
            try:
                os.link(private, lock_path)
                return os.open(lock_path, os.O_RDWR)
            except OSError as e:
                if e.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EMLINK):
                    raise
        finally:
            _unlink_quietly(private)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, owner)
    return fd


def _break_if_stale(lock_path: str, stale_after: float) -> bool:
    """
    Break the lock if stale (L{break_if_stale}), moving it aside into the
    folder's C{tmp/}; True if the caller should try again at once.
    """
    spare = os.path.join(os.path.dirname(lock_path), "tmp")

    def aside() -> str:
        os.makedirs(spare, 0o700, exist_ok=True)
        return os.path.join(spare, f"{os.path.basename(lock_path)}.broken."
                                   f"{os.getpid()}.{threading.get_ident()}")

    try:
        return break_if_stale(lock_path, stale_after, aside)
    except FileNotFoundError:
        raise MailboxNotFound(f"Mailbox does not exist: {os.path.dirname(lock_path)}")


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
