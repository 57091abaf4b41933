"""The pure POP3 wire helpers: dot-stuffing across chunks, TOP, parsing."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from twisted_mailhub.pop3 import wire


def stuff(chunks: list[bytes]) -> bytes:
    stuffer = wire.DotStuffer()
    return b"".join(stuffer.feed(c) for c in chunks) + stuffer.finish()


def unstuff(response: bytes) -> bytes:
    """What a client does (RFC 1939 section 3): drop '.' line, un-stuff."""
    assert response.endswith(b"\r\n.\r\n") or response == b".\r\n"
    lines = response.split(b"\r\n")[:-2]
    return b"".join((l[1:] if l.startswith(b".") else l) + b"\r\n" for l in lines)


def test_status_lines_with_codes() -> None:
    assert wire.ok() == b"+OK\r\n"
    assert wire.ok("2 320") == b"+OK 2 320\r\n"
    assert wire.err("maildrop busy", "IN-USE") == b"-ERR [IN-USE] maildrop busy\r\n"
    # Text is one line whatever the caller passes.
    assert wire.err("a\r\nb") == b"-ERR a  b\r\n"


def test_status_line_is_at_most_512_octets() -> None:
    assert len(wire.ok("x" * 2000)) == 512


def test_multiline_stuffs_and_terminates() -> None:
    assert wire.multiline(b"+OK\r\n", [b"TOP", b".hidden"]) == b"+OK\r\nTOP\r\n..hidden\r\n.\r\n"


def test_dot_stuffing_first_line_and_later_lines() -> None:
    assert stuff([b".a\r\nb\r\n.\r\n"]) == b"..a\r\nb\r\n..\r\n.\r\n"


def test_dot_after_crlf_split_across_chunks() -> None:
    assert stuff([b"a\r", b"\n.b\r\n"]) == b"a\r\n..b\r\n.\r\n"
    assert stuff([b"a\r\n", b".b\r\n"]) == b"a\r\n..b\r\n.\r\n"


def test_bare_lf_becomes_crlf_and_crlf_is_not_doubled() -> None:
    assert stuff([b"a\nb\r\nc"]) == b"a\r\nb\r\nc\r\n.\r\n"


def test_missing_final_newline_is_added() -> None:
    assert stuff([b"no newline"]) == b"no newline\r\n.\r\n"
    assert stuff([b""]) == b".\r\n"


@given(st.lists(st.sampled_from([b"a", b".", b"\r\n", b"\r", b"\n", b"..", b"x."]), max_size=30),
       st.integers(1, 7))
def test_stuffing_round_trips_whatever_the_chunking(parts, size) -> None:
    content = b"".join(parts).replace(b"\r", b"") .replace(b"\n", b"\r\n")
    if content and not content.endswith(b"\r\n"):
        content += b"\r\n"
    chunks = [content[i:i + size] for i in range(0, len(content), size)]
    response = stuff(chunks)
    assert unstuff(response) == content
    # No line of the body is the lone terminator.
    assert b"\r\n.\r\n" not in response[:-3]


def stuff_whole(content: bytes) -> bytes:
    """RFC 1939 section 3 on the whole message at once: CRLF lines, dots doubled."""
    body = re.sub(rb"(?<!\r)\n", b"\r\n", content).replace(b"\n.", b"\n..")
    if body.startswith(b"."):
        body = b"." + body
    if body and not body.endswith(b"\n"):
        body += b"\r\n"
    return body + b".\r\n"


@given(st.lists(st.sampled_from([b"a", b".", b"\r\n", b"\r", b"\n", b"..", b"x.", b"\n."]),
                max_size=40),
       st.integers(1, 9))
def test_stuffing_any_bytes_in_chunks_is_stuffing_them_whole(parts, size) -> None:
    # Bare LFs, lone CRs and dots anywhere, split at every place a chunk
    # can end: the same bytes as one pass over the whole message.
    content = b"".join(parts)
    chunks = [content[i:i + size] for i in range(0, len(content), size)]
    assert stuff(chunks) == stuff_whole(content)


def top(content: bytes, lines: int, size: int = 3) -> tuple[bytes, bool]:
    f = wire.TopFilter(lines)
    out = b""
    for i in range(0, len(content), size):
        out += f.feed(content[i:i + size])
        if f.done:
            break
    return out, f.done


MSG = b"Subject: x\r\nFrom: y\r\n\r\nline1\r\nline2\r\nline3\r\n"


def test_top_zero_lines_is_the_header_and_blank_line() -> None:
    assert top(MSG, 0) == (b"Subject: x\r\nFrom: y\r\n\r\n", True)


def test_top_some_lines() -> None:
    assert top(MSG, 2)[0] == b"Subject: x\r\nFrom: y\r\n\r\nline1\r\nline2\r\n"


def test_top_more_lines_than_the_body_sends_everything() -> None:
    assert top(MSG, 50) == (MSG, False)


def test_top_stops_reading_early() -> None:
    big = b"Subject: x\r\n\r\n" + b"line\r\n" * 10000
    f = wire.TopFilter(1)
    assert f.feed(big[:100]) == b"Subject: x\r\n\r\nline\r\n"
    assert f.done


def test_parse_command() -> None:
    c = wire.parse_command(b"retr 1")
    assert (c.keyword, c.args) == ("RETR", ("1",))
    assert wire.parse_command(b"PASS my secret ").rest == "my secret "


def test_parse_rejects_garbage() -> None:
    for line in (b"", b" RETR", b"R3TR 1", b"\x00\x01"):
        try:
            wire.parse_command(line)
        except wire.CommandSyntaxError:
            continue
        raise AssertionError(f"{line!r} parsed")
