"""
What IMAP and POP3 connections share: facts about the peer, flow control
towards a slow client, timeouts, and per-address connection accounting.

A session (IMAP or POP3) writes through its connection and awaits
L{ServerConnection.drain} between large pieces, so a client that stops
reading pauses the server instead of growing its buffers.
"""

from __future__ import annotations

import ipaddress
import time
from collections import Counter
from typing import Any, Awaitable, Protocol as TypingProtocol

from twisted.internet import defer
from twisted.internet.interfaces import IPushProducer, ISSLTransport
from twisted.internet.protocol import Protocol, ServerFactory
from twisted.protocols.policies import TimeoutMixin
from zope.interface import implementer

from twisted_mailhub.observer import NULL_OBSERVER, IServerObserver
from twisted_mailhub.policy import ServerPolicy

#: Bytes a connection's transport may hold before the session waits (drain).
WRITE_BUFFER = 256 * 1024


class ClientGone(Exception):
    """The connection closed while a command was still running."""


class ConnectionIO(TypingProtocol):
    """What an IMAP or POP3 session needs from its connection."""

    secure: bool  # TLS is active
    tls_available: bool  # STARTTLS / STLS may be offered
    is_loopback: bool
    peer_host: str
    protocol_name: str  # "imap", "imaps", "pop3", ...: the listener's kind

    def write(self, data: bytes) -> None: ...

    def drain(self) -> Awaitable[None]:
        """Fires when the client has read enough that writing may go on."""

    def read_line(self) -> Awaitable[bytes]:
        """The client's next raw line (SASL responses, IMAP IDLE's DONE)."""

    def start_tls(self) -> None:
        """Discard buffered input and start the TLS handshake."""

    def set_timeout(self, seconds: float | None) -> None: ...

    def close(self) -> None: ...

    def report_login(self, mechanism: str, username: str | bytes | None,
                     succeeded: bool) -> None:
        """Log (a failure) and tell the observer of a decided login attempt."""


def is_loopback(address: Any) -> bool:
    """Whether C{address} is on this machine: 127.0.0.0/8, ::1 or a UNIX socket."""
    host = getattr(address, "host", None)
    if host is None:
        # UNIX sockets are local by construction.
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


@implementer(IPushProducer)
class ServerConnection(Protocol, TimeoutMixin):
    """
    Base of the IMAP and POP3 protocols.  Subclasses call
    L{setup_connection} first thing in C{connectionMade} and
    L{teardown_connection} in C{connectionLost}; they implement
    L{goodbye} to say a protocol-specific last word, and count what they
    read in C{bytes_received}.
    """

    #: The protocol's name for logs and metrics; implicit TLS adds an "s".
    protocol_name = ""

    def __init__(self) -> None:
        self.secure = False
        self.tls_available = False
        self.is_loopback = False
        self.peer_host = ""
        self.closed = False
        self._drain: defer.Deferred | None = None
        self._line_waiter: defer.Deferred | None = None
        self._counted = False
        self._registered = False
        # Protocol bytes (before TLS), for the observer.
        self.bytes_received = 0
        self.bytes_sent = 0

    def setup_connection(self) -> bool:
        """
        Learn about the peer and the transport; False if the factory refuses
        this connection (too many from its address).
        """
        factory = self.factory
        # TimeoutMixin schedules with self.callLater: use the factory's clock.
        self.callLater = factory.clock.callLater
        peer = self.transport.getPeer()
        self.peer_host = getattr(peer, "host", "") or "local"
        self.is_loopback = is_loopback(peer)
        # Implicit TLS: the factory is wrapped in TLSMemoryBIOFactory.
        self.secure = ISSLTransport.providedBy(self.transport)
        if self.secure:
            self.protocol_name += "s"
        self.tls_available = factory.tls_options is not None and not self.secure
        self.transport.registerProducer(self, True)
        self._registered = True
        # How much the transport holds before it pauses the session (see
        # drain): Twisted's 64 KB is three messages of a pipelined download,
        # and each pause costs a reactor turn before writing goes on.
        if isinstance(getattr(self.transport, "bufferSize", None), int):
            self.transport.bufferSize = max(self.transport.bufferSize, WRITE_BUFFER)
        # Responses are written whole per reactor turn; do not let Nagle's
        # algorithm hold the last line back waiting for an ACK.
        self._set_tcp_option("setTcpNoDelay", True)
        # A client that vanished without a FIN (suspended laptop, dropped
        # NAT mapping) is found dead by the kernel's keepalive probes, and
        # its connection slots are given back.
        if factory.policy.tcp_keepalive:
            self._set_tcp_option("setTcpKeepAlive", True)
        return factory.connection_opened(self)

    def _set_tcp_option(self, name: str, value: bool) -> None:
        # TCP transports only (TLS wrappers pass the call through); a UNIX
        # socket has neither option.
        setter = getattr(self.transport, name, None)
        if setter is not None:
            try:
                setter(value)
            except OSError:
                pass

    def teardown_connection(self) -> None:
        """Forget this connection and fail whatever waited on the client."""
        self.closed = True
        self.setTimeout(None)
        self.factory.connection_closed(self)
        for pending in (self._line_waiter, self._drain):
            if pending is not None:
                pending.errback(ClientGone())
        self._line_waiter = self._drain = None

    def goodbye(self, message: str) -> None:
        """Say C{message} as the protocol's last word before closing."""
        raise NotImplementedError

    # -- what sessions use -------------------------------------------------

    def write(self, data: bytes) -> None:
        if not self.closed:
            self.bytes_sent += len(data)
            self.transport.write(data)

    def drain(self) -> defer.Deferred:
        """Fires when the client has read enough that writing may go on."""
        if self.closed:
            return defer.fail(ClientGone())
        if self._drain is not None:
            return self._drain
        return defer.succeed(None)

    def start_tls(self) -> None:
        """Start the TLS handshake (after the protocol's go-ahead was written)."""
        self.transport.startTLS(self.factory.tls_options)
        self.secure = True
        self.tls_available = False

    def set_timeout(self, seconds: float | None) -> None:
        self.setTimeout(seconds)

    def report_login(self, mechanism: str, username: str | bytes | None,
                     succeeded: bool) -> None:
        """
        A login attempt was decided: a failure is logged in the one line
        fail2ban matches (L{log_auth_failure}); the observer hears of both.
        """
        if not succeeded:
            from twisted_mailhub.auth.throttle import log_auth_failure

            log_auth_failure(username, self.peer_host, self.protocol_name, mechanism)
        self.factory.observer.login(self.protocol_name, mechanism, succeeded)

    def report_command(self, name: str, started: float) -> None:
        """
        Tell the observer that command C{name}, begun at C{started} (a
        L{time.perf_counter} value), is done.
        """
        self.factory.observer.command(self.protocol_name, name, time.perf_counter() - started)

    def close(self) -> None:
        """
        Close after what was written is sent.  Over TLS this sends the
        close_notify alert and then closes the TCP connection: Twisted's TLS
        transport waits for its producer to go before it does either, so
        this connection stops being one first.
        """
        if not self.closed:
            self.closed = True
            self._unregister()
            self.transport.loseConnection()

    def _unregister(self) -> None:
        if self._registered:
            self._registered = False
            self.transport.unregisterProducer()

    # -- IPushProducer: the transport tells us when the client is slow --------

    def pauseProducing(self) -> None:
        if self._drain is None:
            self._drain = defer.Deferred()

    def resumeProducing(self) -> None:
        drain, self._drain = self._drain, None
        if drain is not None:
            drain.callback(None)

    def stopProducing(self) -> None:
        self.resumeProducing()


