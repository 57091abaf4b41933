"""
Progress of long commands (RFC 9585): ``* OK [INPROGRESS ("tag" done
total)] text``, so a client can show how far a large FETCH, STORE, SEARCH,
COPY, MOVE, SORT or THREAD got, and does not take a silent server for a dead
one.

The response code has no capability: a client that does not know it reads
an untagged OK, which it must accept at any time.  A command asks a
L{Progress} to report how many of its messages are done, as often as is
cheap; a response is written only when the policy's interval has passed
since the command began or the last report, so a short command sends none.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from twisted_mailhub.imap import responses

if TYPE_CHECKING:
    from twisted_mailhub.imap.session import Session


def code(tag: str, done: int | None, total: int | None) -> str:
    """
    The INPROGRESS response code: the command's tag as a quoted string
    (a tag holds neither ``"`` nor ``\\``), the count done and the total,
    NIL for one not known.
    """
    def number(n: int | None) -> str:
        return "NIL" if n is None else str(n)

    return f'INPROGRESS ("{tag}" {number(done)} {number(total)})'


class Progress:
    """
    The progress reports of one command of C{session} that works through
    C{total} messages (None when not known in advance).
    """

    def __init__(self, session: Session, tag: str, total: int | None) -> None:
        self._session = session
        self.tag = tag
        self.total = total
        self._interval = session.policy.progress_interval
        self._last = session.clock.seconds()

    def __call__(self, done: int) -> None:
        """
        C{done} messages are done: tell the client if it has been waiting
        for the interval.  The count never goes past the total; callers
        count up, so a client may show it as a growing bar.
        """
        if self._interval is None:
            return
        now = self._session.clock.seconds()
        if now - self._last < self._interval:
            return
        self._last = now
        if self.total is not None:
            done = min(done, self.total)
        self._session.io.write(responses.status(
            None, "OK", "Still working", code(self.tag, done, self.total)))

    def next_stage(self, total: int | None) -> None:
        """
        The command goes on to a second pass over C{total} messages (SORT
        and THREAD open the messages their search found): the counts
        start again from 0 of the new total, and the interval runs on
        from the last report, so the client hears no more often than before.
        """
        self.total = total
