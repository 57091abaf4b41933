"""
The LMTP state machine without I/O: transcripts of client lines and the
exact server bytes, as RFC 2033 writes its examples, and the session's
answers to bad input (the session always goes on).
"""

from __future__ import annotations

from typing import Callable

import pytest

from twisted_mailhub.lmtp import replies as R
from twisted_mailhub.lmtp.session import (
    ConnectionClosing,
    LMTPSession,
    MessageReceived,
    RecipientReceived,
    State,
)

USERS = {"pat", "green", "alice", "jörg"}


class Conversation:
    """
    A session driven as a server would drive it: known users are accepted
    (their name is the token), messages are delivered with C{outcome(user)}.
    """

    def __init__(self, session: LMTPSession | None = None,
                 outcome: Callable[[str], R.Reply] = lambda user: R.DELIVERED) -> None:
        self.session = session or LMTPSession("foo.edu", max_message_size=1_000_000)
        self.outcome = outcome
        self.delivered: list[tuple[str, list[str], bytes]] = []
        self.closing = False
        self.session.greet()

    def run(self) -> bytes:
        while (event := self.session.next_event()) is not None:
            if isinstance(event, RecipientReceived):
                if event.address.local in USERS:
                    self.session.accept_recipient(event.address.local)
                else:
                    self.session.reject_recipient(R.NO_SUCH_USER)
            elif isinstance(event, MessageReceived):
                users = [r.token for r in event.transaction.recipients]
                self.delivered.append((event.transaction.sender.text, users, event.content))
                self.session.deliveries_done([self.outcome(user) for user in users])
            elif isinstance(event, ConnectionClosing):
                self.closing = True
        return self.session.data_to_send()

    def send(self, data: bytes) -> bytes:
        self.session.receive_data(data)
        return self.run()


def transcript(script: str, conversation: Conversation | None = None) -> Conversation:
    """
    Play C{script}: "C:" lines are sent one at a time, and what the server
    says after each must be exactly the "S:" lines that follow it.
    """
    conversation = conversation or Conversation()
    expected: list[str] = []
    said = conversation.run()

    def check() -> None:
        want = "".join(line + "\r\n" for line in expected).encode()
        assert said.decode(errors="replace").splitlines() == want.decode().splitlines()
        assert said == want
        expected.clear()

    for line in script.splitlines():
        line = line.strip()
        if not line:
            continue
        who, _, text = line.partition(":")
        text = text[1:]
        if who == "S":
            expected.append(text)
            continue
        check()
        said = conversation.send(text.encode() + b"\r\n")
    check()
    return conversation


LHLO_REPLY = """
S: 250-foo.edu
S: 250-PIPELINING
S: 250-ENHANCEDSTATUSCODES
S: 250-8BITMIME
S: 250-SMTPUTF8
S: 250 SIZE 1000000
"""


def test_rfc2033_example_one_reply_per_recipient() -> None:
    # RFC 2033 section 4.2, with this server's texts and enhanced codes.
    over_quota = Conversation(outcome=lambda user: R.MAILBOX_FULL if user == "green"
                              else R.DELIVERED)
    done = transcript(f"""
        S: 220 foo.edu LMTP server ready
        C: LHLO foo.edu
        {LHLO_REPLY}
        C: MAIL FROM:<chris@bar.com>
        S: 250 2.1.0 Sender OK
        C: RCPT TO:<pat@foo.edu>
        S: 250 2.1.5 Recipient OK
        C: RCPT TO:<jones@foo.edu>
        S: 550 5.1.1 No such user here
        C: RCPT TO:<green@foo.edu>
        S: 250 2.1.5 Recipient OK
        C: DATA
        S: 354 Start mail input; end with <CRLF>.<CRLF>
        C: Blah blah blah...
        C: ...etc. etc. etc.
        C: .
        S: 250 2.0.0 Delivered
        S: 452 4.2.2 Mailbox full; try again later
        C: QUIT
        S: 221 2.0.0 Bye
    """, over_quota)
    assert done.delivered == [
        ("chris@bar.com", ["pat", "green"], b"Blah blah blah...\r\n..etc. etc. etc.\r\n")]
    assert done.closing
    assert done.session.state is State.CLOSED


def test_pipelined_commands_get_their_replies_in_order() -> None:
    # RFC 2920: the whole transaction in one write.
    conversation = Conversation()
    conversation.run()
    said = conversation.send(
        b"LHLO mx.example\r\nMAIL FROM:<>\r\nRCPT TO:<alice@foo.edu>\r\n"
        b"RCPT TO:<nobody@foo.edu>\r\nRCPT TO:<pat@foo.edu>\r\nDATA\r\n")
    assert said.split(b"\r\n")[6:] == [
        b"250 2.1.0 Sender OK", b"250 2.1.5 Recipient OK", b"550 5.1.1 No such user here",
        b"250 2.1.5 Recipient OK", b"354 Start mail input; end with <CRLF>.<CRLF>", b""]
    said = conversation.send(b"Subject: hi\r\n\r\nbody\r\n.\r\nMAIL FROM:<a@b>\r\nRSET\r\n")
    assert said == (b"250 2.0.0 Delivered\r\n250 2.0.0 Delivered\r\n"
                    b"250 2.1.0 Sender OK\r\n250 2.0.0 OK\r\n")
    assert conversation.delivered == [("", ["alice", "pat"], b"Subject: hi\r\n\r\nbody\r\n")]


