"""
One POP3 session: the states of RFC 1939 section 3, the commands, and the
mapping of store errors to ``-ERR`` responses.

Like the IMAP session it does no socket I/O: it writes bytes to, and reads
lines from, an L{POP3IO} the Twisted protocol provides, and awaits every
storage call.  Authentication lives in L{twisted_mailhub.pop3.login}.
"""

from __future__ import annotations

from enum import Enum
from itertools import islice
from typing import Any, Awaitable, Callable, Iterator

from twisted.internet import defer
from twisted.logger import Logger

from twisted_mailhub.connection import ClientGone, ConnectionIO
from twisted_mailhub.errors import MailhubError, MessageExpunged
from twisted_mailhub.policy import ServerPolicy
from twisted_mailhub.pop3 import wire
from twisted_mailhub.pop3.maildrop import Maildrop, MarkedDeleted, NoSuchMessage

# RETR reads a large message in ranges of this size (four of the SQL store's
# chunks, read in one round trip), reading the next range while the client
# takes the last one.
READ_CHUNK = 1024 * 1024
# TOP usually needs only the header: start small.
TOP_CHUNK = 8 * 1024
# How many pipelined commands RETR and TOP look at to open the messages they
# will ask for next in the same store round trip.
LOOKAHEAD = 64


class State(Enum):
    AUTHORIZATION = "AUTHORIZATION"
    TRANSACTION = "TRANSACTION"
    UPDATE = "UPDATE"


#: What a POP3 session needs from its connection.  It may also have
#: C{pending_lines()}: the lines the client pipelined that are not yet run,
#: oldest first, which the session only looks at (L{pipelined_numbers}).
POP3IO = ConnectionIO


class Reply(Exception):
    """A handler's way to answer ``-ERR`` (with an optional response code)."""

    def __init__(self, text: str, code: str | None = None, bad: bool = False) -> None:
        super().__init__(text)
        self.text = text
        self.code = code
        # Counts towards the policy's limit of invalid commands.
        self.bad = bad


Handler = Callable[["POP3Session", wire.Command], Awaitable[None]]


def message_number(command: wire.Command, index: int = 0) -> int:
    """The 1-based message number argument of C{command}, or L{Reply}."""
    try:
        text = command.args[index]
    except IndexError:
        raise Reply(f"{command.keyword} needs a message number", bad=True)
    if not text.isdigit() or len(text) > 10:
        raise Reply(f"Invalid message number: {text[:20]}", bad=True)
    return int(text)


