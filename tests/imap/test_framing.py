"""
Framing: lines, literals and limits, seen through the parser's events and
through the L{Framer} itself.
"""

import pytest

from twisted_mailhub.imap import commands as c
from twisted_mailhub.imap.framing import (
    CommandFrame,
    Framer,
    Literal,
    LiteralAnnounced,
    Oversize,
    literal_announcement,
)
from twisted_mailhub.imap.parser import (
    CommandError,
    CommandParser,
    CommandReceived,
    ContinuationRequest,
    RawLine,
)


def events(parser, data=b""):
    parser.receive_data(data)
    out = []
    while (event := parser.next_event()) is not None:
        out.append(event)
    return out


def commands(data, **kwargs):
    return events(CommandParser(**kwargs), data)


STREAM = (
    b"a1 LOGIN {4}\r\nuser {6+}\r\nsecret\r\n"
    b"a2 SELECT INBOX\n"
    b"a3 APPEND Drafts (\\Draft) ~{5}\r\nx\x00y\r\n\r\n"
    b"a4 BOGUS\r\n"
    b"a5 FETCH 1:* (FLAGS BODY[HEADER.FIELDS ({4}\r\nDATE)])\r\n"
)


def test_whole_stream():
    assert commands(STREAM) == [
        ContinuationRequest("a1", 4),
        CommandReceived(c.Login("a1", b"user", b"secret")),
        CommandReceived(c.Select("a2", "INBOX")),
        ContinuationRequest("a3", 5),
        CommandReceived(c.Append("a3", "Drafts", (
            c.AppendMessage(b"x\x00y\r\n", frozenset({"\\Draft"})),
        ))),
        CommandError("a4", "Unknown command: BOGUS"),
        ContinuationRequest("a5", 4),
        CommandReceived(c.Fetch("a5", c.SequenceSet(((1, 0),)), (
            c.FetchAttr("FLAGS"),
            c.FetchAttr("BODY[]", c.Section((), "HEADER.FIELDS", ("DATE",))),
        ))),
    ]


def test_one_byte_at_a_time_gives_the_same_events():
    parser = CommandParser()
    seen = []
    for i in range(len(STREAM)):
        seen.extend(events(parser, STREAM[i:i + 1]))
    assert seen == commands(STREAM)


def test_events_wait_for_the_whole_literal():
    parser = CommandParser()
    assert events(parser, b"a1 LOGIN {4}\r\nus") == [ContinuationRequest("a1", 4)]
    assert events(parser, b"er") == []
    assert events(parser, b" pw\r") == []
    assert events(parser, b"\n") == [CommandReceived(c.Login("a1", b"user", b"pw"))]


def test_non_synchronizing_literal_asks_no_continuation():
    assert commands(b"a1 LOGIN {4+}\r\nuser {2+}\r\npw\r\n") == [
        CommandReceived(c.Login("a1", b"user", b"pw")),
    ]


def test_literal_holds_crlf_and_braces():
    assert commands(b"a1 LOGIN {7+}\r\nu\r\n{1}\r pw\r\n") == [
        CommandReceived(c.Login("a1", b"u\r\n{1}\r", b"pw")),
    ]


def test_braces_inside_a_line_are_no_literal():
    assert commands(b'a1 LOGIN "{3}" pw\r\n') == [
        CommandReceived(c.Login("a1", b"{3}", b"pw")),
    ]


def test_zero_length_literal():
    assert commands(b"a1 LOGIN {0}\r\n {0+}\r\n\r\n") == [
        ContinuationRequest("a1", 0),
        CommandReceived(c.Login("a1", b"", b"")),
    ]


def test_unknown_command_is_refused_before_its_literal():
    # No continuation: the client will not send the literal, and the next
    # line is a new command.
    assert commands(b"a1 FROB {5}\r\na2 NOOP\r\n") == [
        CommandError("a1", "Unknown command: FROB"),
        CommandReceived(c.Noop("a2")),
    ]


def test_error_after_literal_skips_the_whole_command():
    assert commands(b"a1 LOGIN {3+}\r\nfoo\r\na2 NOOP\r\n") == [
        CommandError("a1", "Missing password"),
        CommandReceived(c.Noop("a2")),
    ]


# -- limits ---------------------------------------------------------------------


def test_long_line_is_skipped_then_reported():
    parser = CommandParser(max_line_length=100)
    assert events(parser, b"a1 LOGIN " + b"x" * 500) == []
    assert parser._framer.buffered < 200
    assert events(parser, b"x" * 500 + b"\r\na2 NOOP\r\n") == [
        CommandError("a1", "Line too long", "TOOBIG"),
        CommandReceived(c.Noop("a2")),
    ]