def test_the_session_waits_for_an_answer_before_reading_on() -> None:
    session = LMTPSession("foo.edu", max_message_size=1000)
    session.receive_data(b"LHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<pat>\r\nNOOP\r\n")
    event = session.next_event()
    assert isinstance(event, RecipientReceived)
    assert session.next_event() is None
    assert session.waiting
    assert session.data_to_send().endswith(b"250 2.1.0 Sender OK\r\n")
    session.accept_recipient("pat")
    assert session.next_event() is None
    assert session.data_to_send() == b"250 2.1.5 Recipient OK\r\n250 2.0.0 OK\r\n"
    with pytest.raises(RuntimeError):
        session.accept_recipient("again")


def test_one_reply_per_recipient_is_required() -> None:
    session = LMTPSession("foo.edu", max_message_size=1000)
    session.receive_data(b"LHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<pat>\r\n")
    session.next_event()
    with pytest.raises(ValueError):
        session.reject_recipient(R.OK)
    session.accept_recipient("pat")
    session.receive_data(b"DATA\r\nhi\r\n.\r\n")
    assert isinstance(session.next_event(), MessageReceived)
    with pytest.raises(ValueError):
        session.deliveries_done([])
    # The mistake did not answer the event.
    session.data_to_send()
    session.deliveries_done([R.DELIVERED])
    assert session.data_to_send() == b"250 2.0.0 Delivered\r\n"


def test_helo_and_ehlo_are_not_lmtp() -> None:
    transcript("""
        S: 220 foo.edu LMTP server ready
        C: EHLO foo.edu
        S: 500 5.5.1 This is LMTP: say LHLO, not HELO or EHLO (RFC 2033)
        C: HELO foo.edu
        S: 500 5.5.1 This is LMTP: say LHLO, not HELO or EHLO (RFC 2033)
        C: MAIL FROM:<chris@bar.com>
        S: 503 5.5.1 Say LHLO first
        C: LHLO
        S: 501 Syntax: LHLO hostname
    """)


def test_commands_out_of_sequence() -> None:
    transcript(f"""
        S: 220 foo.edu LMTP server ready
        C: LHLO foo.edu
        {LHLO_REPLY}
        C: RCPT TO:<pat@foo.edu>
        S: 503 5.5.1 Need MAIL before RCPT
        C: DATA
        S: 503 5.5.1 Need MAIL before RCPT
        C: MAIL FROM:<chris@bar.com>
        S: 250 2.1.0 Sender OK
        C: MAIL FROM:<chris@bar.com>
        S: 503 5.5.1 A transaction is already open; RSET first
        C: RCPT TO:<nobody@foo.edu>
        S: 550 5.1.1 No such user here
        C: DATA
        S: 503 5.5.1 No valid recipients
        C: RSET
        S: 250 2.0.0 OK
        C: RCPT TO:<pat@foo.edu>
        S: 503 5.5.1 Need MAIL before RCPT
    """)


def test_mail_parameters() -> None:
    transcript(f"""
        S: 220 foo.edu LMTP server ready
        C: LHLO foo.edu
        {LHLO_REPLY}
        C: MAIL FROM:<a@b> BODY=BINARYMIME
        S: 501 5.5.4 BODY must be 7BIT or 8BITMIME
        C: MAIL FROM:<a@b> SIZE=1000001
        S: 552 5.3.4 Message too big for this system
        C: MAIL FROM:<a@b> SIZE=big
        S: 501 5.5.4 SIZE needs a number of octets
        C: MAIL FROM:<a@b> RET=HDRS
        S: 555 5.5.4 Unsupported parameter: RET
        C: MAIL FROM:<a@b> SMTPUTF8=yes
        S: 501 5.5.4 SMTPUTF8 takes no value
        C: MAIL FROM:<a@b> BODY=8bitmime SIZE=1000000
        S: 250 2.1.0 Sender OK
        C: RCPT TO:<pat@foo.edu> NOTIFY=NEVER
        S: 555 5.5.4 Unsupported parameter: NOTIFY
    """)


