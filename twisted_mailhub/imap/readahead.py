"""
Starting the store work of pipelined FETCH and STATUS commands before their
turn.

Clients that download mail (mbsync, offlineimap, a benchmark's 500 random
``FETCH n BODY.PEEK[]``) send many FETCH commands without waiting for each
answer.  Run one at a time, each would pay a store round trip (a thread hop
and a query) for its message.  While a FETCH runs, the protocol parses the
FETCH commands already received behind it (L{LOOKAHEAD} at most) and hands
them here; their messages are opened in one bulk call
(L{IBulkMessageAccess.open_messages}) while the current command streams,
and each command takes its messages when it runs.

Only opening is done ahead: flags, sequence numbers and what is sent are
decided by each command when it runs, so a change in between is seen as
usual.  A message expunged meanwhile reads as gone, as it would have had it
been opened later.  What is opened ahead is dropped at the first command
that is not a FETCH, and never outlives the selected mailbox.

A FETCH of one message's whole content and nothing else (the downloader's
``FETCH n BODY.PEEK[]``, L{F.whole_content}) needs only its bytes: for a
store that reads them directly (L{IContentAccess}) those are what is read
ahead, and the command finds them at hand, without a round trip of its own.

A run of pipelined STATUS commands is read ahead the same way: their
queries go to the store together (several at once in a threaded store)
instead of one after the other.  Only STATUS commands run in between, and
none of them changes what the others count; another session's change
lands before or after, as it could have anyway.
"""

from __future__ import annotations

from typing import Any, Iterable

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from twisted_mailhub.imap import commands as C
from twisted_mailhub.imap import fetch as F
from twisted_mailhub.interfaces import (
    IBulkMessageAccess,
    IBulkStatusQuery,
    IContentAccess,
    IStatusQuery,
)

#: FETCH commands parsed ahead of the running one, at most.
LOOKAHEAD = 64

#: Messages opened ahead per session, at most (small ones arrive with their
#: content, so this bounds the memory of a session's read-ahead).
MOST_OPENED = 128

#: Contents up to this size are always read ahead (MOST_OPENED of them at
#: most); so is a content of a size not known, if it is no larger.
CONTENT_AHEAD_LIMIT = 64 * 1024

#: Larger contents (up to L{F.WHOLE_LIMIT}) are read ahead while the
#: contents held ahead stay under this many bytes.
CONTENT_AHEAD_BYTES = 8 * 1024 * 1024

#: Commands naming more messages than this are left to open their own: a
#: large FETCH opens in bulk anyway.
MOST_PER_COMMAND = 8


class _Opening:
    """One bulk open under way, and the messages it gave."""

    def __init__(self, started: Deferred) -> None:
        self.messages: dict[int, Any] | None = None
        self._waiters: list[Deferred] = []
        started.addCallbacks(self._opened, self._failed)

    def _opened(self, messages: list[Any]) -> None:
        self.messages = {message.meta.uid: message for message in messages}
        self._wake()

    def _failed(self, failure: Any) -> None:
        # The command opens its messages itself and meets the error there.
        ReadAhead.log.debug("Opening messages ahead failed: {f}", f=failure)
        self.messages = {}
        self._wake()

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.callback(None)

    async def result(self) -> dict[int, Any]:
        if self.messages is None:
            waiter: Deferred = Deferred()
            self._waiters.append(waiter)
            await waiter
        assert self.messages is not None
        return self.messages


class _Contents:
    """One read of contents under way, and the contents it gave."""

    def __init__(self, started: Deferred) -> None:
        self.found: dict[int, bytes] | None = None
        self._waiters: list[Deferred] = []
        started.addCallbacks(self._read, self._failed)

    def _read(self, found: dict[int, bytes]) -> None:
        self.found = found
        self._wake()

    def _failed(self, failure: Any) -> None:
        # The command reads its content itself and meets the error there.
        ReadAhead.log.debug("Reading contents ahead failed: {f}", f=failure)
        self.found = {}
        self._wake()

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.callback(None)

    async def result(self) -> dict[int, bytes]:
        if self.found is None:
            waiter: Deferred = Deferred()
            self._waiters.append(waiter)
            await waiter
        assert self.found is not None
        return self.found


class _Answer:
    """The outcome of one store query started ahead: a value or an error."""

    def __init__(self, started: Deferred) -> None:
        self._outcome: Any = None
        self._done = False
        self._waiters: list[Deferred] = []
        started.addBoth(self._finished)

    def _finished(self, outcome: Any) -> None:
        self._outcome, self._done = outcome, True
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.callback(None)

    async def result(self) -> Any:
        if not self._done:
            waiter: Deferred = Deferred()
            self._waiters.append(waiter)
            await waiter
        if isinstance(self._outcome, Failure):
            self._outcome.raiseException()
        return self._outcome