class ServerConnectionFactory(ServerFactory):
    """
    Shared by the IMAP and POP3 factories: the portal, policy, TLS options,
    clock and failure throttle, and the connections per address.

    C{observer} (an L{IServerObserver}) is told of connections, logins and
    commands; set it before the factory serves (L{NULL_OBSERVER} by default).
    """

    observer: IServerObserver = NULL_OBSERVER

    def __init__(self, portal, *, policy: ServerPolicy | None = None, tls_options=None,
                 throttle=None, clock=None) -> None:
        if clock is None:
            from twisted.internet import reactor as clock
        self.portal = portal
        self.policy = policy or ServerPolicy()
        self.tls_options = tls_options
        self.clock = clock
        if throttle is None:
            from twisted_mailhub.auth.throttle import FailureThrottle

            throttle = FailureThrottle(clock, self.policy.auth_failure_delay,
                                       self.policy.auth_failure_delay_max)
        self.throttle = throttle
        self._per_address: Counter[str] = Counter()
        self.connections: set[ServerConnection] = set()

    def connection_opened(self, protocol: ServerConnection) -> bool:
        """Count C{protocol}; False when its address has too many connections."""
        self.connections.add(protocol)
        self._per_address[protocol.peer_host] += 1
        protocol._counted = True
        self.observer.connection_opened(protocol)
        if self._per_address[protocol.peer_host] <= self.policy.max_connections_per_address:
            return True
        from twisted_mailhub.auth.throttle import log_connection_refused

        log_connection_refused(protocol.peer_host, protocol.protocol_name,
                               "too-many-connections")
        self.observer.connection_refused(protocol, "too-many-connections")
        return False

    def connection_closed(self, protocol: ServerConnection) -> None:
        """Forget C{protocol}."""
        self.connections.discard(protocol)
        if protocol._counted:
            protocol._counted = False
            host = protocol.peer_host
            self._per_address[host] -= 1
            if self._per_address[host] <= 0:
                del self._per_address[host]
            self.observer.connection_closed(protocol)

    def disconnect_all(self, message: str = "Server shutting down") -> None:
        """Say C{message} to every client and close its connection (for shutdown)."""
        for protocol in list(self.connections):
            protocol.goodbye(message)
            protocol.close()