def test_non_ascii_addresses_need_smtputf8() -> None:
    # RFC 6531 section 3.2 and the 5.6.7 code of its section 3.6.
    done = transcript(f"""
        S: 220 foo.edu LMTP server ready
        C: LHLO foo.edu
        {LHLO_REPLY}
        C: MAIL FROM:<jörg@bücher.example>
        S: 553 5.6.7 Non-ASCII address needs SMTPUTF8 (RFC 6531)
        C: MAIL FROM:<chris@bar.com>
        S: 250 2.1.0 Sender OK
        C: RCPT TO:<jörg@foo.edu>
        S: 553 5.6.7 Non-ASCII address needs SMTPUTF8 (RFC 6531)
        C: RSET
        S: 250 2.0.0 OK
        C: MAIL FROM:<jörg@bücher.example> SMTPUTF8
        S: 250 2.1.0 Sender OK
        C: RCPT TO:<jörg@foo.edu>
        S: 250 2.1.5 Recipient OK
        C: DATA
        S: 354 Start mail input; end with <CRLF>.<CRLF>
        C: Subject: Grüße
        C: .
        S: 250 2.0.0 Delivered
    """)
    assert done.delivered == [("jörg@bücher.example", ["jörg"], "Subject: Grüße\r\n".encode())]


def test_a_message_too_big_is_refused_for_each_recipient() -> None:
    conversation = Conversation(LMTPSession("foo.edu", max_message_size=20))
    conversation.run()
    conversation.send(b"LHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<pat>\r\nRCPT TO:<green>\r\n")
    conversation.send(b"DATA\r\n")
    said = conversation.send(b"0123456789\r\n" * 5 + b".\r\nNOOP\r\n")
    assert said == (b"552 5.3.4 Message too big for this system\r\n" * 2
                    + b"250 2.0.0 OK\r\n")
    assert conversation.delivered == []
    # The next transaction is a fresh one.
    said = conversation.send(b"MAIL FROM:<a@b>\r\nRCPT TO:<pat>\r\nDATA\r\nsmall\r\n.\r\n")
    assert said.endswith(b"354 Start mail input; end with <CRLF>.<CRLF>\r\n"
                         b"250 2.0.0 Delivered\r\n")


def test_too_many_recipients() -> None:
    session = LMTPSession("foo.edu", max_message_size=1000, max_recipients=2)
    conversation = Conversation(session)
    conversation.run()
    said = conversation.send(b"LHLO x\r\nMAIL FROM:<a@b>\r\n" + b"RCPT TO:<pat>\r\n" * 3)
    assert said.endswith(b"250 2.1.5 Recipient OK\r\n" * 2 + b"452 4.5.3 Too many recipients\r\n")


def test_a_line_too_long_is_answered_once_and_the_session_goes_on() -> None:
    conversation = Conversation(LMTPSession("foo.edu", max_message_size=1000,
                                            max_command_length=100))
    conversation.run()
    said = conversation.send(b"NOOP " + b"x" * 300)
    said += conversation.send(b"y" * 300 + b"\r\nNOOP\r\n")
    assert said == b"500 5.5.2 Line too long\r\n250 2.0.0 OK\r\n"
    # A complete line over the bound, in one piece.
    assert conversation.send(b"NOOP " + b"z" * 200 + b"\r\n") == b"500 5.5.2 Line too long\r\n"


def test_other_commands() -> None:
    transcript("""
        S: 220 foo.edu LMTP server ready
        C: NOOP
        S: 250 2.0.0 OK
        C: VRFY pat
        S: 252 2.5.0 Cannot verify the user; send some mail and I will try my best
        C: EXPN staff
        S: 502 5.5.1 EXPN is not implemented here
        C: HELP
        S: 214 2.0.0 Commands: LHLO MAIL RCPT DATA RSET NOOP VRFY QUIT
        C: FROB
        S: 500 5.5.1 Command not recognized
        C: 
        S: 500 5.5.2 Syntax error: expected a command
    """)


def test_lhlo_ends_an_open_transaction() -> None:
    transcript(f"""
        S: 220 foo.edu LMTP server ready
        C: LHLO foo.edu
        {LHLO_REPLY}
        C: MAIL FROM:<chris@bar.com>
        S: 250 2.1.0 Sender OK
        C: LHLO foo.edu
        {LHLO_REPLY}
        C: RCPT TO:<pat@foo.edu>
        S: 503 5.5.1 Need MAIL before RCPT
    """)


def test_too_many_bad_commands_close_the_connection() -> None:
    conversation = Conversation(LMTPSession("foo.edu", max_message_size=1000,
                                            max_bad_commands=3))
    conversation.run()
    said = conversation.send(b"FROB\r\n" * 5)
    assert said == (b"500 5.5.1 Command not recognized\r\n" * 3
                    + b"421 4.7.0 Too many errors; closing the connection\r\n")
    assert conversation.closing
    # Nothing more is read or said.
    assert conversation.send(b"NOOP\r\n") == b""


def test_nothing_is_read_after_quit() -> None:
    conversation = Conversation()
    conversation.run()
    assert conversation.send(b"QUIT\r\nNOOP\r\n") == b"221 2.0.0 Bye\r\n"
    assert conversation.closing


def test_timeout_or_shutdown_says_a_last_word() -> None:
    conversation = Conversation()
    conversation.run()
    conversation.session.close(R.TIMEOUT)
    assert conversation.run() == b"421 4.4.2 Timeout; closing the connection\r\n"
    assert conversation.closing
