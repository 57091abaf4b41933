"""The message text after DATA: end line, un-stuffing, size bound, any chunking."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from twisted_mailhub.lmtp.data import DataReader


def read(chunks: list[bytes], max_size: int = 10_000) -> tuple[DataReader, bytes | None]:
    reader = DataReader(max_size)
    rest = None
    for chunk in chunks:
        rest = reader.feed(chunk)
        if rest is not None:
            break
    return reader, rest


def stuff(content: bytes) -> bytes:
    """What a client sends for C{content} (RFC 5321 section 4.5.2)."""
    lines = content.split(b"\r\n")[:-1]
    return b"".join((b"." + line if line.startswith(b".") else line) + b"\r\n"
                    for line in lines) + b".\r\n"


def test_message_ends_at_the_lone_period() -> None:
    reader, rest = read([b"Subject: x\r\n\r\nhello\r\n.\r\nQUIT\r\n"])
    assert reader.content == b"Subject: x\r\n\r\nhello\r\n"
    assert rest == b"QUIT\r\n"


def test_empty_message() -> None:
    # The CRLF ending the DATA line is the one before the period.
    reader, rest = read([b".\r\n"])
    assert reader.content == b""
    assert rest == b""


def test_leading_periods_are_unstuffed_on_every_line() -> None:
    reader, _ = read([b"..first\r\nmiddle\r\n...\r\n.\r\n"])
    assert reader.content == b".first\r\nmiddle\r\n..\r\n"


def test_terminator_split_across_chunks() -> None:
    reader, rest = read([b"a\r", b"\n.", b"\r", b"\nNOOP\r\n"])
    assert reader.content == b"a\r\n"
    assert rest == b"NOOP\r\n"


def test_a_period_inside_a_line_is_content() -> None:
    reader, rest = read([b"a.\r\n.b\r\n"])
    assert rest is None
    assert not reader.done


def test_too_big_is_read_to_its_end_and_dropped() -> None:
    body = b"x" * 99 + b"\r\n"
    reader, rest = read([body] * 30 + [b".\r\nRSET\r\n"], max_size=1000)
    assert reader.done and reader.too_big
    assert reader.content is None
    assert rest == b"RSET\r\n"


def test_the_limit_counts_unstuffed_octets() -> None:
    content = b".\r\n" * 100  # 300 octets, 400 as sent
    reader, _ = read([stuff(content)], max_size=300)
    assert reader.content == content
    reader, _ = read([stuff(content)], max_size=299)
    assert reader.too_big


def test_exactly_at_the_limit_byte_by_byte() -> None:
    content = b"ab\r\n.c\r\n"
    sent = stuff(content)
    reader, _ = read([sent[i:i + 1] for i in range(len(sent))], max_size=len(content))
    assert reader.content == content


@given(st.lists(st.sampled_from([b"a", b".", b"..", b"\r\n", b" ", b"x."]), max_size=40),
       st.integers(1, 9))
def test_any_message_round_trips_whatever_the_chunking(parts, size) -> None:
    content = b"".join(parts)
    if content and not content.endswith(b"\r\n"):
        content += b"\r\n"
    # Only CRLF line ends: a lone CR or LF is not produced by these parts.
    sent = stuff(content) + b"NEXT"
    chunks = [sent[i:i + size] for i in range(0, len(sent), size)]
    reader, rest = read(chunks)
    assert reader.content == content
    # What followed the end is handed back (as far as it had arrived).
    assert rest is not None and b"NEXT".startswith(rest)
