"""
The Twisted layer: bytes from the socket go to the sans-IO parser, parsed
commands to the L{Session}, and the session's bytes back to the socket with
flow control.

One command runs at a time; commands the client pipelines wait in the
parser's buffer, which is bounded: while a command runs, reading from a
client that keeps sending is paused.
"""

from __future__ import annotations

import ipaddress
from collections import Counter

from twisted.internet import defer
from twisted.internet.interfaces import IPushProducer, ISSLTransport
from twisted.internet.protocol import Protocol, ServerFactory
from twisted.logger import Logger
from twisted.protocols.policies import TimeoutMixin
from zope.interface import implementer

from twisted_mailhub.imap import responses
from twisted_mailhub.imap.parser import (
    CommandError,
    CommandParser,
    CommandReceived,
    ContinuationRequest,
    FatalError,
    RawLine,
)
from twisted_mailhub.imap.session import ClientGone, CommandFailed, Session, State
from twisted_mailhub.policy import ServerPolicy


def is_loopback(address) -> bool:
    host = getattr(address, "host", None)
    if host is None:
        # UNIX sockets are local by construction.
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


@implementer(IPushProducer)
class IMAPServerProtocol(Protocol, TimeoutMixin):
    """One IMAP connection.  Implements L{SessionIO} for its L{Session}."""

    log = Logger()

    def __init__(self) -> None:
        self.secure = False
        self.tls_available = False
        self.is_loopback = False
        self.peer_host = ""
        self._busy = False
        self._pumping = False
        self._closed = False
        self._line_waiter: defer.Deferred | None = None
        self._drain: defer.Deferred | None = None
        self._reading_paused = False
        self._backlog = 0

    # -- connection lifecycle ------------------------------------------------

    def connectionMade(self) -> None:
        factory = self.factory
        policy: ServerPolicy = factory.policy
        # TimeoutMixin schedules with self.callLater: use the factory's clock.
        self.callLater = factory.clock.callLater
        peer = self.transport.getPeer()
        self.peer_host = getattr(peer, "host", "") or "local"
        self.is_loopback = is_loopback(peer)
        self.secure = ISSLTransport.providedBy(self.transport)
        self.tls_available = factory.tls_options is not None and not self.secure
        self.parser = CommandParser(
            max_line_length=policy.max_line_length,
            max_literal_size=policy.max_literal_size_unauthenticated,
        )
        self.session = Session(self, factory.portal, policy, throttle=factory.throttle,
                               clock=factory.clock, users=factory.per_user)
        self.transport.registerProducer(self, True)
        # Responses are written whole per reactor turn; do not let Nagle's
        # algorithm hold the tagged line back waiting for an ACK.
        set_no_delay = getattr(self.transport, "setTcpNoDelay", None)
        if set_no_delay is not None:
            try:
                set_no_delay(True)
            except OSError:
                pass
        if not factory.connection_opened(self):
            self.transport.write(responses.status(
                None, "BYE", "Too many connections from your address", "UNAVAILABLE"))
            self._closed = True
            self.transport.loseConnection()
            return
        self.setTimeout(policy.login_timeout)
        self._run(self.session.greet())

    def connectionLost(self, reason=None) -> None:
        self._closed = True
        self.setTimeout(None)
        self.factory.connection_closed(self)
        if hasattr(self, "session"):
            self.session.connection_lost()
        waiter, self._line_waiter = self._line_waiter, None
        if waiter is not None:
            waiter.errback(ClientGone())
        drain, self._drain = self._drain, None
        if drain is not None:
            drain.errback(ClientGone())

    def timeoutConnection(self) -> None:
        # RFC 9051 section 5.4: the autologout timer.
        self.transport.write(responses.status(None, "BYE", "Autologout; idle for too long"))
        self.close()

    # -- input -----------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        self.resetTimeout()
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
            while not self._closed:
                if self._busy and self._line_waiter is None:
                    return
                event = self.parser.next_event()
                if event is None:
                    return
                self._handle(event)
        finally:
            self._pumping = False

    def _handle(self, event) -> None:
        if isinstance(event, RawLine):
            waiter, self._line_waiter = self._line_waiter, None
            if waiter is not None:
                waiter.callback(event.line)
        elif isinstance(event, CommandReceived):
            self._busy = True
            self._backlog = 0
            self._run(self._execute(event.command))
        elif isinstance(event, ContinuationRequest):
            self.transport.write(responses.continuation("Ready for literal data"))
        elif isinstance(event, CommandError) and self._line_waiter is not None:
            # A raw line (SASL response, IDLE's DONE) that was too long.
            waiter, self._line_waiter = self._line_waiter, None
            waiter.errback(CommandFailed(event.message, event.code, "BAD"))
        elif isinstance(event, CommandError):
            # RFC 3501 6.4.4: an unsupported CHARSET is NO, not BAD.
            condition = "NO" if (event.code or "").startswith("BADCHARSET") else "BAD"
            self.transport.write(responses.status(event.tag, condition, event.message, event.code))
            self._count_bad()
        elif isinstance(event, FatalError):
            self.transport.write(responses.status(None, "BYE", event.message))
            self.close()

    def _count_bad(self) -> None:
        self.session.bad_commands += 1
        if self.session.bad_commands >= self.factory.policy.max_bad_commands:
            self.transport.write(responses.status(None, "BYE", "Too many invalid commands"))
            self.close()

    async def _execute(self, command) -> None:
        try:
            await self.session.execute(command)
        except ClientGone:
            return
        finally:
            self._busy = False
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
        if not self._closed:
            self.transport.write(responses.status(None, "BYE", "Internal server error"))
            self.close()

    # -- SessionIO ---------------------------------------------------------------

    def write(self, data: bytes) -> None:
        if not self._closed:
            self.transport.write(data)

    def drain(self) -> defer.Deferred:
        if self._closed:
            return defer.fail(ClientGone())
        if self._drain is not None:
            return self._drain
        return defer.succeed(None)

    def read_line(self) -> defer.Deferred:
        if self._closed:
            return defer.fail(ClientGone())
        self.parser.expect_line()
        self._line_waiter = defer.Deferred()
        waiter = self._line_waiter
        # Data for the line may already be buffered: look once the caller waits.
        self.factory.clock.callLater(0, self._pump)
        return waiter

    def start_tls(self) -> None:
        self.parser.discard_buffer()
        self.transport.startTLS(self.factory.tls_options)
        self.secure = True
        self.tls_available = False

    def set_max_literal(self, size: int) -> None:
        self.parser.max_literal_size = size

    def set_utf8(self, enabled: bool) -> None:
        self.parser.utf8 = enabled

    def set_timeout(self, seconds: float | None) -> None:
        self.setTimeout(seconds)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.transport.loseConnection()

    # -- IPushProducer: the transport tells us when the client is slow ----------

    def pauseProducing(self) -> None:
        if self._drain is None:
            self._drain = defer.Deferred()

    def resumeProducing(self) -> None:
        drain, self._drain = self._drain, None
        if drain is not None:
            drain.callback(None)

    def stopProducing(self) -> None:
        self.resumeProducing()