class ReadAhead:
    """
    What a session started for the commands queued behind the running one:
    the messages of pipelined FETCH commands, and the answers of pipelined
    STATUS commands (only behind a STATUS, since anything else might change
    what they count).
    """

    log = Logger()

    def __init__(self) -> None:
        self._selected: Any = None
        self._opening: dict[int, _Opening] = {}
        # UID to the read of its content and the bytes counted for it.
        self._contents: dict[int, tuple[_Contents, int]] = {}
        self._held = 0
        self._status: dict[str, _Answer] = {}

    def start_status(self, session: Any, commands: Iterable[C.Command]) -> None:
        """Ask the store now for the counters the STATUS C{commands} will read."""
        query = IStatusQuery(session.store, None)
        if query is None:
            return
        names: list[str] = []
        for command in commands:
            if isinstance(command, C.Status) and command.mailbox not in self._status:
                if len(self._status) + len(names) >= MOST_OPENED:
                    break
                if command.mailbox not in names:
                    names.append(command.mailbox)
        if not names:
            return
        if not IBulkStatusQuery.providedBy(query):
            for name in names:
                self._status[name] = _Answer(maybeDeferred(query.mailbox_status, name))
            return
        # One store call for the run; each STATUS gets its own outcome.
        answers = {name: Deferred() for name in names}
        for name, answer in answers.items():
            self._status[name] = _Answer(answer)

        def share(outcomes: Any) -> None:
            for name, answer in answers.items():
                if isinstance(outcomes, Failure):
                    answer.errback(outcomes)
                    continue
                outcome = outcomes.get(name)
                if isinstance(outcome, BaseException):
                    answer.errback(Failure(outcome))
                elif outcome is None:
                    answer.errback(Failure(LookupError(name)))
                else:
                    answer.callback(outcome)

        maybeDeferred(query.mailbox_statuses, names).addBoth(share)

    async def take_status(self, name: str) -> Any:
        """The status of C{name} asked for ahead, or None; raises what the store raised."""
        answer = self._status.pop(name, None)
        return None if answer is None else await answer.result()

    def start(self, session: Any, commands: Iterable[C.Command]) -> None:
        """
        Read, in one store call, the contents or open the messages that the
        FETCH C{commands} will need.
        """
        from twisted_mailhub.imap.handlers.messages import resolve
        from twisted_mailhub.imap.session import CommandFailed

        selected = session.selected
        if selected is None:
            return
        if selected is not self._selected:
            self.clear()
            self._selected = selected
        bulk = IBulkMessageAccess(selected.mailbox, None)
        access = IContentAccess(selected.mailbox, None)
        if bulk is None and access is None:
            return
        wanted: list[int] = []
        contents: list[int] = []
        room = MOST_OPENED - len(self._opening) - len(self._contents)
        for command in commands:
            if not isinstance(command, C.Fetch) or not F.needs_message(command.attrs):
                continue
            if command.set.saved:
                continue  # $ may be changed by a SEARCH in between
            try:
                uids = resolve(session, command.set, command.uid)
            except CommandFailed:
                continue  # answered BAD when it runs
            if len(uids) > MOST_PER_COMMAND:
                continue
            if (access is not None and len(uids) == 1
                    and F.whole_content(command.attrs) is not None):
                if uids[0] not in self._contents and uids[0] not in contents:
                    contents.append(uids[0])
            elif bulk is not None:
                wanted += [uid for uid in uids if uid not in self._opening and uid not in wanted]
        contents = contents[:max(0, room)]
        wanted = sorted(wanted[:max(0, room - len(contents))])
        if contents:
            self._read_contents(selected.mailbox, access, contents)
        if wanted:
            opening = _Opening(Deferred.fromCoroutine(_open(bulk, wanted)))
            for uid in wanted:
                self._opening[uid] = opening

    def _read_contents(self, mailbox: Any, access: Any, uids: list[int]) -> None:
        # Of sizes known (from the index), one read of those that fit the
        # budget; of sizes not known, one read of the small ones.
        index = getattr(mailbox, "index", None)
        known: list[tuple[int, int]] = []
        unknown: list[tuple[int, int]] = []
        held = self._held
        for uid in uids:
            meta = index.known(uid) if index is not None else None
            if meta is None:
                unknown.append((uid, CONTENT_AHEAD_LIMIT))
                held += CONTENT_AHEAD_LIMIT
            elif meta.size <= CONTENT_AHEAD_LIMIT or (
                    meta.size <= F.WHOLE_LIMIT and held + meta.size <= CONTENT_AHEAD_BYTES):
                known.append((uid, meta.size))
                held += meta.size
        for group, limit in ((known, F.WHOLE_LIMIT), (unknown, CONTENT_AHEAD_LIMIT)):
            if not group:
                continue
            read = _Contents(maybeDeferred(access.contents, sorted(u for u, _ in group), limit))
            for uid, size in group:
                self._contents[uid] = (read, size)
                self._held += size

    def take_content(self, selected: Any, uid: int) -> _Contents | None:
        """
        The read of C{uid}'s content started ahead for C{selected}, if any
        (given out once): its C{found} holds the contents once read (the
        message's unless it is gone, or larger than was read ahead), else
        await its C{result()}.
        """
        if selected is not self._selected or not self._contents:
            return None
        read, size = self._contents.pop(uid, (None, 0))
        self._held -= size
        return read

    async def take(self, selected: Any, uids: Iterable[int]) -> dict[int, Any]:
        """
        The messages among C{uids} opened ahead for C{selected}, waiting for
        their opening if it is still under way; they are given out once.
        """
        if selected is not self._selected or not self._opening:
            return {}
        found: dict[int, Any] = {}
        for uid in uids:
            opening = self._opening.pop(uid, None)
            if opening is None:
                continue
            message = (await opening.result()).get(uid)
            if message is not None:
                found[uid] = message
        return found

    def clear(self, keep_status: bool = False) -> None:
        """Drop whatever was started ahead (a command that might change it runs)."""
        self._opening.clear()
        self._contents.clear()
        self._held = 0
        self._selected = None
        if not keep_status:
            self._status.clear()


async def _open(bulk: Any, uids: list[int]) -> list[Any]:
    return list(await bulk.open_messages(uids))
