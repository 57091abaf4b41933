"""
The output side of IMAP as a sans-IO object: L{ResponseOutput} follows the
stream like a client does and never lets a new response start inside an
unfinished one.
"""

from __future__ import annotations

import imaplib

import pytest

from twisted_mailhub.imap import responses
from twisted_mailhub.imap.output import ResponseOutput


def test_whole_responses_pass_through_unchanged() -> None:
    out = ResponseOutput()
    data = b"* 3 EXISTS\r\n* 1 FETCH (FLAGS (\\Seen))\r\n"
    assert out.response(data) == data
    assert out.between_responses
    assert out.response(b"a OK done\r\n") == b"a OK done\r\n"


def test_complete_literals_inside_one_write() -> None:
    out = ResponseOutput()
    data = b"* 1 FETCH (BODY[] {7}\r\nab\r\ncd) FLAGS ())\r\n"
    assert out.response(data) == data
    assert out.between_responses


def test_a_literal_announced_then_streamed_in_parts() -> None:
    out = ResponseOutput()
    out.part(b"* 1 FETCH (UID 9 BODY[] {10}\r\n")
    assert out.in_literal and out.literal_remaining == 10
    out.part(b"0123\r\n")
    assert out.literal_remaining == 4
    out.part(b"6789")
    assert not out.in_literal and not out.between_responses
    out.part(b")\r\n")
    assert out.between_responses


def test_an_announcement_split_over_writes() -> None:
    out = ResponseOutput()
    out.part(b"* 1 FETCH (BODY[] {1")
    out.part(b"2}\r\n")
    assert out.literal_remaining == 12


def test_literal8_is_counted_too() -> None:
    out = ResponseOutput()
    out.part(b"* 1 FETCH (BINARY[1] ~{3}\r\n")
    assert out.literal_remaining == 3


def test_a_new_response_never_lands_inside_an_open_literal() -> None:
    out = ResponseOutput()
    sent = out.part(b"* 1 FETCH (UID 9 BODY[] {10}\r\n") + out.part(b"0123")
    sent += out.response(b"a NO [EXPUNGEISSUED] gone\r\n")
    # The literal got its ten bytes (padding), the FETCH its closing
    # parenthesis, and the tagged answer a line of its own.
    assert sent == (b"* 1 FETCH (UID 9 BODY[] {10}\r\n0123      )\r\n"
                    b"a NO [EXPUNGEISSUED] gone\r\n")
    assert out.between_responses


def test_finish_closes_quotes_and_nested_lists() -> None:
    out = ResponseOutput()
    out.part(b'* 1 FETCH (ENVELOPE ("date" "sub(ject')
    assert out.finish() == b'"))\r\n'


def test_parentheses_inside_literals_and_quotes_do_not_count() -> None:
    out = ResponseOutput()
    out.part(b'* 1 FETCH (X "(\\"(" BODY[] {3}\r\n((( FLAGS (\\Seen')
    assert out.finish() == b"))\r\n"


def test_padding_in_pieces() -> None:
    out = ResponseOutput()
    out.part(b"* 1 FETCH (BODY[] {5}\r\n")
    assert out.padding(3) == b"   "
    assert out.padding() == b"  "
    assert out.padding() == b""
    assert out.part(b")\r\n") == b")\r\n"
    assert out.between_responses


def test_empty_literal() -> None:
    out = ResponseOutput()
    out.part(b"* 1 FETCH (BODY[] {0}\r\n")
    assert not out.in_literal
    out.part(b")\r\n")
    assert out.between_responses


def test_an_unfinished_line_is_ended_before_the_next_response() -> None:
    out = ResponseOutput()
    out.part(b"* 1 FETCH (FLAGS (\\Seen")
    assert out.response(b"* BYE bye\r\n") == b"))\r\n* BYE bye\r\n"


@pytest.mark.parametrize("cut", [0, 1, 5, 31, 40, 41, 50])
def test_an_interrupted_stream_stays_parseable_by_imaplib(cut: int) -> None:
    body = b"Subject: x\r\n\r\n" + b"y" * 36
    whole = b"* 1 FETCH (UID 4 BODY[] {%d}\r\n" % len(body) + body + b")\r\n"
    out = ResponseOutput()
    sent = out.part(whole[:cut]) if cut else b""
    sent += out.response(b"a NO [EXPUNGEISSUED] gone\r\n")
    sent += out.response(b"b OK next\r\n")
    # Feed the bytes to imaplib's own reader, as a client would see them.
    lines = _imaplib_responses(sent)
    assert lines[-2:] == [b"a NO [EXPUNGEISSUED] gone", b"b OK next"]


def _imaplib_responses(data: bytes) -> list[bytes]:
    """Responses as imaplib frames them: a line, and a literal after `{n}`."""
    literal = imaplib.Literal
    pos, out, current = 0, [], b""
    while pos < len(data):
        end = data.index(b"\r\n", pos)
        line, pos = data[pos:end], end + 2
        current += line
        match = literal.match(line)
        if match:
            size = int(match.group("size"))
            current += data[pos:pos + size]
            pos += size
            continue
        out.append(current)
        current = b""
    return out


def test_status_text_never_announces_a_literal() -> None:
    # A mailbox name like "{5}" echoed at the end of a text must not read
    # as a literal announcement to the client.
    line = responses.status("a", "NO", "Mailbox does not exist: {5}")
    out = ResponseOutput()
    out.response(line)
    assert out.between_responses


def _protocol():
    from twisted.internet.task import Clock
    from twisted.internet.testing import StringTransport

    from twisted_mailhub.imap.protocol import IMAPServerFactory

    protocol = IMAPServerFactory(None, clock=Clock()).buildProtocol(None)
    transport = StringTransport()
    protocol.makeConnection(transport)
    transport.clear()
    return protocol, transport


def test_goodbye_inside_a_small_literal_pads_it_first() -> None:
    protocol, transport = _protocol()
    protocol.write_part(b"* 1 FETCH (BODY[] {6}\r\nab")
    protocol.goodbye("Server shutting down")
    assert transport.value() == (b"* 1 FETCH (BODY[] {6}\r\nab    )\r\n"
                                 b"* BYE Server shutting down\r\n")


def test_goodbye_inside_a_large_literal_just_closes() -> None:
    protocol, transport = _protocol()
    protocol.write_part(b"* 1 FETCH (BODY[] {%d}\r\nab" % (64 * 2**20))
    protocol.goodbye("Server shutting down")
    protocol.close()
    assert transport.value() == b"* 1 FETCH (BODY[] {67108864}\r\nab"
    assert transport.disconnecting
