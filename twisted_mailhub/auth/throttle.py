"""
Slowing down password guessing, and logging failures for fail2ban.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from twisted.internet.defer import DeferredLock
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import deferLater
from twisted.logger import Logger

from twisted_mailhub.auth.verifier import SUSPECT

_log = Logger(namespace="twisted_mailhub.auth")


class FailureThrottle:
    """
    Per-address delay before answering an authentication attempt.

    No delay without recent failures; C{base_delay} after one, doubled for
    each further failure, capped at C{max_delay}.  A success clears the
    address.  An address's record is forgotten C{forget_after} seconds after
    its last failure, so the table does not grow without bound.

    Protocols run each attempt inside L{attempt}, which takes the attempts
    of one address one at a time, in arrival order, each after the delay
    its predecessors' failures earned.  Thirty attempts sent at once are so
    answered as slowly as thirty sent one after another, and an address
    never has more than one password check running: a flood from one
    address cannot crowd out the logins from other addresses.  Attempts
    from an address with recent failures are marked L{SUSPECT}, and the
    password verifier serves them after all others.
    """

    def __init__(
        self,
        clock: IReactorTime,
        base_delay: float = 1.0,
        max_delay: float = 30.0,
        forget_after: float = 600.0,
    ) -> None:
        self.clock = clock
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.forget_after = forget_after
        self._failures: dict[str, tuple[int, float]] = {}
        self._next_sweep = clock.seconds() + forget_after
        # One lock per address with an attempt running or waiting; dropped
        # when the last one is done.
        self._turns: dict[str, DeferredLock] = {}

    def _count(self, address: str) -> int:
        entry = self._failures.get(address)
        if entry is None:
            return 0
        count, last = entry
        if self.clock.seconds() - last >= self.forget_after:
            del self._failures[address]
            return 0
        return count

    def _sweep(self) -> None:
        now = self.clock.seconds()
        if now < self._next_sweep:
            return
        self._next_sweep = now + self.forget_after
        for address, (_, last) in list(self._failures.items()):
            if now - last >= self.forget_after:
                del self._failures[address]

    def delay_for(self, address: str) -> float:
        """Seconds to wait before answering the next attempt from C{address}."""
        count = self._count(address)
        if count == 0:
            return 0.0
        # Cap the exponent too, so a long streak cannot overflow the float.
        return min(self.base_delay * 2.0 ** min(count - 1, 64), self.max_delay)

    @asynccontextmanager
    async def attempt(self, address: str) -> AsyncIterator[None]:
        """
        Wait for the turn of one authentication attempt from C{address}:
        until the attempts from there that came before are done, then
        L{delay_for} the address.  The body checks the credentials and calls
        L{record_failure} or L{record_success}; the next attempt from the
        address starts when it exits.  Cancelling the wait gives up the place.
        """
        turn = self._turns.get(address)
        if turn is None:
            turn = self._turns[address] = DeferredLock()
        try:
            await turn.acquire()
            try:
                delay = self.delay_for(address)
                if delay > 0:
                    await deferLater(self.clock, delay, lambda: None)
                # Checks for an address that has failed lately queue behind
                # everyone else's (see the verifier).
                marked = SUSPECT.set(self._count(address) > 0)
                try:
                    yield
                finally:
                    SUSPECT.reset(marked)
            finally:
                turn.release()
        finally:
            if not turn.locked and not turn.waiting and self._turns.get(address) is turn:
                del self._turns[address]

    def pending(self, address: str) -> int:
        """Attempts from C{address} running or waiting in L{attempt}."""
        turn = self._turns.get(address)
        if turn is None:
            return 0
        return int(turn.locked) + len(turn.waiting)

    def record_failure(self, address: str) -> None:
        """Count a failed attempt from C{address}."""
        self._sweep()
        self._failures[address] = (self._count(address) + 1, self.clock.seconds())

    def record_success(self, address: str) -> None:
        """Forget C{address}'s failures."""
        self._failures.pop(address, None)

    def __len__(self) -> int:
        return len(self._failures)


_UNSAFE = re.compile(r"[\x00-\x1f\x7f<>\s]")


def _clean(value: str, limit: int = 128) -> str:
    # Client-chosen text must not forge a second log line or field for a
    # log scanner: no control characters, spaces or angle brackets.
    return _UNSAFE.sub("?", value[:limit])


def log_auth_failure(
    username: str | bytes | None, address: str, protocol: str, mechanism: str
) -> str:
    """
    Log one failed authentication as a single, parseable line, e.g.
    ``authentication failed: user=<alice> rip=127.0.0.1 proto=imap mech=PLAIN``,
    and return that line.  fail2ban can match it with
    ``authentication failed: user=<\\S*> rip=<HOST>``.
    """
    if isinstance(username, bytes):
        username = username.decode("utf-8", "replace")
    line = (
        f"authentication failed: user=<{_clean(username or '')}> rip={_clean(address)}"
        f" proto={_clean(protocol)} mech={_clean(mechanism)}"
    )
    _log.info("{line}", line=line)
    return line


def log_connection_refused(address: str, protocol: str, reason: str) -> str:
    """
    Log one connection turned away before the protocol began, e.g.
    ``connection refused: rip=192.0.2.7 proto=imap reason=too-many-connections``,
    in the same form as L{log_auth_failure}, and return that line.
    """
    line = (f"connection refused: rip={_clean(address)} proto={_clean(protocol)}"
            f" reason={_clean(reason)}")
    _log.info("{line}", line=line)
    return line
