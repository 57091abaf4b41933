"""
The Twisted layer of the POP3 server: lines from the socket go to the
L{POP3Session} one command at a time, and its bytes go back with flow
control.

Why not C{twisted.mail.pop3.POP3}: its mailbox interface is synchronous
where ours is not (C{getUidl}, C{deleteMessage}, C{sync}); its
C{transformChunk} turns the CRLF our stores keep into CR CR LF and misses
a dot at the start of a chunk; it sends Python exception text to clients;
and it has neither STLS, RESP-CODES nor RFC 5034 AUTH.  What it does well
(line reception, timeouts, file sending with producers) comes from
Twisted's general machinery, used here directly.
"""

from __future__ import annotations

import time
from collections import deque

from twisted.internet import defer
from twisted.logger import Logger

from twisted_mailhub.connection import ClientGone, ServerConnection, ServerConnectionFactory
from twisted_mailhub.policy import ServerPolicy
from twisted_mailhub.pop3 import wire
from twisted_mailhub.pop3.maildrop import DEFAULT_LOCKS, MaildropLocks
from twisted_mailhub.pop3.session import POP3Session, State


class POP3ServerProtocol(ServerConnection):
    """One POP3 connection; the L{POP3IO} of its session."""

    log = Logger()
    protocol_name = "pop3"

    def __init__(self) -> None:
        super().__init__()
        self._buffer = b""
        self._discarding = False
        # Complete lines not yet run (None: a line that was too long).
        self._lines: deque[bytes | None] = deque()
        self._busy = False
        self._pumping = False
        self._reading_paused = False

    # -- connection lifecycle ------------------------------------------------

    def connectionMade(self) -> None:
        self.session = POP3Session(self, self.factory)
        if not self.setup_connection():
            self.write(wire.err("Too many connections from your address", "SYS/TEMP"))
            self.close()
            return
        self.setTimeout(self.factory.policy.login_timeout)
        self.session.greet()

    def connectionLost(self, reason=None) -> None:
        self.teardown_connection()
        if hasattr(self, "session"):
            self.session.connection_lost()

    def timeoutConnection(self) -> None:
        # RFC 1939 section 3: the autologout timer; no UPDATE state follows.
        self.write(wire.err("Autologout; idle for too long"))
        self.close()

    def goodbye(self, message: str) -> None:
        self.write(wire.err(message, "SYS/TEMP"))

    # -- input -------------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        self.resetTimeout()
        if self.closed:
            return
        self.bytes_received += len(data)
        limit = self.factory.policy.max_line_length
        # One split per read, not one slice of the buffer per line: a
        # pipelining client sends thousands of lines in one segment.
        lines = (self._buffer + data).split(b"\n")
        self._buffer = lines.pop()
        for line in lines:
            if self._discarding:
                # The end of an overlong line already answered.
                self._discarding = False
                continue
            self._lines.append(line.rstrip(b"\r") if len(line) <= limit else None)
        if len(self._buffer) > limit:
            # Drop the overlong line's bytes as they come, answer once.
            if not self._discarding:
                self._discarding = True
                self._lines.append(None)
            self._buffer = b""
        if len(self._lines) > 64 and not self._reading_paused:
            # A client pipelining faster than we answer: stop reading.
            self._reading_paused = True
            self.transport.pauseProducing()
        self._pump()

    def _pump(self) -> None:
        # A command that completes without waiting (its data at hand, the
        # client keeping up) calls back here from inside this loop: the loop
        # then goes on with the next line, instead of nesting one call per
        # pipelined command.
        if self._pumping:
            return
        self._pumping = True
        try:
            while self._lines and not self.closed:
                if self._line_waiter is not None:
                    waiter, self._line_waiter = self._line_waiter, None
                    line = self._lines.popleft()
                    waiter.callback(line if line is not None else b"")
                    continue
                if self._busy:
                    break
                line = self._lines.popleft()
                self._busy = True
                d = defer.Deferred.fromCoroutine(self._execute(line))
                d.addErrback(self._crashed)
        finally:
            self._pumping = False
        if self._reading_paused and len(self._lines) < 16 and not self.closed:
            self._reading_paused = False
            self.transport.resumeProducing()

    async def _execute(self, line: bytes | None) -> None:
        started = time.perf_counter()
        name = "other"
        try:
            if line is None:
                self.session.bad_commands += 1
                self.write(wire.err("Line too long"))
            else:
                try:
                    command = wire.parse_command(line)
                except wire.CommandSyntaxError:
                    self.session.bad_commands += 1
                    self.write(wire.err("Invalid command"))
                else:
                    name = command_label(command)
                    await self.session.execute(command)
        except ClientGone:
            return
        finally:
            self._busy = False
            self.report_command(name, started)
        if self.session.bad_commands >= self.factory.policy.max_bad_commands:
            self.write(wire.err("Too many invalid commands"))
            self.close()
            return
        self._pump()

    def _crashed(self, failure) -> None:
        self.log.failure("POP3 session crashed", failure)
        if not self.closed:
            self.write(wire.err("Internal server error", "SYS/TEMP"))
            self.close()

    # -- POP3IO --------------------------------------------------------------------

    def pending_lines(self) -> deque[bytes | None]:
        """The lines received and not yet run, oldest first (do not change)."""
        return self._lines

    def read_line(self) -> defer.Deferred:
        if self.closed:
            return defer.fail(ClientGone())
        self._line_waiter = defer.Deferred()
        waiter = self._line_waiter
        # The line may already be buffered: look once the caller waits.
        self.factory.clock.callLater(0, self._pump)
        return waiter

    def start_tls(self) -> None:
        # Whatever the client pipelined behind STLS is thrown away.
        self._lines.clear()
        self._buffer = b""
        super().start_tls()


def command_label(command: wire.Command) -> str:
    """The name a command is counted under: its keyword, C{"other"} if unknown."""
    from twisted_mailhub.pop3.commands import COMMANDS

    return command.keyword if command.keyword in COMMANDS else "other"


class POP3ServerFactory(ServerConnectionFactory):
    """
    Serves POP3 (RFC 1939) for the users of C{portal}, whose realm yields
    L{IMailStore} avatars; each session works on the user's INBOX.

    C{tls_options} enables STLS; wrap the factory in
    L{twisted.protocols.tls.TLSMemoryBIOFactory} for implicit TLS (port 995).
    C{mark_seen_on_retr} adds ``\\Seen`` to the messages RETR sent in full,
    at QUIT.  C{locks} is the maildrop lock table (by default one per
    process, shared by all POP3 factories).  C{throttle} delays answers
    after failed logins (a L{FailureThrottle} from the policy by default);
    C{clock} schedules timeouts and delays (the reactor by default).
    """

    protocol = POP3ServerProtocol

    def __init__(self, portal, *, policy: ServerPolicy | None = None, tls_options=None,
                 mark_seen_on_retr: bool = False, throttle=None,
                 locks: MaildropLocks | None = None, clock=None) -> None:
        super().__init__(portal, policy=policy, tls_options=tls_options, throttle=throttle,
                         clock=clock)
        self.mark_seen_on_retr = mark_seen_on_retr
        self.locks = locks if locks is not None else DEFAULT_LOCKS


__all__ = ["POP3ServerFactory", "POP3ServerProtocol", "State"]
