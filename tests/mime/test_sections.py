"""Section resolution, header subsetting and BINARY decoding."""

import pytest

from twisted_mailhub.mime.sections import Section
from twisted_mailhub.mime.parse import parse_message
from twisted_mailhub.mime.sections import binary_decode, filter_header, part_for, resolve


def crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode("utf-8")


# The part layout of the RFC 3501 section 6.4.5 example.
MSG_3 = crlf(
    "Subject: inner three\n"
    "Content-Type: multipart/mixed; boundary=m3\n"
    "\n"
    "--m3\n"
    "\n"
    "part 3.1\n"
    "--m3\n"
    "Content-Type: application/octet-stream\n"
    "\n"
    "part 3.2\n"
    "--m3--\n"
)
MSG_42 = crlf(
    "Subject: inner four-two\n"
    "X-Extra: yes\n"
    "Content-Type: multipart/mixed; boundary=m42\n"
    "\n"
    "--m42\n"
    "Content-Type: text/plain\n"
    "\n"
    "part 4.2.1\n"
    "--m42\n"
    "Content-Type: multipart/alternative; boundary=alt\n"
    "\n"
    "--alt\n"
    "Content-Type: text/plain\n"
    "\n"
    "part 4.2.2.1\n"
    "--alt\n"
    "Content-Type: text/richtext\n"
    "\n"
    "part 4.2.2.2\n"
    "--alt--\n"
    "--m42--\n"
)
EXAMPLE = (
    crlf(
        "From: a@example.org\n"
        "Subject: sections\n"
        "Content-Type: multipart/mixed; boundary=top\n"
        "\n"
        "--top\n"
        "Content-Type: text/plain\n"
        "\n"
        "part 1\n"
        "--top\n"
        "Content-Type: application/octet-stream\n"
        "\n"
        "part 2\n"
        "--top\n"
        "Content-Type: message/rfc822\n"
        "\n"
    )
    + MSG_3
    + crlf(
        "--top\n"
        "Content-Type: multipart/mixed; boundary=four\n"
        "\n"
        "--four\n"
        "Content-Type: image/gif\n"
        "\n"
        "part 4.1\n"
        "--four\n"
        "Content-Type: message/rfc822\n"
        "\n"
    )
    + MSG_42
    + crlf("--four--\n--top--\n")
)
HEADER_END = EXAMPLE.index(b"\r\n\r\n") + 4


def fetch(data: bytes, section: Section) -> bytes:
    s = parse_message(data)
    plan = resolve(s, section)
    chunk = data[plan.offset : plan.offset + plan.length]
    if plan.fields is not None:
        return filter_header(chunk, plan.fields, plan.exclude)
    return chunk


@pytest.mark.parametrize(
    "part, expected",
    [
        ((1,), b"part 1"),
        ((2,), b"part 2"),
        ((3, 1), b"part 3.1"),
        ((3, 2), b"part 3.2"),
        ((4, 1), b"part 4.1"),
        ((4, 2, 1), b"part 4.2.1"),
        ((4, 2, 2, 1), b"part 4.2.2.1"),
        ((4, 2, 2, 2), b"part 4.2.2.2"),
    ],
)
def test_leaf_part_numbers(part, expected):
    assert fetch(EXAMPLE, Section(part=part)) == expected


def test_whole_message_header_and_text():
    assert fetch(EXAMPLE, Section()) == EXAMPLE
    assert fetch(EXAMPLE, Section(text="HEADER")) == EXAMPLE[:HEADER_END]
    assert fetch(EXAMPLE, Section(text="TEXT")) == EXAMPLE[HEADER_END:]


def test_message_rfc822_part_body_is_the_encapsulated_message():
    # The CRLF before the next delimiter belongs to the delimiter.
    assert fetch(EXAMPLE, Section(part=(3,))) == MSG_3[:-2]
    assert fetch(EXAMPLE, Section(part=(4, 2))) == MSG_42[:-2]


def test_header_and_text_of_an_encapsulated_message():
    header_3 = MSG_3[: MSG_3.index(b"\r\n\r\n") + 4]
    assert fetch(EXAMPLE, Section(part=(3,), text="HEADER")) == header_3
    assert fetch(EXAMPLE, Section(part=(3,), text="TEXT")) == MSG_3[len(header_3) : -2]
    assert fetch(EXAMPLE, Section(part=(4, 2), text="HEADER.FIELDS", fields=("SUBJECT",))) == (
        b"Subject: inner four-two\r\n\r\n"
    )