class IMAPServerFactory(ServerFactory):
    """
    Serves IMAP for the users of C{portal} (whose realm yields
    L{IMailStore} avatars).  C{tls_options} enables STARTTLS; wrap the
    factory in L{twisted.protocols.tls.TLSMemoryBIOFactory} for implicit TLS.
    """

    protocol = IMAPServerProtocol

    def __init__(self, portal, *, policy: ServerPolicy | None = None, tls_options=None,
                 throttle=None, clock=None) -> None:
        from twisted.internet import reactor

        self.portal = portal
        self.policy = policy or ServerPolicy()
        self.tls_options = tls_options
        self.clock = clock if clock is not None else reactor
        if throttle is None:
            throttle = _default_throttle(self.policy, self.clock)
        self.throttle = throttle
        self._per_address: Counter[str] = Counter()
        self.per_user: Counter[str] = Counter()
        self.connections: set[IMAPServerProtocol] = set()

    def connection_opened(self, protocol: IMAPServerProtocol) -> bool:
        self.connections.add(protocol)
        host = protocol.peer_host
        self._per_address[host] += 1
        protocol._counted = True
        return self._per_address[host] <= self.policy.max_connections_per_address

    def connection_closed(self, protocol: IMAPServerProtocol) -> None:
        self.connections.discard(protocol)
        if getattr(protocol, "_counted", False):
            protocol._counted = False
            host = protocol.peer_host
            self._per_address[host] -= 1
            if self._per_address[host] <= 0:
                del self._per_address[host]


    def disconnect_all(self, message: str = "Server shutting down") -> None:
        """Say BYE to every client and close its connection (for shutdown)."""
        for protocol in list(self.connections):
            protocol.write(responses.status(None, "BYE", message))
            protocol.close()


def _default_throttle(policy: ServerPolicy, clock):
    from twisted_mailhub.auth.throttle import FailureThrottle

    return FailureThrottle(clock, policy.auth_failure_delay, policy.auth_failure_delay_max)