def test_long_line_complete_in_one_chunk():
    assert commands(b"t " + b"x" * 200 + b"\r\nt2 NOOP\r\n", max_line_length=100) == [
        CommandError("t", "Line too long", "TOOBIG"),
        CommandReceived(c.Noop("t2")),
    ]


def test_long_line_ending_in_non_synchronizing_literal_skips_the_literal():
    data = b"a1 APPEND x " + b"(" * 200 + b" {5+}\r\nhello\r\na2 NOOP\r\n"
    assert commands(data, max_line_length=100) == [
        CommandError("a1", "Line too long", "TOOBIG"),
        CommandReceived(c.Noop("a2")),
    ]


def test_lines_of_one_command_count_together():
    data = b"a1 LOGIN " + b"x" * 60 + b" {1+}\r\ny" + b" " * 60 + b"\r\na2 NOOP\r\n"
    assert commands(data, max_line_length=100) == [
        CommandError("a1", "Line too long", "TOOBIG"),
        CommandReceived(c.Noop("a2")),
    ]


def test_oversize_synchronizing_literal_is_refused_at_once():
    assert commands(b"a1 APPEND INBOX {1000}\r\na2 NOOP\r\n", max_literal_size=999) == [
        CommandError("a1", "Literal too large: 1000 bytes (limit 999)", "TOOBIG", "NO"),
        CommandReceived(c.Noop("a2")),
    ]


def test_oversize_non_synchronizing_literal_is_read_and_dropped():
    # RFC 7888 section 4: the error comes at once, the bytes are then skipped
    # without being kept, and so is the rest of the command.
    parser = CommandParser(max_literal_size=10)
    assert events(parser, b"a1 APPEND INBOX {100+}\r\n") == [
        CommandError("a1", "Literal too large: 100 bytes (limit 10)", "TOOBIG", "NO"),
    ]
    assert events(parser, b"m" * 60) == []
    assert parser._framer.buffered == 0
    assert events(parser, b"m" * 40 + b" {3+}\r\nabc\r\na2 NOOP\r\n") == [
        CommandReceived(c.Noop("a2")),
    ]


def test_literal_plus_takes_a_non_synchronizing_literal_of_any_allowed_size():
    # RFC 7888 section 3, LITERAL+: no bound but the literal limits.
    data = b"a1 APPEND INBOX {5000+}\r\n" + b"x" * 5000 + b"\r\n"
    [event] = commands(data)
    assert event.command.messages[0].content == b"x" * 5000


def test_literal_minus_bounds_non_synchronizing_literals():
    """
    RFC 7888 section 5: under LITERAL- a non-synchronizing literal is at
    most 4096 bytes.  A larger one is refused (section 4, choice 1: the
    bytes are read and dropped, with the rest of the command) with BAD
    [TOOBIG]; one of 4096 bytes, or a larger synchronizing one, is taken.
    """
    parser = CommandParser(max_non_synchronizing=4096)
    [ok] = events(parser, b"a1 APPEND INBOX {4096+}\r\n" + b"x" * 4096 + b"\r\n")
    assert ok.command.messages[0].content == b"x" * 4096
    assert events(parser, b"a2 APPEND INBOX {4097+}\r\n") == [
        CommandError("a2", "Non-synchronizing literal over 4096 bytes: 4097", "TOOBIG", "BAD"),
    ]
    assert events(parser, b"y" * 4097 + b" {3+}\r\nabc\r\n") == []
    assert parser._framer.buffered == 0
    assert events(parser, b"a3 APPEND INBOX ~{5000}\r\n") == [ContinuationRequest("a3", 5000)]
    [big] = events(parser, b"z" * 5000 + b"\r\n")
    assert big.command.messages[0].content == b"z" * 5000
    # Section 6: the same bound for a non-synchronizing literal8.
    data = b"a4 APPEND INBOX ~{4097+}\r\n" + b"\0" * 4097 + b"\r\na5 NOOP\r\n"
    assert events(parser, data) == [
        CommandError("a4", "Non-synchronizing literal over 4096 bytes: 4097", "TOOBIG", "BAD"),
        CommandReceived(c.Noop("a5")),
    ]


