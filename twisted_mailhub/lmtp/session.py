"""
The LMTP server's state machine, without I/O (RFC 2033 on RFC 5321).

Bytes from the client go in with L{LMTPSession.receive_data}; the bytes
to send come out of L{LMTPSession.data_to_send}; the two decisions the
session cannot make alone come out of L{LMTPSession.next_event} as
events, and the session waits, reading nothing further, until it is told
the answer:

  - L{RecipientReceived}: is this address a mailbox here?  Answer with
    L{LMTPSession.accept_recipient} (giving a token the session hands back
    with the message) or L{LMTPSession.reject_recipient}.
  - L{MessageReceived}: deliver this message to the accepted recipients.
    Answer with L{LMTPSession.deliveries_done}, one reply per recipient in
    the order of their RCPT commands (RFC 2033 section 4.2).

L{ConnectionClosing} says the connection should be closed once what is to
send has been sent (after QUIT, or too many errors).

Commands are run one at a time in the order received, so a client may
pipeline them (RFC 2920): each reply is queued as its command runs.  A
command line is bounded (C{max_command_length}); the message by
C{max_message_size} (SIZE, RFC 1870).  Bad commands get their 5xx reply
and the session goes on, up to C{max_bad_commands}.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Sequence

from twisted_mailhub.lmtp import replies as R
from twisted_mailhub.lmtp.commands import (
    Address,
    CommandError,
    parse_domain,
    parse_mail,
    parse_rcpt,
    split_command,
)
from twisted_mailhub.lmtp.data import DataReader
from twisted_mailhub.lmtp.replies import Reply, reply

#: RFC 5321 section 4.5.3.1.4 allows a server to accept longer command
#: lines than 512 octets; SMTPUTF8 addresses and parameters need some room.
DEFAULT_MAX_COMMAND_LENGTH = 4096
#: RFC 5321 section 4.5.3.1.8: at least 100 recipients must be accepted.
DEFAULT_MAX_RECIPIENTS = 1000


class State(enum.Enum):
    """Where the session is."""

    GREETED = "greeted"  # waiting for LHLO
    READY = "ready"  # LHLO done, no transaction
    MAIL = "mail"  # MAIL accepted, taking RCPT
    DATA = "data"  # reading the message text
    CLOSED = "closed"


# -- events ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RecipientReceived:
    """RCPT TO named C{address}: accept or reject it."""

    address: Address
    transaction: "Transaction"


@dataclass(frozen=True, slots=True)
class MessageReceived:
    """The message of C{transaction} arrived: deliver C{content} to its recipients."""

    transaction: "Transaction"
    content: bytes


@dataclass(frozen=True, slots=True)
class ConnectionClosing:
    """Close the connection once the pending output is sent."""


Event = RecipientReceived | MessageReceived | ConnectionClosing


@dataclass(frozen=True, slots=True)
class AcceptedRecipient:
    """A recipient whose RCPT was accepted, with the token given on accepting it."""

    address: Address
    token: Any


@dataclass(slots=True)
class Transaction:
    """
    One mail transaction (RFC 5321 section 3.3): the sender, what MAIL
    said of the body (C{body} is C{"7BIT"}, C{"8BITMIME"} or C{None} when
    not said; C{smtputf8}, C{size}), and the recipients accepted so far.
    """

    sender: Address
    client_name: str
    body: str | None = None
    smtputf8: bool = False
    size: int | None = None
    recipients: list[AcceptedRecipient] = field(default_factory=list)


class LMTPSession:
    """
    One LMTP connection's protocol state (see the module docstring).

    C{hostname} is the server's name in the greeting and LHLO reply.
    """

    def __init__(self, hostname: str, *, max_message_size: int,
                 max_command_length: int = DEFAULT_MAX_COMMAND_LENGTH,
                 max_recipients: int = DEFAULT_MAX_RECIPIENTS,
                 max_bad_commands: int = 20) -> None:
        self.hostname = hostname
        self.max_message_size = max_message_size
        self.max_command_length = max_command_length
        self.max_recipients = max_recipients
        self.max_bad_commands = max_bad_commands
        self.state = State.GREETED
        self.client_name: str | None = None
        self.transaction: Transaction | None = None
        self.bad_commands = 0
        self._input = bytearray()
        self._output: list[bytes] = []
        self._discarding = False
        self._reader: DataReader | None = None
        # The event whose answer the session waits for.
        self._waiting: Event | None = None
        self._closing_told = False

    # -- the I/O side's calls -------------------------------------------------------

    def greet(self) -> None:
        """Queue the greeting (RFC 2033 section 4: ``220`` with the host name)."""
        self._send(reply(220, "", f"{self.hostname} LMTP server ready"))

    def receive_data(self, data: bytes) -> None:
        """Take bytes from the client (any chunking; nothing runs until L{next_event})."""
        if self.state is not State.CLOSED:
            self._input += data

    def data_to_send(self) -> bytes:
        """The bytes queued for the client since the last call."""
        data = b"".join(self._output)
        self._output.clear()
        return data

    @property
    def buffered(self) -> int:
        """Octets received and not yet consumed (for flow control)."""
        return len(self._input)

    @property
    def waiting(self) -> bool:
        """Whether an event's answer is awaited."""
        return self._waiting is not None

    def next_event(self) -> Event | None:
        """
        Run what was received as far as possible; return the next event, or
        C{None} when more input (or the answer to the last event) is needed.
        """
        if self._waiting is not None:
            return None
        while True:
            if self.state is State.CLOSED:
                if self._closing_told:
                    return None
                self._closing_told = True
                return ConnectionClosing()
            if self.state is State.DATA:
                event = self._read_data()
                if event is None and self.state is State.DATA:
                    return None
                if event is not None:
                    return event
                continue
            line = self._next_line()
            if line is None:
                return None
            event = self._run_line(line)
            if event is not None:
                self._waiting = event
                return event

    def accept_recipient(self, token: Any = None) -> None:
        """Accept the recipient of the pending L{RecipientReceived}; C{token} is kept."""
        event = self._pending(RecipientReceived)
        self._answered()
        event.transaction.recipients.append(AcceptedRecipient(event.address, token))
        self._send(R.RECIPIENT_OK)

    def reject_recipient(self, answer: Reply) -> None:
        """Refuse the recipient of the pending L{RecipientReceived} with C{answer}."""
        self._pending(RecipientReceived)
        if answer.positive:
            raise ValueError("a rejection needs a 4xx or 5xx reply")
        self._answered()
        self._send(answer)

    def deliveries_done(self, answers: Sequence[Reply]) -> None:
        """
        Give the outcome of the pending L{MessageReceived}: one reply per
        accepted recipient, in their order.  The transaction then ends.
        """
        event = self._pending(MessageReceived)
        if len(answers) != len(event.transaction.recipients):
            raise ValueError("one reply per accepted recipient is needed")
        self._answered()
        self._end_transaction()
        for answer in answers:
            self._send(answer)

    def close(self, last: Reply | None = None) -> None:
        """End the session (timeout, shutdown), sending C{last} as the final reply."""
        if self.state is State.CLOSED:
            return
        if last is not None:
            self._send(last)
        self.state = State.CLOSED
        self._input.clear()

    # -- input framing ---------------------------------------------------------------

    def _next_line(self) -> bytes | None:
        while True:
            end = self._input.find(b"\n")
            if self._discarding:
                # The rest of a line already answered as too long.
                if end < 0:
                    self._input.clear()
                    return None
                del self._input[:end + 1]
                self._discarding = False
                continue
            if end < 0:
                if len(self._input) > self.max_command_length:
                    self._input.clear()
                    self._discarding = True
                    self._bad(R.LINE_TOO_LONG)
                    if self.state is State.CLOSED:
                        return None
                return None
            line = bytes(self._input[:end])
            del self._input[:end + 1]
            if line.endswith(b"\r"):
                line = line[:-1]
            if len(line) > self.max_command_length:
                self._bad(R.LINE_TOO_LONG)
                if self.state is State.CLOSED:
                    return None
                continue
            return line

    def _read_data(self) -> Event | None:
        reader = self._reader
        assert reader is not None and self.transaction is not None
        rest = reader.feed(bytes(self._input))
        self._input.clear()
        if rest is None:
            return None
        self._input += rest
        self._reader = None
        transaction = self.transaction
        if reader.too_big:
            # RFC 2033 section 4.2: one reply per recipient, whatever failed.
            for _ in transaction.recipients:
                self._send(R.TOO_BIG)
            self._end_transaction()
            return None
        event = MessageReceived(transaction, reader.content or b"")
        self._waiting = event
        return event

    # -- commands ---------------------------------------------------------------------

    def _run_line(self, line: bytes) -> Event | None:
        try:
            command = split_command(line)
        except CommandError as e:
            self._bad(e.reply)
            return None
        handler = getattr(self, f"_do_{command.verb}", None)
        if handler is None:
            answer = _NOT_IMPLEMENTED.get(command.verb, R.UNKNOWN_COMMAND)
            self._bad(answer)
            return None
        try:
            return handler(command.argument)
        except CommandError as e:
            if e.reply.code in (500, 501, 503, 555):
                self._bad(e.reply)
            else:
                self._send(e.reply)
            return None

    def _do_LHLO(self, argument: bytes) -> None:
        self.client_name = parse_domain(argument)
        # Like EHLO (RFC 5321 section 4.1.4), LHLO ends any transaction.
        self.transaction = None
        self.state = State.READY
        self._send(Reply.of(
            250, "", self.hostname, "PIPELINING", "ENHANCEDSTATUSCODES", "8BITMIME",
            "SMTPUTF8", f"SIZE {self.max_message_size}",
        ))

    def _do_HELO(self, argument: bytes) -> None:
        raise CommandError(R.USE_LHLO)

    _do_EHLO = _do_HELO

    def _do_MAIL(self, argument: bytes) -> None:
        if self.state is State.GREETED:
            raise CommandError(R.NEED_LHLO)
        if self.transaction is not None:
            raise CommandError(R.NESTED_MAIL)
        command = parse_mail(argument)
        assert self.client_name is not None
        transaction = Transaction(command.address, self.client_name)
        for keyword, value in command.params.items():
            if keyword == "BODY":
                # RFC 6152 (8BITMIME) section 3.
                body = (value or "").upper()
                if body not in ("7BIT", "8BITMIME"):
                    raise CommandError(reply(501, "5.5.4", "BODY must be 7BIT or 8BITMIME"))
                transaction.body = body
            elif keyword == "SMTPUTF8":
                # RFC 6531 section 3.4: a parameter without value.
                if value is not None:
                    raise CommandError(reply(501, "5.5.4", "SMTPUTF8 takes no value"))
                transaction.smtputf8 = True
            elif keyword == "SIZE":
                # RFC 1870 section 6.
                if value is None or not value.isdigit() or len(value) > 20:
                    raise CommandError(reply(501, "5.5.4", "SIZE needs a number of octets"))
                if int(value) > self.max_message_size:
                    raise CommandError(R.TOO_BIG)
                transaction.size = int(value)
            else:
                raise CommandError(reply(555, "5.5.4", f"Unsupported parameter: {keyword}"))
        if not transaction.smtputf8 and not command.address.ascii:
            raise CommandError(R.NON_ASCII_ADDRESS)
        self.transaction = transaction
        self.state = State.MAIL
        self._send(R.SENDER_OK)

    def _do_RCPT(self, argument: bytes) -> RecipientReceived | None:
        if self.transaction is None:
            raise CommandError(R.NEED_MAIL if self.state is not State.GREETED else R.NEED_LHLO)
        command = parse_rcpt(argument)
        if command.params:
            keyword = next(iter(command.params))
            raise CommandError(reply(555, "5.5.4", f"Unsupported parameter: {keyword}"))
        if not self.transaction.smtputf8 and not command.address.ascii:
            raise CommandError(R.NON_ASCII_ADDRESS)
        if len(self.transaction.recipients) >= self.max_recipients:
            raise CommandError(R.TOO_MANY_RECIPIENTS)
        return RecipientReceived(command.address, self.transaction)

    def _do_DATA(self, argument: bytes) -> None:
        if argument.strip():
            raise CommandError(reply(501, "5.5.4", "DATA takes no argument"))
        if self.transaction is None:
            raise CommandError(R.NEED_MAIL if self.state is not State.GREETED else R.NEED_LHLO)
        if not self.transaction.recipients:
            # RFC 2033 section 4.2.
            raise CommandError(R.NO_RECIPIENTS)
        self._reader = DataReader(self.max_message_size)
        self.state = State.DATA
        self._send(R.START_DATA)

    def _do_RSET(self, argument: bytes) -> None:
        self._end_transaction()
        self._send(R.OK)

    def _do_NOOP(self, argument: bytes) -> None:
        self._send(R.OK)

    def _do_VRFY(self, argument: bytes) -> None:
        # RFC 5321 section 3.5.3: 252 when the server will not say.
        self._send(R.VRFY)

    def _do_HELP(self, argument: bytes) -> None:
        self._send(reply(214, "2.0.0", "Commands: LHLO MAIL RCPT DATA RSET NOOP VRFY QUIT"))

    def _do_QUIT(self, argument: bytes) -> None:
        self.close(R.BYE)

    # -- helpers ------------------------------------------------------------------------

    def _pending(self, kind: type) -> Any:
        event = self._waiting
        if not isinstance(event, kind):
            raise RuntimeError(f"no pending {kind.__name__} to answer")
        return event

    def _answered(self) -> None:
        self._waiting = None

    def _end_transaction(self) -> None:
        self.transaction = None
        self._reader = None
        if self.state in (State.MAIL, State.DATA):
            self.state = State.READY

    def _send(self, answer: Reply) -> None:
        self._output.append(answer.to_bytes())

    def _bad(self, answer: Reply) -> None:
        self._send(answer)
        self.bad_commands += 1
        if self.bad_commands >= self.max_bad_commands:
            self.close(R.TOO_MANY_ERRORS)


_NOT_IMPLEMENTED = {
    verb: reply(502, "5.5.1", f"{verb} is not implemented here")
    for verb in ("EXPN", "TURN", "ETRN", "BDAT", "STARTTLS", "AUTH")
}