class POP3Session:
    """The state of one client connection and the execution of its commands."""

    log = Logger()

    def __init__(self, io: POP3IO, factory: Any) -> None:
        self.io = io
        self.factory = factory
        self.portal = factory.portal
        self.policy: ServerPolicy = factory.policy
        self.throttle = factory.throttle
        self.locks = factory.locks
        self.mark_seen_on_retr: bool = factory.mark_seen_on_retr
        self.state = State.AUTHORIZATION
        self.username: str | None = None
        self.pending_user: str | None = None
        self.maildrop: Maildrop | None = None
        self.bad_commands = 0
        self._logout: Callable[[], None] | None = None
        self._lock_key: Any = None

    # -- capabilities --------------------------------------------------------

    @property
    def plaintext_allowed(self) -> bool:
        """RFC 5034 section 4 / RFC 8314: passwords only over TLS, or loopback."""
        allow = self.policy.allow_plaintext_auth
        if self.io.secure or allow is True:
            return True
        return allow == "loopback" and self.io.is_loopback

    def capabilities(self) -> list[str]:
        """The CAPA lines for the current state (RFC 2449 section 6)."""
        from twisted_mailhub.auth.sasl import sasl_mechanisms

        caps = ["TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING", "EXPIRE NEVER"]
        # USER and SASL are "announced in both states" (RFC 2449 6.3,
        # RFC 5034 section 3); they differ only with the connection's security.
        if self.plaintext_allowed:
            caps.append("USER")
        caps.append("SASL " + " ".join(sasl_mechanisms(self.plaintext_allowed)))
        if self.state is State.AUTHORIZATION and self.io.tls_available and not self.io.secure:
            caps.append("STLS")
        caps.append("IMPLEMENTATION " + self.policy.server_name)
        return caps

    # -- running commands ----------------------------------------------------

    def greet(self) -> None:
        self.io.write(wire.ok(f"{self.policy.server_name} POP3 server ready"))

    async def execute(self, command: wire.Command) -> None:
        """Run one command and write its complete response."""
        from twisted_mailhub.pop3.commands import COMMANDS

        spec = COMMANDS.get(command.keyword)
        try:
            if spec is None:
                raise Reply(f"Unknown command: {command.keyword[:16]}", bad=True)
            handler, states = spec
            if self.state not in states:
                raise Reply(f"{command.keyword} is not valid in the {self.state.value} state",
                            bad=True)
            await handler(self, command)
            self.bad_commands = 0
        except ClientGone:
            raise
        except Reply as e:
            if e.bad:
                self.bad_commands += 1
            self.io.write(wire.err(e.text, e.code))
        except MessageExpunged:
            self.io.write(wire.err("message was removed"))
        except MailhubError as e:
            self.log.warn("POP3 {command} failed: {error}", command=command.keyword,
                          error=e.message)
            self.io.write(wire.err(e.message, "SYS/TEMP"))
        except Exception:
            self.log.failure("Internal error running POP3 {command}", command=command.keyword)
            self.io.write(wire.err("Internal server error; the failure was logged",
                                   "SYS/TEMP"))

    # -- transaction helpers ---------------------------------------------------

    def entry(self, number: int, *, allow_deleted: bool = False):
        """The snapshot entry for C{number}, or L{Reply} with RFC 1939 wording."""
        assert self.maildrop is not None
        try:
            return self.maildrop.entry(number, allow_deleted=allow_deleted)
        except NoSuchMessage:
            raise Reply("no such message")
        except MarkedDeleted:
            raise Reply(f"message {number} already deleted")

    def pipelined_numbers(self) -> Iterator[int]:
        """
        The message numbers of the RETR and TOP commands the client has
        already sent behind the current one (RFC 2449 PIPELINING), so that
        their messages are opened together with this one.  Lazy: only a
        message not opened yet makes the maildrop look.  A hint, not a
        parse: the commands themselves are checked when they run.
        """
        pending = getattr(self.io, "pending_lines", None)
        if pending is None:
            return
        for line in islice(pending(), LOOKAHEAD):
            if line is None:
                continue
            keyword, _, rest = line.partition(b" ")
            if keyword.upper() not in (b"RETR", b"TOP"):
                continue
            arg = rest.lstrip(b" ").partition(b" ")[0]
            if arg.isdigit() and len(arg) <= 10:
                yield int(arg)

    async def send_message(self, number: int, top_lines: int | None = None) -> None:
        """
        RETR (C{top_lines} None) or TOP: the status line, then the message
        dot-stuffed (RFC 1939 section 3), then the terminating ``.`` line.

        A message that arrives whole with its opening (a small one) goes out
        in one write.  A large one is read in ranges of L{READ_CHUNK}, the
        next range read while the client takes the last, and writing waits
        for the client between ranges, so no more than two ranges of it are
        ever held.
        """
        assert self.maildrop is not None
        entry = self.entry(number)
        # Gone before anything is written: an ordinary -ERR.
        message = await self.maildrop.open(number, ahead=self.pipelined_numbers())
        if top_lines is None:
            out = wire.ok(f"{entry.size} octets")
            top = None
            chunk = READ_CHUNK
        else:
            out = wire.ok("top of message follows")
            top = wire.TopFilter(top_lines)
            chunk = TOP_CHUNK
        size = message.meta.size
        stuffer = wire.DotStuffer()
        offset = 0
        reading: defer.Deferred | None = None
        try:
            data = await message.read(0, chunk)
            while True:
                offset += len(data)
                # The end: nothing more, or less than asked once the size
                # the store gave is reached (no read just to learn that).
                last = not data or (len(data) < chunk and offset >= size)
                if top is not None:
                    data = top.feed(data)
                    last = last or top.done
                    chunk = READ_CHUNK
                if last:
                    self.io.write(out + stuffer.feed(data) + stuffer.finish())
                    # Pipelined commands wait for a slow client too.
                    await self.io.drain()
                    break
                reading = defer.ensureDeferred(message.read(offset, chunk))
                self.io.write(out + stuffer.feed(data))
                out = b""
                await self.io.drain()
                data = await reading
                reading = None
        except ClientGone:
            raise
        except Exception as e:
            if out:
                # Nothing written yet: an ordinary -ERR (L{execute}).
                raise
            # Removed (or the store failed) half-way through: the +OK is
            # out, and a multi-line response cannot be taken back or end in
            # -ERR; ending it with the terminator would pass a truncated
            # message off as complete.  The only honest ending is to drop
            # the connection: the client sees a response without its end.
            if isinstance(e, MessageExpunged):
                self.log.warn("POP3 message {uid} vanished during RETR", uid=entry.uid)
            else:
                self.log.failure("POP3 reading message {uid} failed half-way", uid=entry.uid)
            self.io.close()
            raise ClientGone()
        finally:
            if reading is not None:
                # The client went away while the next range was read.
                reading.addErrback(lambda _: None)
        if top is None:
            self.maildrop.note_retrieved(number)

    # -- login outcome --------------------------------------------------------

    async def enter_transaction(self, username: str, store: Any, logout: Callable[[], None],
                                ) -> None:
        """
        After a successful authentication: lock and snapshot INBOX and enter
        the TRANSACTION state, or undo the login and raise L{Reply}.
        """
        try:
            inbox = await store.get_mailbox("INBOX")
            key = (username, inbox.key)
            if not self.locks.acquire(key, self):
                raise Reply("maildrop is in use by another POP3 session", "IN-USE")
            try:
                maildrop = await Maildrop.snapshot(inbox)
            except BaseException:
                self.locks.release(key, self)
                raise
        except BaseException:
            logout()
            raise
        self._lock_key = key
        self._logout = logout
        self.maildrop = maildrop
        self.username = username
        self.state = State.TRANSACTION
        self.io.set_timeout(max(self.policy.idle_timeout, 600.0))
        count, size = maildrop.stat()
        self.io.write(wire.ok(f"{username} has {count} messages ({size} octets)"))

    async def update(self) -> None:
        """QUIT in TRANSACTION: the UPDATE state of RFC 1939 section 6."""
        self.state = State.UPDATE
        assert self.maildrop is not None
        try:
            await self.maildrop.commit(self.mark_seen_on_retr, origin=self)
        except Exception:
            self.log.failure("POP3 UPDATE failed for {user}", user=self.username)
            self.io.write(wire.err("some deleted messages not removed", "SYS/TEMP"))
        else:
            self.io.write(wire.ok(f"{self.policy.server_name} POP3 server signing off"))
        finally:
            self.release()

    def release(self) -> None:
        """Drop the maildrop lock and log out of the store (idempotent)."""
        if self._lock_key is not None:
            self.locks.release(self._lock_key, self)
            self._lock_key = None
        if self._logout is not None:
            logout, self._logout = self._logout, None
            logout()

    def connection_lost(self) -> None:
        # RFC 1939 section 6: without QUIT there is no UPDATE state, so the
        # marks are simply forgotten.
        self.release()

