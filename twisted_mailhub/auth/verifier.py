"""
Checking passwords against stored hashes, a bounded number at a time.

A good password scheme is slow and big on purpose: one Argon2id check with
the default parameters takes a few hundred milliseconds and 64 MiB.  Run in
the reactor's shared thread pool (ten threads), a flood of wrong logins
held ten of them at once, 640 MiB, and queued every other threaded job
behind them.  L{PasswordVerifier} runs the slow checks in threads of its
own, at most C{concurrency} at a time; the others wait, in arrival order,
holding only the password and the stored value.

Every check goes through L{PasswordVerifier.verify}: a known user's against
the stored hash, an unknown user's against a dummy of the same scheme and
work factor (L{schemes.dummy_like}).  Both take the same path, the same
queue and the same time, so neither the answer nor its delay says whether
a name exists.

One verifier is shared by every checker of the process (L{default_verifier}),
so IMAP, POP3 and SASL logins count against the same bound.

The queue has two classes: checks for an attempt marked L{SUSPECT} (the
failure throttle marks attempts from an address with recent failures) wait
behind every unmarked one.  A user logging in from a clean address thus
waits for at most the checks already running, not for a flood's backlog.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, TypeVar

from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool

from twisted_mailhub.auth.schemes import UnknownScheme, dummy_like, scheme_of, verify_password

# Schemes cheap enough to check on the reactor thread.
FAST_SCHEMES = frozenset({"PLAIN", "PLAIN.B64", "SHA256", "SHA512", "SSHA256", "SSHA512"})

#: Slow checks at once by default: two Argon2id checks are 128 MiB, and on
#: a small machine they leave a core for everything else.
DEFAULT_CONCURRENCY = 2

_log = Logger()
_T = TypeVar("_T")

#: True while the current login attempt comes from an address with recent
#: failures (set by L{FailureThrottle.attempt}); its checks queue last.
SUSPECT: ContextVar[bool] = ContextVar("mailhub_suspect_attempt", default=False)


def check_password(password: str, stored: str) -> bool:
    """L{verify_password}, with an unknown scheme refused (and logged)."""
    try:
        return verify_password(password, stored)
    except UnknownScheme:
        _log.warn("stored password of a user has an unknown scheme; login refused")
        return False


def _daemon_thread(*args: Any, **kwargs: Any) -> threading.Thread:
    thread = threading.Thread(*args, **kwargs)
    # A password check left running at exit is harmless to abandon; a
    # program that never stops the reactor must still be able to exit.
    thread.daemon = True
    return thread


def _new_pool(size: int) -> ThreadPool:
    pool = ThreadPool(minthreads=0, maxthreads=size, name="mailhub-password")
    pool.threadFactory = _daemon_thread  # type: ignore[assignment]
    return pool


class PasswordVerifier:
    """
    At most C{concurrency} slow password checks at a time, in a thread pool
    of that size; the rest wait in a first-come, first-served queue.

    C{check(password, stored) -> bool} does one check (in a worker thread
    for slow schemes, on the reactor thread for the cheap ones); it is
    L{check_password} unless a test puts in a counting one.  C{reactor}
    defaults to the global reactor.  Checks of attempts marked L{SUSPECT}
    wait behind all others.
    """

    def __init__(
        self,
        concurrency: int = DEFAULT_CONCURRENCY,
        *,
        check: Callable[[str, str], bool] = check_password,
        reactor: Any = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("a password verifier needs a concurrency of at least 1")
        self.concurrency = concurrency
        self.check = check
        self._reactor = reactor
        self._free = concurrency
        # Waiting checks: unmarked attempts first, then suspect ones.
        self._queues: tuple[deque[Deferred], deque[Deferred]] = (deque(), deque())
        self._pool = _new_pool(concurrency)
        self._shutdown_trigger: Any = None

    @property
    def running(self) -> int:
        """Slow checks running now."""
        return self.concurrency - self._free

    @property
    def waiting(self) -> int:
        """Slow checks waiting for a thread."""
        return sum(len(queue) for queue in self._queues)

    async def _acquire(self) -> None:
        if self._free > 0 and not self.waiting:
            self._free -= 1
            return
        queue = self._queues[1 if SUSPECT.get() else 0]

        def cancel(d: Deferred) -> None:
            # A cancelled wait leaves the queue; the Deferred then fails
            # with CancelledError.
            if d in queue:
                queue.remove(d)

        turn: Deferred = Deferred(cancel)
        queue.append(turn)
        # _release hands its slot over: _free is not given back in between.
        await turn

    def _release(self) -> None:
        for queue in self._queues:
            if queue:
                queue.popleft().callback(None)
                return
        self._free += 1

    async def verify(self, password: str, stored: str) -> bool:
        """True if C{password} matches the stored ``{SCHEME}hash`` C{stored}."""
        if scheme_of(stored) in FAST_SCHEMES:
            return self.check(password, stored)
        return await self.run(self.check, password, stored)

    async def verify_unknown(self, password: str, like: str) -> bool:
        """
        Check C{password} for a user that does not exist, at the cost of a
        user whose stored value is C{like}: against a dummy of the same
        scheme and work factor (C{like} may be a bare ``{SCHEME}``, for that
        scheme's defaults).  Always False; it takes the same path, and the
        same place in the queue, as L{verify}.
        """
        if scheme_of(like) in FAST_SCHEMES:
            self.check(password, dummy_like(like))
            return False
        await self.run(self._check_dummy, password, like)
        return False

    def _check_dummy(self, password: str, like: str) -> bool:
        # In the worker thread: making a dummy is as slow as checking one,
        # the first time for each work factor.
        self.check(password, dummy_like(like))
        return False

    async def run(self, function: Callable[..., _T], *args: Any) -> _T:
        """
        Run the blocking C{function(*args)} as one of the bounded jobs (a
        password check, or deriving SCRAM keys, which is as costly).
        """
        await self._acquire()
        try:
            return await deferToThreadPool(self._get_reactor(), self._start(), function, *args)
        finally:
            self._release()

    def _get_reactor(self) -> Any:
        if self._reactor is None:
            from twisted.internet import reactor

            self._reactor = reactor
        return self._reactor

    def _start(self) -> ThreadPool:
        if not self._pool.started:
            # Started on first use and stopped with the reactor, so a
            # verifier never used keeps no threads.
            self._pool.start()
            self._shutdown_trigger = self._get_reactor().addSystemEventTrigger(
                "during", "shutdown", self.stop)
        return self._pool

    def stop(self) -> None:
        """Stop the worker threads (after the running checks); idempotent."""
        if self._shutdown_trigger is not None:
            trigger, self._shutdown_trigger = self._shutdown_trigger, None
            try:
                self._get_reactor().removeSystemEventTrigger(trigger)
            except (ValueError, KeyError):
                pass  # already firing: the reactor is shutting down
        if self._pool.started:
            self._pool.stop()
            # A stopped pool cannot start again; the next use gets a new one.
            self._pool = _new_pool(self.concurrency)


_default: PasswordVerifier | None = None


def default_verifier() -> PasswordVerifier:
    """The verifier every checker uses unless given its own."""
    global _default
    if _default is None:
        _default = PasswordVerifier()
    return _default


def set_default_verifier(verifier: PasswordVerifier | None) -> PasswordVerifier | None:
    """
    Make C{verifier} the process-wide default (C{None}: a fresh one on next
    use), e.g. to choose another concurrency; returns the previous one.
    """
    global _default
    previous, _default = _default, verifier
    return previous
