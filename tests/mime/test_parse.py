"""The MIME tree, offsets and fields computed by parse_message."""

from hypothesis import given, settings
from hypothesis import strategies as st

from twisted_mailhub.mime.parse import MAX_DEPTH, parse_message
from twisted_mailhub.mime.structure import BodyPart, MessageStructure


def crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode("utf-8")


MIXED = crlf(
    "From: a@example.org\n"
    'Content-Type: multipart/mixed; boundary="b b"\n'
    "\n"
    "preamble text\n"
    "--b b\n"
    "Content-Type: text/plain; charset=\"utf-8\" (a comment)\n"
    "Content-ID: <c1@x>\n"
    "\n"
    "first\n"
    "line two\n"
    "--b b  \n"
    "Content-Type: application/octet-stream\n"
    "Content-Transfer-Encoding: Base64 (comment)\n"
    "Content-Disposition: inline; filename=\"a;b.bin\"\n"
    "Content-Language: en-GB (British), fr\n"
    "Content-Location: http://example.org/a\n"
    "  /b\n"
    "\n"
    "AAAA\n"
    "--b b--\n"
    "epilogue\n"
    "--b b\n"
    "not a part\n"
)


def test_offsets_and_fields_of_a_multipart():
    s = parse_message(MIXED)
    root = s.root
    assert (root.type, root.subtype, root.params) == ("multipart", "mixed", [("boundary", "b b")])
    assert s.size == len(MIXED)
    assert (root.header_start, root.end) == (0, len(MIXED))
    assert len(root.children) == 2  # the epilogue's delimiter is ignored
    text, att = root.children
    assert MIXED[text.header_start : text.body_start].startswith(b"Content-Type: text/plain")
    assert MIXED[text.body_start : text.end] == b"first\r\nline two"
    assert text.params == [("charset", "utf-8")]
    assert text.id == b"<c1@x>"
    assert text.lines == 2
    assert MIXED[att.body_start : att.end] == b"AAAA"
    assert att.encoding == "BASE64"
    assert att.disposition == ("inline", [("filename", "a;b.bin")])
    assert att.language == ["en-GB", "fr"]
    assert att.location == b"http://example.org/a  /b"
    assert att.lines == 0  # only text and message parts count lines


def test_rfc2231_continuations_charset_and_order():
    s = parse_message(
        crlf(
            "Content-Type: text/plain; title*1*=%20world; title*0*=us-ascii'en'hello;\n"
            "  title*2=\"!\"; charset=iso-8859-1; url*0=\"ftp://\"; url*1=\"x\"\n"
            "\n"
        )
    )
    assert s.root.params == [
        ("title", "hello world!"),
        ("charset", "iso-8859-1"),
        ("url", "ftp://x"),
    ]


def test_quoted_parameter_with_escapes():
    s = parse_message(b'Content-Type: text/plain; name="a \\"q\\" b"\r\n\r\n')
    assert s.root.params == [("name", 'a "q" b')]


def test_bare_lf_line_endings():
    data = b"Content-Type: multipart/alternative; boundary=x\n\n--x\n\na\nb\n--x\nContent-Type: text/html\n\n<p>\n--x--\n"
    s = parse_message(data)
    first, second = s.root.children
    assert data[first.body_start : first.end] == b"a\nb"
    assert first.lines == 2
    assert (second.type, second.subtype) == ("text", "html")
    assert data[second.body_start : second.end] == b"<p>"


def test_message_rfc822_offsets_are_absolute():
    inner = b"Subject: in\r\n\r\nhello\r\n"
    data = b"Content-Type: message/rfc822\r\n\r\n" + inner
    s = parse_message(data)
    msg = s.root.message
    assert isinstance(msg, MessageStructure)
    assert msg.root.header_start == s.root.body_start
    assert data[msg.root.body_start : msg.root.end] == b"hello\r\n"
    assert msg.envelope.subject == b"in"
    assert msg.size == len(inner)
    assert s.root.lines == 3


def test_message_global_is_parsed_like_rfc822():
    data = b"Content-Type: message/global\r\n\r\nSubject: \xc3\xa9\r\n\r\nx"
    s = parse_message(data)
    assert s.root.message is not None
    assert s.root.message.headers["subject"] == ["é"]


def test_multipart_without_first_line_break_before_first_delimiter():
    data = b"Content-Type: multipart/mixed; boundary=q\r\n\r\n--q\r\n\r\nx\r\n--q--"
    s = parse_message(data)
    assert [data[c.body_start : c.end] for c in s.root.children] == [b"x"]


