"""
Whole sessions under fuzzing: arbitrary bytes and mutated valid commands,
fed to a real protocol instance over an in-memory transport, never crash
the server, never leave an internal error, and always get answers that are
well-formed response lines.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.cred.portal import Portal
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import globalLogPublisher

from twisted_mailhub.auth.checkers import InMemoryChecker
from twisted_mailhub.auth.realm import MailhubRealm
from twisted_mailhub.backends.memory import MemoryBackend
from twisted_mailhub.imap.protocol import IMAPServerFactory
from twisted_mailhub.model import AppendRequest
from twisted_mailhub.policy import ServerPolicy

VALID = [
    b"a NOOP", b"a CAPABILITY", b"b SELECT INBOX", b"c FETCH 1:* (FLAGS BODY.PEEK[])",
    b"d STORE 1 +FLAGS (\\Seen)", b"e SEARCH OR FROM x SUBJECT y", b"f UID FETCH 1:* ALL",
    b"g LIST \"\" *", b"h STATUS INBOX (MESSAGES UNSEEN)", b"i CREATE foo/bar",
    b"j RENAME foo baz", b"k APPEND INBOX (\\Flagged) {5+}\r\nab\r\nc", b"l EXPUNGE",
    b"m COPY 1 INBOX", b"n IDLE", b"DONE", b"o CLOSE", b"p EXAMINE INBOX",
    b"q FETCH 1 BODY[1.2.HEADER.FIELDS (FROM)]<0.10>", b"r UID SEARCH RETURN (MIN) ALL",
    b"s AUTHENTICATE PLAIN", b"*", b"t ENABLE CONDSTORE", b"u DELETE baz", b"v LSUB \"\" %",
    b"w UID FETCH 3:1 (SAVEDATE BODY[]<4294967295.1>)", b"x FETCH 1 (EMAILID THREADID)",
    b"y UID STORE 1,1,1,2 +FLAGS.SILENT \\Draft", b"z SEARCH ((((NOT (ALL)))))",
    b"A NOTIFY SET (selected (MessageNew (UID FLAGS) MessageExpunge FlagChange))"
    b" (personal (MessageNew MessageExpunge MailboxName SubscriptionChange))",
    b"B NOTIFY SET STATUS (selected-delayed (MessageNew MessageExpunge)) (inboxes"
    b" (MessageNew MessageExpunge))", b"C NOTIFY NONE", b"D SUBSCRIBE foo",
    b'E APPEND INBOX CATENATE (TEXT {14+}\r\nSubject: Q\r\n\r\n URL "/INBOX/;UID=1/;SECTION=1"'
    b' URL ";UID=2/;PARTIAL=0.4294967295")',
    b'F URLFETCH "imap://alice@h/INBOX/;UID=1/;SECTION=1.MIME" "imap://bob%00@h/%00/;UID=1'
    b';URLAUTH=anonymous:INTERNAL:' + b"0" * 42 + b'"',
    b'G GENURLAUTH "imap://alice@h/INBOX/;UID=1;EXPIRE=2000-01-01T00:00:00Z;URLAUTH=anonymous"'
    b" INTERNAL", b"H RESETKEY INBOX INTERNAL", b"I ENABLE UTF8=ACCEPT QRESYNC",
    b"J SEARCH UIDBEFORE 1 UIDAFTER 4294967295", b"K UID SEARCH RETURN (SAVE) UIDAFTER 1",
    b'L NOTIFY SET (subtree ("../bob/INBOX" "#shared" INBOX) (MessageNew MessageExpunge))',
    b"M REPLACE 1 INBOX (\\Seen) {5+}\r\nab\r\nc", b'N UID REPLACE 2 foo CATENATE (URL ";UID=2")',
    b"O ENABLE UIDONLY", b"P UID SEARCH 1:2",
]

MESSAGE = (b"From: a@example.org\r\nSubject: s\r\nContent-Type: multipart/mixed; boundary=b\r\n"
           b"\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b--\r\n")


def mutate(data: bytes, edits: list[tuple[int, int, bytes]]) -> bytes:
    for position, delete, insert in edits:
        position %= len(data) + 1
        data = data[:position] + insert + data[position + delete:]
    return data


commands = st.lists(
    st.one_of(
        st.sampled_from(VALID),
        st.tuples(st.sampled_from(VALID),
                  st.lists(st.tuples(st.integers(0, 200), st.integers(0, 3),
                                     st.binary(max_size=4)), max_size=3))
        .map(lambda t: mutate(*t)),
        st.binary(max_size=60),
    ),
    max_size=12,
)


class Session:
    def __init__(self) -> None:
        self.clock = Clock()
        backend = MemoryBackend()
        portal = Portal(MailhubRealm(backend), [InMemoryChecker({"alice": "pw"})])
        policy = ServerPolicy(max_line_length=2048, max_literal_size=4096,
                              max_literal_size_unauthenticated=512, auth_failure_delay=0.0,
                              auth_failure_delay_max=0.0)
        self.factory = IMAPServerFactory(portal, policy=policy, clock=self.clock)
        addr = IPv4Address("TCP", "127.0.0.1", 40000)
        self.protocol = self.factory.buildProtocol(addr)
        self.transport = StringTransport(peerAddress=addr)
        self.protocol.makeConnection(self.transport)
        self.feed(b"0 LOGIN alice pw\r\n")
        self.feed(b"0 APPEND INBOX {%d+}\r\n" % len(MESSAGE) + MESSAGE + b"\r\n")
        self.feed(b"0 APPEND INBOX {%d+}\r\n" % len(MESSAGE) + MESSAGE + b"\r\n")

    def feed(self, data: bytes) -> None:
        if not self.transport.disconnecting:
            self.protocol.dataReceived(data)
        for _ in range(3):
            self.clock.advance(0)


class SessionFuzzTests:
    @settings(max_examples=300, deadline=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(commands, st.integers(1, 7))
    def test_sessions_survive_anything(self, lines, chunk) -> None:
        failures = []

        def observer(event):
            if event.get("log_failure") is not None or event.get("log_level").name in (
                    "error", "critical"):
                failures.append(event)

        globalLogPublisher.addObserver(observer)
        try:
            s = Session()
            data = b"".join(line + b"\r\n" for line in lines)
            for i in range(0, len(data), chunk):
                s.feed(data[i:i + chunk])
            s.feed(b"\r\nzz NOOP\r\n")
        finally:
            globalLogPublisher.removeObserver(observer)
        self.assertNoFailures(failures)
        out = s.transport.value()
        self.assertTrue(out.startswith(b"* OK "))
        # Every response line is an untagged, continuation or tagged line.
        for line in _response_lines(out):
            self.assertTrue(line[:2] in (b"* ", b"+ ") or b" " in line, line)
        if not s.transport.disconnecting:
            # The session still answers (unless the input left a literal or an
            # IDLE/AUTHENTICATE exchange open, which the next line completes).
            self.assertTrue(out.endswith(b"\r\n"))

    def assertNoFailures(self, failures) -> None:
        assert not failures, [f.get("log_format") for f in failures]

    def assertTrue(self, value, msg=None) -> None:
        assert value, msg


def _response_lines(out: bytes):
    """Response lines of C{out}, skipping literal payloads."""
    import re

    i = 0
    while i < len(out):
        start = i
        while True:
            end = out.find(b"\r\n", i)
            if end < 0:
                return
            m = re.search(rb"\{(\d+)\}$", out[i:end])
            i = end + 2
            if not m:
                break
            # A literal: its bytes and what follows belong to the same line.
            i += int(m.group(1))
        yield out[start:i - 2]


class TestSessionFuzz(SessionFuzzTests):
    pass


# Inputs that once got NO [SERVERBUG] and a logged traceback; each must get
# a plain OK, NO or BAD.
FOUND = [
    b"a UID FETCH 3:1 (SAVEDATE BODY[]<4294967295.1>)",
    b"a UID FETCH 3:1 (BODY[]<4294967295.1>)",
    b"a FETCH 1 (BINARY.PEEK[1]<4294967295.4294967295> BODY[1]<9223372036854775807.1>)",
    b"a FETCH 1 EMAILID", b"a FETCH 1 THREADID", b"a FETCH 1 SAVEDATE",
    b"a FETCH 1:* (EMAILID THREADID SAVEDATE)",
    b"a SEARCH " + b"(" * 40 + b"ALL" + b")" * 40,
    b"a SEARCH " + b"NOT " * 300 + b"ALL",
    b"a SEARCH " + b"OR ALL " * 300 + b"ALL",
    b"a UID STORE 1,1,1,1,1,1,1,1,1,1,2 +FLAGS.SILENT \\Draft\r\nb UID FETCH 1:* (SAVEDATE)",
    b'a GENURLAUTH "imap://alice@h/%00/;UID=1;URLAUTH=anonymous" INTERNAL',
    b'a URLFETCH "imap://bob%00@h/INBOX/;UID=1;URLAUTH=anonymous:INTERNAL:' + b"0" * 42 + b'"',
]


def test_found_inputs_get_a_clear_answer() -> None:
    for data in FOUND:
        failures = []

        def observer(event):
            if event.get("log_failure") is not None:
                failures.append(event)

        globalLogPublisher.addObserver(observer)
        try:
            s = Session()
            s.feed(b"b SELECT INBOX\r\n")
            s.feed(data + b"\r\nzz NOOP\r\n")
        finally:
            globalLogPublisher.removeObserver(observer)
        out = s.transport.value()
        assert not failures, data
        assert b"SERVERBUG" not in out, (data, out)
        assert out.endswith(b"zz OK NOOP completed\r\n"), (data, out)


def test_fuzzed_sessions_start_with_messages() -> None:
    # The starting state the fuzzer builds on: logged in, two messages.
    s = Session()
    s.feed(b"b SELECT INBOX\r\nc FETCH 2 (BODYSTRUCTURE BODY[1])\r\n")
    out = s.transport.value()
    assert b"c OK FETCH completed" in out, out