def test_mime_header_of_a_part():
    assert fetch(EXAMPLE, Section(part=(4, 1), text="MIME")) == b"Content-Type: image/gif\r\n\r\n"
    assert fetch(EXAMPLE, Section(part=(3,), text="MIME")) == (
        b"Content-Type: message/rfc822\r\n\r\n"
    )


def test_multipart_part_body_holds_its_delimiters():
    body = fetch(EXAMPLE, Section(part=(4,)))
    assert body.startswith(b"--four\r\nContent-Type: image/gif")
    assert body.endswith(b"--four--")


def test_nonexistent_parts_are_empty():
    for part in [(5,), (0,), (1, 1), (3, 3), (4, 2, 2, 3)]:
        assert fetch(EXAMPLE, Section(part=part)) == b""
    # HEADER on a part that is not a message: no such section.
    assert fetch(EXAMPLE, Section(part=(1,), text="HEADER")) == b""


def test_non_multipart_message_has_part_1():
    data = b"Subject: one\r\n\r\nonly body\r\n"
    assert fetch(data, Section(part=(1,))) == b"only body\r\n"
    assert fetch(data, Section(part=(2,))) == b""
    assert fetch(data, Section(part=(1,), text="MIME")) == b"Subject: one\r\n\r\n"


def test_header_fields_folded_and_case_insensitive():
    data = crlf(
        "Received: from a\n"
        "  by b\n"
        "SUBJECT: folded\n"
        "\tsubject\n"
        "From: x@y\n"
        "subject: second\n"
        "\n"
        "body\n"
    )
    assert fetch(data, Section(text="HEADER.FIELDS", fields=("SUBJECT", "TO"))) == crlf(
        "SUBJECT: folded\n\tsubject\nsubject: second\n\n"
    )
    assert fetch(data, Section(text="HEADER.FIELDS.NOT", fields=("SUBJECT", "RECEIVED"))) == (
        b"From: x@y\r\n\r\n"
    )
    assert fetch(data, Section(text="HEADER.FIELDS", fields=("X-NONE",))) == b"\r\n"


def test_filter_header_on_unterminated_last_line():
    assert filter_header(b"A: 1\r\nB: 2", ("b",), False) == b"B: 2\r\n\r\n"


def test_bare_lf_message():
    data = b"Content-Type: multipart/mixed; boundary=q\n\n--q\n\none\n--q\n\ntwo\n--q--\n"
    assert fetch(data, Section(part=(1,))) == b"one"
    assert fetch(data, Section(part=(2,))) == b"two"
    assert fetch(data, Section(part=(2,), text="MIME")) == b"\n"


def test_part_for():
    s = parse_message(EXAMPLE)
    part = part_for(s, (4, 2, 2))
    assert part is not None and (part.type, part.subtype) == ("multipart", "alternative")
    assert part_for(s, (9,)) is None


def test_binary_decode():
    assert binary_decode(b"aGVsbG8g\r\nd29ybGQ=\r\n", "BASE64") == b"hello world"
    assert binary_decode(b"caf=C3=A9 soft=\r\nbreak", "quoted-printable") == (
        b"caf\xc3\xa9 softbreak"
    )
    assert binary_decode(b"\x00raw", "binary") == b"\x00raw"
    assert binary_decode(b"abc", "7BIT") == b"abc"
    assert binary_decode(b"abc", "x-uuencode") is None
    # characters outside the alphabet are ignored (RFC 2045 section 6.8)
    assert binary_decode(b"aGVs*bG8!x", "base64") == b"hello1"
    # damaged base64 decodes as far as it goes instead of failing
    assert binary_decode(b"aGVsbG8", "base64") == b"hello"
    assert binary_decode(b"aGVsbG8gd", "base64") == b"hello "


def test_quoted_printable_trailing_space_and_soft_breaks():
    # RFC 2045 6.7 rule 3: trailing white space is padding, deleted.
    assert binary_decode(b"a  \r\nb\t\r\nlast  ", "quoted-printable") == b"a\r\nb\r\nlast"
    # rule 5: "=" ends the line even when white space follows it
    assert binary_decode(b"one= \t\r\ntwo=\r\nthree=  ", "quoted-printable") == b"onetwothree"
    # escaped white space survives; a broken escape is kept as it is
    assert binary_decode(b"a=20\r\n=3d=3D=zz", "quoted-printable") == b"a \r\n==" + b"=zz"
    assert binary_decode(b"x\ny\n", "quoted-printable") == b"x\ny\n"