def test_headers_are_decoded_and_collected():
    s = parse_message(
        crlf(
            "Received: one\n"
            "Received: two\n"
            "Subject: =?utf-8?B?w6k=?=\n"
            " =?utf-8?Q?_and_more?=\n"
            "X-Latin: caf\xe9\n"
            "garbage line without colon\n"
            "\n"
        ).replace("caf\xe9".encode("utf-8"), b"caf\xe9")
    )
    assert s.headers["received"] == ["one", "two"]
    assert s.headers["subject"] == ["é and more"]
    assert s.headers["x-latin"] == ["café"]
    assert "garbage line without colon" not in "".join(s.headers)


def test_envelope_defaults_and_empty_fields():
    s = parse_message(b"From: a@b\r\nSender:\r\nTo:\r\nSubject:\r\n\r\n")
    env = s.envelope
    assert env.sender == env.reply_to == env.from_ == [(None, None, b"a", b"b")]
    assert env.to is None
    assert env.subject == b""
    assert env.date is None


def test_depth_is_bounded():
    depth = MAX_DEPTH + 20
    data = b"".join(
        b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i)
        for i in range(depth)
    ) + b"\r\nleaf\r\n"
    s = parse_message(data)
    part, levels = s.root, 0
    while part.children:
        part, levels = part.children[0], levels + 1
    assert levels == MAX_DEPTH
    assert (part.type, part.subtype) == ("application", "octet-stream")


def test_many_parts():
    n = 5000
    data = b"Content-Type: multipart/mixed; boundary=z\r\n\r\n" + b"".join(
        b"--z\r\n\r\npart %d\r\n" % i for i in range(n)
    ) + b"--z--\r\n"
    s = parse_message(data)
    assert len(s.root.children) == n
    last = s.root.children[-1]
    assert data[last.body_start : last.end] == b"part %d" % (n - 1)


def _check(part: BodyPart, lo: int, hi: int, size: int) -> None:
    assert lo <= part.header_start <= part.body_start <= part.end <= hi <= size
    previous_end = part.body_start
    for child in part.children:
        assert child.header_start >= previous_end
        _check(child, part.body_start, part.end, size)
        previous_end = child.end
    if part.message is not None:
        assert part.message.root.header_start == part.body_start
        _check(part.message.root, part.body_start, part.end, size)


_pieces = st.sampled_from(
    [
        b"\r\n",
        b"\n",
        b"\r\n\r\n",
        b"--a\r\n",
        b"--a--\r\n",
        b"--b\n",
        b"Content-Type: multipart/mixed; boundary=a\r\n",
        b"Content-Type: multipart/digest; boundary=b\n",
        b"Content-Type: message/rfc822\r\n",
        b"Content-Type: text/plain; name*0*=x'y'%ZZ; name*1=\"\r\n",
        b"Content-Disposition: (attachment\r\n",
        b"From: \"unterminated <a@b (c\r\n",
        b"To: g: a@b, <c@d>;;, :@\r\n",
        b"Subject: =?utf-8?B?***?= =?x?Q?=ZZ?=\r\n",
        b" folded\r\n",
        b"\xff\xfe\x80 body\r\n",
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=400), st.lists(_pieces, max_size=40).map(b"".join)))
def test_never_raises_and_offsets_are_consistent(data):
    s = parse_message(data)
    assert s.size == len(data)
    assert s.root.header_start == 0 and s.root.end == len(data)
    _check(s.root, 0, len(data), len(data))


def test_8bit_boundary():
    for boundary in (b"\xc3\xa9t\xc3\xa9", b"\xe9t\xe9"):
        data = (
            b"Content-Type: multipart/mixed; boundary=" + boundary + b"\r\n\r\n--"
            + boundary + b"\r\n\r\nx\r\n--" + boundary + b"--\r\n"
        )
        s = parse_message(data)
        assert [data[c.body_start : c.end] for c in s.root.children] == [b"x"]


def test_nested_messages_depth_is_bounded():
    data = b"Content-Type: message/rfc822\r\n\r\n" * (MAX_DEPTH + 50) + b"Subject: deep\r\n\r\nx"
    s = parse_message(data)
    part, levels = s.root, 0
    while part.message is not None:
        part, levels = part.message.root, levels + 1
    assert levels == MAX_DEPTH
    assert (part.type, part.subtype) == ("application", "octet-stream")


def test_header_length_is_where_the_structure_puts_the_body():
    from twisted_mailhub.mime.parse import header_length

    for message in (
        crlf("Subject: a\n\nbody\n"),
        b"Subject: a\n\nbody\n",
        b"Subject: a\r\n\r\n",
        b"Subject: no blank line\r\nX: y",
        b"\r\nbody only",
        b"\nbody only",
        b"",
        b"Subject: a\r\n\nmixed\r\n",
    ):
        assert header_length(message) == parse_message(message).root.body_start, message
