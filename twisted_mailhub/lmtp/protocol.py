"""
The Twisted layer of the LMTP server: bytes from the socket go into the
L{LMTPSession}, its output goes back, and its two questions (does this
recipient exist, deliver this message) are answered by L{LocalDelivery}.

Why not C{twisted.mail.smtp.LMTP}: its C{IMessageDelivery} wants one
C{IMessage} per recipient fed line by line with no way to answer a
recipient's delivery separately in the RFC 2033 sense, it knows neither
SMTPUTF8 nor ENHANCEDSTATUSCODES, and its replies carry Python exception
text.  The protocol here is a thin adapter around a core without I/O.
"""

from __future__ import annotations

import socket
import time
import uuid
from datetime import datetime, timezone
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger

from twisted_mailhub.connection import ServerConnection, ServerConnectionFactory
from twisted_mailhub.delivery import (
    DeliveryResult,
    Destination,
    LocalDelivery,
    Outcome,
    received_field,
)
from twisted_mailhub.lmtp import replies as R
from twisted_mailhub.lmtp.replies import Reply
from twisted_mailhub.lmtp.session import (
    ConnectionClosing,
    LMTPSession,
    MessageReceived,
    RecipientReceived,
    Transaction,
)
from twisted_mailhub.policy import ServerPolicy

#: RFC 5321 section 4.5.3.2.7: a server waits at least 5 minutes for the
#: next command.
DEFAULT_TIMEOUT = 10 * 60.0
#: Stop reading from a client with this much unconsumed input.
_PAUSE_AT = 256 * 1024

_REPLIES = {
    Outcome.DELIVERED: R.DELIVERED,
    Outcome.NO_SUCH_USER: R.NO_SUCH_USER,
    Outcome.OVER_QUOTA: R.MAILBOX_FULL,
    Outcome.TOO_BIG: R.REFUSED_TOO_BIG,
    Outcome.TRY_LATER: R.TRY_LATER,
}


def reply_for(result: DeliveryResult) -> Reply:
    """The per-recipient reply (RFC 2033 section 4.2) for a delivery's outcome."""
    return _REPLIES[result.outcome]


