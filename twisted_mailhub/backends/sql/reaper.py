"""
Deleting message contents nobody refers to any more, after the EXPUNGE.

An EXPUNGE (or a mailbox or user deletion) only drops references in its
transaction (L{content.release}); the contents that reached zero are handed
here after the commit and deleted shortly afterwards in write transactions of
their own, a batch at a time.  Nothing can reach such a content in between:
searches go through message rows, and reading a released content finds
nothing, as if it had been deleted already.

Contents left behind by a process that stopped before reaping them are
found by one sweep when the store opens.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater
from twisted.logger import Logger

from twisted_mailhub.backends.sql import content
from twisted_mailhub.backends.sql.engine import Database
from twisted_mailhub.errors import StoreUnavailable

#: Seconds between a release and its reaping: a burst of EXPUNGEs is
#: reaped together, and the client's next commands go first.
DELAY = 0.2

#: Contents deleted per transaction.
BATCH = 200

#: Seconds before trying again while the database is unavailable.
RETRY_DELAY = 5.0


class ContentReaper:
    """Deletes released contents of one L{Database}, off the command path."""

    log = Logger()

    def __init__(self, db: Database, reactor: Any) -> None:
        self._db = db
        self._reactor = reactor
        self._pending: set[int] = set()
        self._sweep = False
        self._call: Any = None
        self._running: Deferred | None = None
        self._stopped = False
        self._stopping = False
        db.on_commit(content.RELEASED, self.released)

    def released(self, content_ids: list[int]) -> None:
        """Contents whose references were dropped by a committed transaction."""
        self._pending.update(content_ids)
        self._schedule()

    def sweep(self) -> None:
        """Look for unreferenced contents left by an earlier process."""
        self._sweep = True
        self._schedule()

    def _schedule(self) -> None:
        if self._stopped or self._call is not None or self._running is not None:
            return
        self._call = self._clock().callLater(DELAY, self._start)

    def _clock(self) -> Any:
        if self._reactor is not None:
            return self._reactor
        from twisted.internet import reactor

        return reactor

    def _start(self) -> None:
        self._call = None
        self._running = Deferred.fromCoroutine(self._run())
        self._running.addErrback(self._failed)
        self._running.addBoth(self._finished)

    def _failed(self, failure: Any) -> None:
        # Whatever was not reaped is found by the sweep of the next open.
        self._sweep = False
        if failure.check(StoreUnavailable):
            self._pending.clear()
            self.log.warn("Released message contents are left for the next start to delete: "
                          "{error}", error=failure.getErrorMessage())
        else:
            self.log.failure("Reaping released message contents failed", failure)

    def _finished(self, _: Any) -> None:
        self._running = None
        if self._pending or self._sweep:
            self._schedule()

    async def _run(self) -> None:
        while self._pending:
            batch = sorted(self._pending)[:BATCH]
            self._pending.difference_update(batch)
            try:
                await self._db.write(content.reap, batch)
            except StoreUnavailable:
                if self._stopping:
                    raise
                # The database is away for now: try again later.
                self._pending.update(batch)
                await deferLater(self._clock(), RETRY_DELAY, lambda: None)
        while self._sweep:
            reaped = await self._db.write(content.reap, None, BATCH)
            self._sweep = len(reaped) == BATCH

    async def flush(self) -> None:
        """Reap everything released so far, now (before a close, and in tests)."""
        while True:
            if self._call is not None:
                self._call.cancel()
                self._call = None
            if self._running is not None:
                done: Deferred = Deferred()
                self._running.addBoth(lambda result: (done.callback(None), result)[1])
                await done
                continue
            if not (self._pending or self._sweep):
                return
            self._start()

    async def stop(self) -> None:
        """Reap what is pending (if the database is there), then take no more work."""
        self._stopping = True
        await self.flush()
        self._stopped = True
