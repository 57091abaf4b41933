"""
What the protocols tell an observer of the server: connections opened,
refused and closed, login attempts, and commands run with their duration.

The IMAP and POP3 layers call their factory's C{observer} at these few
points and nowhere else; L{twisted_mailhub.metrics} is the observer that
counts them for Prometheus.  The default, L{NULL_OBSERVER}, does nothing, so
a server without metrics pays one method call per event.

Every call is made in the reactor thread and must return quickly without
blocking: an observer records, it does not do I/O.
"""

from __future__ import annotations

from typing import Any

from zope.interface import Interface, implementer

__all__ = ["IServerObserver", "NullObserver", "NULL_OBSERVER"]


class IServerObserver(Interface):
    """
    Told of the events of the connections of one or more protocol factories.

    C{connection} arguments are L{twisted_mailhub.connection.ServerConnection}
    instances: their C{protocol_name} (C{"imap"}, C{"imaps"}, C{"pop3"},
    C{"pop3s"}, ...: the listener's kind, C{"s"} for implicit TLS),
    C{peer_host}, and the counts C{bytes_received} and C{bytes_sent} of
    protocol bytes (before TLS), which grow until the connection closes.
    C{protocol} arguments are such a C{protocol_name}.
    """

    def connection_opened(connection: Any) -> None:
        """A client connected (called before any connection limit is applied)."""

    def connection_refused(connection: Any, reason: str) -> None:
        """
        C{connection}, already reported opened, is being turned away (for
        now only C{reason} C{"too-many-connections"}, the per-address cap).
        """

    def connection_closed(connection: Any) -> None:
        """A connection reported opened is gone; its byte counts are final."""

    def login(protocol: str, mechanism: str, succeeded: bool) -> None:
        """
        A login attempt was decided: C{mechanism} is C{"LOGIN"} (IMAP),
        C{"USER"} (POP3 USER/PASS) or the SASL mechanism's name.
        """

    def command(protocol: str, name: str, seconds: float) -> None:
        """
        A command ran to its end (response written) in C{seconds}.  C{name}
        is the command's name as the protocol's parser knows it (IMAP:
        C{"FETCH"}, C{"UID FETCH"}, ...; POP3: C{"RETR"}, ...), or C{"other"}
        for a line that was not a command the server knows.
        """


@implementer(IServerObserver)
class NullObserver:
    """An observer that records nothing: the default of every factory."""

    def connection_opened(self, connection: Any) -> None:
        pass

    def connection_refused(self, connection: Any, reason: str) -> None:
        pass

    def connection_closed(self, connection: Any) -> None:
        pass

    def login(self, protocol: str, mechanism: str, succeeded: bool) -> None:
        pass

    def command(self, protocol: str, name: str, seconds: float) -> None:
        pass


#: The shared do-nothing observer.
NULL_OBSERVER = NullObserver()
