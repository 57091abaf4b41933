"""
The Twisted layer: bytes from the socket go to the sans-IO parser, parsed
commands to the L{Session}, and the session's bytes back to the socket with
flow control.

One command runs at a time; commands the client pipelines wait in the
parser's buffer, which is bounded: while a command runs, reading from a
client that keeps sending is paused.
"""

from __future__ import annotations

import time
from collections import Counter, deque

from twisted.internet import defer
from twisted.logger import Logger

from twisted_mailhub.connection import ClientGone, ServerConnection, ServerConnectionFactory
from twisted_mailhub.imap import commands as C
from twisted_mailhub.imap import responses
from twisted_mailhub.imap.compress import CompressingTransport, CompressionError
from twisted_mailhub.imap.framing import LITERAL_MINUS_LIMIT
from twisted_mailhub.imap.output import ResponseOutput
from twisted_mailhub.imap.readahead import LOOKAHEAD
from twisted_mailhub.imap.parser import (
    CommandError,
    CommandParser,
    CommandReceived,
    ContinuationRequest,
    FatalError,
    RawLine,
)
from twisted_mailhub.imap.session import CommandFailed, Session, State
from twisted_mailhub.policy import ServerPolicy

__all__ = ["IMAPServerFactory", "IMAPServerProtocol"]

# The most padding written to finish an open literal before a goodbye.
GOODBYE_PADDING_LIMIT = 2**20


def _is_command(event, kind: type) -> bool:
    return isinstance(event, CommandReceived) and type(event.command) is kind


def command_label(command: C.Command) -> str:
    """
    The name a command is counted under: as the client spelled it, with its
    UID prefix, EXAMINE, LSUB and MOVE told apart from SELECT, LIST and COPY.
    """
    name = command.name
    if isinstance(command, C.Select) and command.read_only:
        name = "EXAMINE"
    elif isinstance(command, C.List) and command.lsub:
        name = "LSUB"
    elif isinstance(command, C.Copy) and command.move:
        name = "MOVE"
    if getattr(command, "uid", False) or (isinstance(command, C.Expunge)
                                          and command.uids is not None):
        name = "UID " + name
    return name