class LMTPServerProtocol(ServerConnection):
    """One LMTP connection."""

    log = Logger()
    protocol_name = "lmtp"

    def __init__(self) -> None:
        super().__init__()
        self._busy = False
        self._pumping = False
        self._reading_paused = False

    def connectionMade(self) -> None:
        factory = self.factory
        self.session = LMTPSession(
            factory.hostname, max_message_size=factory.policy.max_literal_size,
            max_bad_commands=factory.policy.max_bad_commands)
        if not self.setup_connection():
            self.write(R.TOO_MANY_CONNECTIONS.to_bytes())
            self.close()
            return
        self.setTimeout(factory.timeout)
        self.session.greet()
        self._advance()

    def connectionLost(self, reason: Any = None) -> None:
        self.teardown_connection()

    def timeoutConnection(self) -> None:
        self.session.close(R.TIMEOUT)
        self._advance()

    def goodbye(self, message: str) -> None:
        self.session.close(R.reply(421, "4.3.2", message))
        self._flush()

    def dataReceived(self, data: bytes) -> None:
        self.bytes_received = getattr(self, "bytes_received", 0) + len(data)
        self.resetTimeout()
        self.session.receive_data(data)
        self._advance()

    # -- running the session --------------------------------------------------------

    def _flush(self) -> None:
        data = self.session.data_to_send()
        if data:
            self.write(data)

    def _advance(self) -> None:
        # An answer given at once (a store that needs no wait) calls back
        # here from inside this loop: the loop then goes on, instead of
        # nesting one call per pipelined command.
        if self._pumping:
            return
        self._pumping = True
        try:
            self._run_events()
        finally:
            self._pumping = False
        self._flow_control()

    def _run_events(self) -> None:
        while not self._busy and not self.closed:
            event = self.session.next_event()
            self._flush()
            if event is None:
                break
            if isinstance(event, ConnectionClosing):
                self.close()
                return
            self._busy = True
            # No timeout while the store works: the client waits for us.
            self.setTimeout(None)
            if isinstance(event, RecipientReceived):
                work = self._check_recipient(event)
            else:
                work = self._deliver(event)
            d = defer.Deferred.fromCoroutine(work)
            d.addErrback(self._crashed)

    def _resume(self) -> None:
        self._busy = False
        if not self.closed:
            self.setTimeout(self.factory.timeout)
            self._advance()

    def _flow_control(self) -> None:
        if self.closed:
            return
        full = self.session.buffered > _PAUSE_AT and (self._busy or self.session.waiting)
        if full and not self._reading_paused:
            self._reading_paused = True
            self.transport.pauseProducing()
        elif not full and self._reading_paused:
            self._reading_paused = False
            self.transport.resumeProducing()

    async def _check_recipient(self, event: RecipientReceived) -> None:
        started = time.perf_counter()
        address = event.address
        try:
            destination = await self.factory.delivery.find(address.local, address.domain)
        except Exception:
            self.log.failure("Looking up the recipient {address} failed",
                             address=address.text)
            self.session.reject_recipient(R.TRY_LATER)
        else:
            if destination is None:
                self.log.info("LMTP: unknown recipient {address} rejected",
                              address=address.text)
                self.session.reject_recipient(R.NO_SUCH_USER)
            else:
                self.session.accept_recipient(destination)
        # The commands that wait on the store are the ones timed.
        self.report_command("RCPT", started)
        self._resume()

    async def _deliver(self, event: MessageReceived) -> None:
        started = time.perf_counter()
        transaction = event.transaction
        delivery: LocalDelivery = self.factory.delivery
        queue_id = uuid.uuid4().hex[:12]
        now = datetime.now(timezone.utc).astimezone()
        answers: list[Reply] = []
        done: dict[Destination, Reply] = {}
        for recipient in transaction.recipients:
            destination: Destination = recipient.token
            # The same mailbox named twice gets the message once.
            answer = done.get(destination)
            if answer is None:
                single = len(transaction.recipients) == 1
                received = received_field(
                    by=self.factory.hostname, when=now, from_name=transaction.client_name,
                    from_info=self._peer_info(), protocol=_protocol(transaction),
                    id=queue_id, recipient=recipient.address.text if single else None,
                    comment="twisted_mailhub")
                result = await delivery.deliver(destination, event.content,
                                                sender=transaction.sender.text,
                                                received=received)
                answer = reply_for(result)
                done[destination] = answer
                self.log.info(
                    "LMTP {id}: <{sender}> to <{recipient}>: {outcome}{where}", id=queue_id,
                    sender=transaction.sender.text, recipient=recipient.address.text,
                    outcome=result.outcome.value,
                    where=f" ({result.mailbox} UID {result.uid})" if result.delivered else "")
            answers.append(answer)
        self.session.deliveries_done(answers)
        self.report_command("DATA", started)
        self._resume()

    def _peer_info(self) -> str | None:
        peer = self.transport.getPeer()
        host = getattr(peer, "host", None)
        return f"[{host}]" if host else None

    def _crashed(self, failure: Any) -> None:
        self.log.failure("LMTP session crashed", failure)
        if not self.closed:
            self.write(R.reply(421, "4.3.0", "Internal server error; closing").to_bytes())
            self.close()


def _protocol(transaction: Transaction) -> str:
    # RFC 3848 and RFC 6531 section 3.7.3 name the protocol of the "with" clause.
    return "UTF8LMTP" if transaction.smtputf8 else "LMTP"


class LMTPServerFactory(ServerConnectionFactory):
    """
    Serves LMTP (RFC 2033), delivering with C{delivery} (a
    L{LocalDelivery}).  The largest message is the policy's
    C{max_literal_size}, the same bound as an IMAP APPEND; C{hostname}
    names the server in its greeting and trace fields (the host's name by
    default); C{timeout} is how long a client may stay silent.
    """

    protocol = LMTPServerProtocol

    def __init__(self, delivery: LocalDelivery, *, policy: ServerPolicy | None = None,
                 hostname: str | None = None, timeout: float = DEFAULT_TIMEOUT,
                 clock: Any = None) -> None:
        super().__init__(None, policy=policy, clock=clock)
        self.delivery = delivery
        self.hostname = hostname or socket.getfqdn() or "localhost"
        self.timeout = timeout