def test_literals_of_one_command_count_together():
    data = b"a1 LOGIN {6+}\r\nabcdef {6}\r\na2 NOOP\r\n"
    assert commands(data, max_literal_size=10) == [
        CommandError("a1", "Literals in command exceed 10 bytes", "TOOBIG", "NO"),
        CommandReceived(c.Noop("a2")),
    ]


def test_huge_literal_size_is_refused():
    data = b"a1 LOGIN {" + b"9" * 30 + b"}\r\na2 NOOP\r\n"
    events_ = commands(data)
    assert events_[0].code == "TOOBIG"
    assert events_[1:] == [CommandReceived(c.Noop("a2"))]


def test_max_literal_size_can_change_between_commands():
    parser = CommandParser(max_literal_size=3)
    assert events(parser, b"a1 LOGIN {4}\r\n")[0].code == "TOOBIG"
    parser.max_literal_size = 4
    assert events(parser, b"a2 LOGIN {4}\r\n") == [ContinuationRequest("a2", 4)]


# -- expect_line and discard_buffer ------------------------------------------------


def test_expect_line_returns_the_next_line_raw():
    parser = CommandParser()
    assert events(parser, b"a1 AUTHENTICATE PLAIN\r\n") == [
        CommandReceived(c.Authenticate("a1", "PLAIN")),
    ]
    parser.expect_line()
    assert events(parser, b"AGZvbwBi {3}\r\na2 NOOP\n") == [
        RawLine(b"AGZvbwBi {3}"),
        CommandReceived(c.Noop("a2")),
    ]


def test_expect_line_with_pipelined_data():
    parser = CommandParser()
    parser.receive_data(b"a1 IDLE\r\nDONE\r\na2 NOOP\r\n")
    assert parser.next_event() == CommandReceived(c.Idle("a1"))
    parser.expect_line()
    assert events(parser) == [RawLine(b"DONE"), CommandReceived(c.Noop("a2"))]


def test_expect_line_too_long():
    parser = CommandParser(max_line_length=10)
    parser.expect_line()
    assert events(parser, b"x" * 50 + b"\r\nDONE\r\n") == [
        CommandError(None, "Line too long", "TOOBIG"),
        CommandError(None, "Expected SP after tag"),
    ]


def test_discard_buffer_drops_pipelined_commands():
    parser = CommandParser()
    parser.receive_data(b"a1 STARTTLS\r\na2 LOGIN {3}\r\n")
    assert parser.next_event() == CommandReceived(c.StartTLS("a1"))
    assert parser.discard_buffer() == len(b"a2 LOGIN {3}\r\n")
    assert events(parser) == []
    assert events(parser, b"a3 NOOP\r\n") == [CommandReceived(c.Noop("a3"))]


def test_discard_buffer_drops_a_partial_command():
    parser = CommandParser()
    assert events(parser, b"a1 LOGIN {3}\r\nab") == [ContinuationRequest("a1", 3)]
    assert parser.discard_buffer() == len(b"a1 LOGIN ab")
    assert events(parser, b"a2 NOOP\r\n") == [CommandReceived(c.Noop("a2"))]


# -- the Framer itself ---------------------------------------------------------------


@pytest.mark.parametrize(
    "line, expected",
    [
        (b"a {5}", (2, 5, True, False)),
        (b"a {5+}", (2, 5, False, False)),
        (b"a ~{5}", (2, 5, True, True)),
        (b"{0}", (0, 0, True, False)),
        (b"a {}", None),
        (b"a {5", None),
        (b"a {x}", None),
        (b"a {5}x", None),
        (b"a {+}", None),
    ],
)
def test_literal_announcement(line, expected):
    assert literal_announcement(line) == expected


def test_framer_frames():
    framer = Framer(max_line_length=1000, max_literal_size=1000)
    framer.receive_data(b"t LOGIN {2}\r\nab {1+}\r\nc\r\nt2 X\r\n")
    assert framer.next_frame() == LiteralAnnounced((b"t LOGIN ",), 2)
    assert framer.next_frame() == CommandFrame(
        (b"t LOGIN ", Literal(b"ab"), b" ", Literal(b"c"), b"")
    )
    assert framer.next_frame() == CommandFrame((b"t2 X",))
    assert framer.next_frame() is None


def test_framer_reports_oversize_with_the_command_head():
    framer = Framer(max_line_length=10, max_literal_size=10)
    framer.receive_data(b"tag LOGIN " + b"x" * 20 + b"\r\n")
    assert framer.next_frame() == Oversize(b"tag LOGIN " + b"x" * 20, "Line too long")