class IMAPServerProtocol(ServerConnection):
    """One IMAP connection: the L{SessionIO} of its L{Session}."""

    log = Logger()
    protocol_name = "imap"

    def __init__(self) -> None:
        super().__init__()
        self._busy = False
        self._pumping = False
        # Events parsed while a FETCH ran, to handle in order after it: the
        # FETCHes pipelined behind it (see imap/readahead.py), then at most
        # one other event.
        self._ahead: deque = deque()
        self._running: C.Command | None = None
        self._reading_paused = False
        self._backlog = 0
        # Every byte written goes through here: see imap/output.py.
        self.output = ResponseOutput()
        # COMPRESS=DEFLATE, when active: the layer self.transport is.
        self.compression: CompressingTransport | None = None

    # -- connection lifecycle ------------------------------------------------

    def connectionMade(self) -> None:
        factory = self.factory
        policy: ServerPolicy = factory.policy
        self.parser = CommandParser(
            max_line_length=policy.max_line_length,
            max_literal_size=policy.max_literal_size_unauthenticated,
            max_non_synchronizing=LITERAL_MINUS_LIMIT if policy.literal_minus else None,
        )
        self.session = Session(self, factory.portal, policy, throttle=factory.throttle,
                               clock=factory.clock, users=factory.per_user)
        if not self.setup_connection():
            self.write(responses.status(
                None, "BYE", "Too many connections from your address", "UNAVAILABLE"))
            self.close()
            return
        self.setTimeout(policy.login_timeout)
        self._run(self.session.greet())

    def connectionLost(self, reason=None) -> None:
        self.teardown_connection()
        if hasattr(self, "session"):
            self.session.connection_lost()

    def timeoutConnection(self) -> None:
        # RFC 9051 section 5.4: the autologout timer.
        self.goodbye("Autologout; idle for too long")
        self.close()

    def goodbye(self, message: str) -> None:
        if self.output.literal_remaining > GOODBYE_PADDING_LIMIT:
            # Closing in the middle of a large literal (shutdown, autologout
            # during a slow FETCH): megabytes of padding only to say BYE
            # would delay the close; the client sees the stream end instead.
            return
        self.write(responses.status(None, "BYE", message))

    # -- input -----------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        self.resetTimeout()
        self.bytes_received += len(data)
        if self.compression is not None:
            # Inflated a bounded piece at a time, into _received.
            self.compression.receive(data)
            return
        self._received(data)

    def _received(self, data: bytes) -> None:
        self.parser.receive_data(data)
        if self._busy and self._line_waiter is None:
            self._backlog += len(data)
            if self._backlog > self.factory.policy.max_line_length and not self._reading_paused:
                self._reading_paused = True
                self.transport.pauseProducing()
        self._pump()

    def _pump(self) -> None:
        if self._pumping:
            return
        self._pumping = True
        try:
            while not self.closed:
                if self._busy and self._line_waiter is None:
                    self._read_ahead()
                    return
                event = self._ahead.popleft() if self._ahead else self.parser.next_event()
                if event is None:
                    return
                self._handle(event)
        finally:
            self._pumping = False

    def _read_ahead(self, starting: C.Command | None = None) -> None:
        """
        While a FETCH (or a STATUS) runs, parse the commands of the same
        kind already received behind it and let the session start their
        store work meanwhile (imap/readahead.py).  Parsing them early changes
        nothing: neither command changes the parser's state (limits, UTF-8,
        raw lines).  The first other event ends the run and waits, parsed,
        for its turn; what follows it stays unparsed, since that command may
        change how the rest is read.

        A STATUS about to run (C{starting}) joins the run behind it, if
        there is one: its counters come with theirs, in the same store call
        (one statement in the SQL store), instead of in a query of its own.
        """
        kind = type(self._running if starting is None else starting)
        if kind not in (C.Fetch, C.Status):
            return
        if len(self._ahead) > LOOKAHEAD // 2:
            # Topped up only once half of it has run: each bulk open then
            # takes the messages of many commands, instead of the one
            # command parsed since the last (a thread hop and a query for
            # every message).
            return
        run = []
        while len(self._ahead) < LOOKAHEAD:
            if self._ahead and not _is_command(self._ahead[-1], kind):
                break
            event = self.parser.next_event()
            if event is None:
                break
            self._ahead.append(event)
            if not _is_command(event, kind):
                break
            run.append(event.command)
        if not run:
            return
        if starting is not None:
            run.insert(0, starting)
        if kind is C.Fetch:
            self.session.readahead.start(self.session, run)
        else:
            self.session.readahead.start_status(self.session, run)

    def _handle(self, event) -> None:
        if isinstance(event, RawLine):
            waiter, self._line_waiter = self._line_waiter, None
            if waiter is not None:
                waiter.callback(event.line)
        elif isinstance(event, CommandReceived):
            self._busy = True
            self._backlog = 0
            if isinstance(event.command, C.Status):
                self._read_ahead(event.command)
            self._run(self._execute(event.command))
        elif isinstance(event, ContinuationRequest):
            self.write(responses.continuation("Ready for literal data"))
        elif isinstance(event, CommandError) and self._line_waiter is not None:
            # A raw line (SASL response, IDLE's DONE) that was too long.
            waiter, self._line_waiter = self._line_waiter, None
            waiter.errback(CommandFailed(event.message, event.code, "BAD"))
        elif isinstance(event, CommandError):
            # RFC 3501 6.4.4: an unsupported CHARSET is NO, not BAD.
            condition = "NO" if (event.code or "").startswith("BADCHARSET") else event.condition
            started = time.perf_counter()
            self.write(responses.status(event.tag, condition, event.message, event.code))
            # Unknown or malformed: one name, however many a client invents.
            self.report_command("other", started)
            if condition == "BAD":
                self._count_bad()
        elif isinstance(event, FatalError):
            self.goodbye(event.message)
            self.close()

    def _count_bad(self) -> None:
        self.session.bad_commands += 1
        if self.session.bad_commands >= self.factory.policy.max_bad_commands:
            self.goodbye("Too many invalid commands")
            self.close()

    async def _execute(self, command) -> None:
        started = time.perf_counter()
        self._running = command
        try:
            await self.session.execute(command)
        except ClientGone:
            return
        finally:
            self._busy = False
            self._running = None
            self.report_command(command_label(command), started)
        if self.session.state is State.LOGOUT:
            self.close()
            return
        if self.session.bad_commands >= self.factory.policy.max_bad_commands:
            self._count_bad()
            return
        if self._reading_paused:
            self._reading_paused = False
            self.transport.resumeProducing()
        self._pump()

    def _run(self, coroutine) -> None:
        d = defer.Deferred.fromCoroutine(coroutine)
        d.addErrback(self._crashed)

    def _crashed(self, failure) -> None:
        if failure.check(ClientGone):
            return
        self.log.failure("IMAP session crashed", failure)
        if not self.closed:
            self.goodbye("Internal server error")
            self.close()

    # -- SessionIO (the rest comes from ServerConnection) ------------------------

    def write(self, data: bytes) -> None:
        """
        Send C{data}, which starts a new response: an unfinished one (a
        literal cut short) is completed first, never interleaved.
        """
        if not self.closed:
            data = self.output.response(data)
            self.bytes_sent += len(data)
            self.transport.write(data)

    def write_part(self, data: bytes) -> None:
        """Send C{data} as the next piece of the response being written."""
        if not self.closed:
            data = self.output.part(data)
            self.bytes_sent += len(data)
            self.transport.write(data)

    def read_line(self) -> defer.Deferred:
        if self.closed:
            return defer.fail(ClientGone())
        self.parser.expect_line()
        self._line_waiter = defer.Deferred()
        waiter = self._line_waiter
        # Data for the line may already be buffered: look once the caller waits.
        self.factory.clock.callLater(0, self._pump)
        return waiter

    def start_tls(self) -> None:
        # Whatever the client pipelined behind STARTTLS is thrown away.
        self.parser.discard_buffer()
        super().start_tls()

    @property
    def compressing(self) -> bool:
        return self.compression is not None

    def start_compression(self) -> None:
        """
        RFC 4978 section 3: everything after the OK just written is DEFLATE,
        both ways.  As after STARTTLS, input the client sent before seeing
        the OK is dropped: it may not send any.
        """
        self.parser.discard_buffer()
        self.compression = CompressingTransport(
            self.transport, self._received, self._compression_failed,
            self.factory.clock.callLater, counter=self,
            max_after_end=self.factory.policy.max_line_length)
        self.transport = self.compression

    def stop_compression(self) -> None:
        """
        RFC 8437 section 4.1: compression ends after the OK of UNAUTHENTICATE
        just written; the client's input after the end of its compressed
        stream is read as it is.
        """
        layer, self.compression = self.compression, None
        if layer is None:
            return
        self.transport = layer.transport
        rest = layer.finish()
        self.parser.discard_buffer()
        if rest:
            self._received(rest)

    def _compression_failed(self, error: CompressionError) -> None:
        self.log.info("Closing IMAP connection from {peer}: {error}", peer=self.peer_host,
                      error=str(error))
        self.goodbye("Invalid compressed data")
        self.close()

    def set_max_literal(self, size: int) -> None:
        self.parser.max_literal_size = size

    def set_utf8(self, enabled: bool) -> None:
        self.parser.utf8 = enabled


class IMAPServerFactory(ServerConnectionFactory):
    """
    Serves IMAP for the users of C{portal} (whose realm yields
    L{IMailStore} avatars).  C{tls_options} enables STARTTLS; wrap the
    factory in L{twisted.protocols.tls.TLSMemoryBIOFactory} for implicit TLS.
    C{throttle} delays answers after failed logins; C{clock} schedules
    timeouts and delays (the reactor by default).
    """

    protocol = IMAPServerProtocol

    def __init__(self, portal, *, policy: ServerPolicy | None = None, tls_options=None,
                 throttle=None, clock=None) -> None:
        super().__init__(portal, policy=policy, tls_options=tls_options, throttle=throttle,
                         clock=clock)
        # Authenticated sessions per user, for the per-user connection cap.
        self.per_user: Counter[str] = Counter()
