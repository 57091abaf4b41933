"""ENVELOPE, BODY and BODYSTRUCTURE values, byte for byte."""

from twisted_mailhub.imap.bodystructure import bodystructure, envelope
from twisted_mailhub.mime.parse import parse_message


def crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode("utf-8")


# The message of the RFC 3501 section 8 sample dialog (header as shown by
# its BODY[HEADER] response; body shortened).
RFC3501_SAMPLE = crlf(
    "Date: Wed, 17 Jul 1996 02:23:25 -0700 (PDT)\n"
    "From: Terry Gray <gray@cac.washington.edu>\n"
    "Subject: IMAP4rev1 WG mtg summary and minutes\n"
    "To: imap@cac.washington.edu\n"
    "cc: minutes@CNRI.Reston.VA.US, John Klensin <KLENSIN@MIT.EDU>\n"
    "Message-Id: <B27397-0100000@cac.washington.edu>\n"
    "MIME-Version: 1.0\n"
    "Content-Type: TEXT/PLAIN; CHARSET=US-ASCII\n"
    "\n"
    "Minutes of the meeting.\n"
    "Second line.\n"
    "Third line.\n"
)


def test_rfc3501_sample_envelope():
    s = parse_message(RFC3501_SAMPLE)
    assert envelope(s.envelope) == (
        b'("Wed, 17 Jul 1996 02:23:25 -0700 (PDT)"'
        b' "IMAP4rev1 WG mtg summary and minutes"'
        b' (("Terry Gray" NIL "gray" "cac.washington.edu"))'
        b' (("Terry Gray" NIL "gray" "cac.washington.edu"))'
        b' (("Terry Gray" NIL "gray" "cac.washington.edu"))'
        b' ((NIL NIL "imap" "cac.washington.edu"))'
        b' ((NIL NIL "minutes" "CNRI.Reston.VA.US")'
        b'("John Klensin" NIL "KLENSIN" "MIT.EDU")) NIL NIL'
        b' "<B27397-0100000@cac.washington.edu>")'
    )


def test_rfc3501_sample_body():
    s = parse_message(RFC3501_SAMPLE)
    # The sample's BODY[HEADER] is a {342} literal.
    assert s.root.body_start == 342
    assert bodystructure(s.root, False) == (
        b'("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 52 3)'
    )
    assert bodystructure(s.root, True) == (
        b'("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 52 3 NIL NIL NIL NIL)'
    )


def test_no_content_type_defaults_to_text_plain_us_ascii():
    s = parse_message(b"Subject: x\r\n\r\nhi\r\n")
    assert bodystructure(s.root, False) == (
        b'("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 4 1)'
    )


MIXED = crlf(
    "From: a@example.org\n"
    "Subject: report\n"
    "MIME-Version: 1.0\n"
    'Content-Type: multipart/mixed; boundary="=_b1"\n'
    "\n"
    "This is a MIME message.\n"
    "--=_b1\n"
    "Content-Type: text/plain; charset=utf-8\n"
    "Content-Transfer-Encoding: quoted-printable\n"
    "\n"
    "See attached.\n"
    "--=_b1\n"
    "Content-Type: application/pdf; name=report.pdf\n"
    "Content-Transfer-Encoding: base64\n"
    "Content-ID: <pdf1@example.org>\n"
    "Content-Description: The report\n"
    "Content-Disposition: attachment; filename=report.pdf; size=3\n"
    "Content-Language: en, de\n"
    "Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==\n"
    "\n"
    "AAEC\n"
    "--=_b1--\n"
    "epilogue\n"
)


def test_multipart_mixed_with_attachment():
    s = parse_message(MIXED)
    assert bodystructure(s.root, False) == (
        b'(("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "QUOTED-PRINTABLE" 13 1)'
        b'("APPLICATION" "PDF" ("NAME" "report.pdf") "<pdf1@example.org>"'
        b' "The report" "BASE64" 4) "MIXED")'
    )
    assert bodystructure(s.root, True) == (
        b'(("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "QUOTED-PRINTABLE" 13 1'
        b" NIL NIL NIL NIL)"
        b'("APPLICATION" "PDF" ("NAME" "report.pdf") "<pdf1@example.org>"'
        b' "The report" "BASE64" 4 "Q2hlY2sgSW50ZWdyaXR5IQ=="'
        b' ("ATTACHMENT" ("FILENAME" "report.pdf" "SIZE" "3")) ("en" "de") NIL)'
        b' "MIXED" ("BOUNDARY" "=_b1") NIL NIL NIL)'
    )


NESTED = crlf(
    "From: a@example.org\n"
    "Content-Type: multipart/mixed; boundary=outer\n"
    "\n"
    "--outer\n"
    "Content-Type: multipart/alternative; boundary=inner\n"
    "\n"
    "--inner\n"
    "Content-Type: text/plain\n"
    "\n"
    "plain\n"
    "--inner\n"
    "Content-Type: text/html\n"
    "\n"
    "<p>html</p>\n"
    "--inner--\n"
    "--outer\n"
    "Content-Type: image/png\n"
    "Content-Transfer-Encoding: base64\n"
    "Content-Location: http://example.org/x.png\n"
    "\n"
    "iVBO\n"
    "--outer--\n"
)


def test_alternative_inside_mixed():
    s = parse_message(NESTED)
    assert bodystructure(s.root, False) == (
        b'((("TEXT" "PLAIN" NIL NIL NIL "7BIT" 5 1)'
        b'("TEXT" "HTML" NIL NIL NIL "7BIT" 11 1) "ALTERNATIVE")'
        b'("IMAGE" "PNG" NIL NIL NIL "BASE64" 4) "MIXED")'
    )
    assert bodystructure(s.root, True) == (
        b'((("TEXT" "PLAIN" NIL NIL NIL "7BIT" 5 1 NIL NIL NIL NIL)'
        b'("TEXT" "HTML" NIL NIL NIL "7BIT" 11 1 NIL NIL NIL NIL)'
        b' "ALTERNATIVE" ("BOUNDARY" "inner") NIL NIL NIL)'
        b'("IMAGE" "PNG" NIL NIL NIL "BASE64" 4 NIL NIL NIL "http://example.org/x.png")'
        b' "MIXED" ("BOUNDARY" "outer") NIL NIL NIL)'
    )


INNER_MESSAGE = crlf(
    "From: Bob <bob@example.net>\n"
    "To: carol@example.com\n"
    "Subject: original\n"
    "Message-ID: <orig@example.net>\n"
    "Content-Type: multipart/mixed; boundary=in\n"
    "\n"
    "--in\n"
    "\n"
    "inner text\n"
    "--in\n"
    "Content-Type: application/octet-stream\n"
    "\n"
    "xyz\n"
    "--in--\n"
)

FORWARD = (
    crlf(
        "From: alice@example.com\n"
        "Subject: Fwd: original\n"
        "Content-Type: multipart/mixed; boundary=fw\n"
        "\n"
        "--fw\n"
        "Content-Type: text/plain\n"
        "\n"
        "see below\n"
        "--fw\n"
        "Content-Type: message/rfc822\n"
        "\n"
    )
    + INNER_MESSAGE
    + crlf("--fw--\n")
)


def test_forwarded_message_with_its_own_multipart():
    s = parse_message(FORWARD)
    inner_env = (
        b'(NIL "original" (("Bob" NIL "bob" "example.net"))'
        b' (("Bob" NIL "bob" "example.net")) (("Bob" NIL "bob" "example.net"))'
        b' ((NIL NIL "carol" "example.com")) NIL NIL NIL "<orig@example.net>")'
    )
    inner_body = (
        b'(("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 10 1)'
        b'("APPLICATION" "OCTET-STREAM" NIL NIL NIL "7BIT" 3) "MIXED")'
    )
    size = len(INNER_MESSAGE)  # the CRLF before "--fw--" is the delimiter's
    assert bodystructure(s.root, False) == (
        b'(("TEXT" "PLAIN" NIL NIL NIL "7BIT" 9 1)'
        b'("MESSAGE" "RFC822" NIL NIL NIL "7BIT" %d ' % (size - 2)
        + inner_env
        + b" "
        + inner_body
        + b' %d) "MIXED")' % INNER_MESSAGE.count(b"\n")
    )


def test_encoded_word_subject_stays_encoded():
    s = parse_message(
        b"Subject: =?ISO-8859-1?Q?Caf=E9?= menu\r\nFrom: x@y\r\n\r\nbody"
    )
    assert envelope(s.envelope) == (
        b'(NIL "=?ISO-8859-1?Q?Caf=E9?= menu" ((NIL NIL "x" "y"))'
        b' ((NIL NIL "x" "y")) ((NIL NIL "x" "y")) NIL NIL NIL NIL NIL)'
    )
    assert s.headers["subject"] == ["Café menu"]


def test_rfc2231_filename():
    s = parse_message(
        crlf(
            "Content-Type: application/octet-stream;\n"
            " name*0*=utf-8'en'%E2%82%AC%20rates;\n"
            ' name*1=".txt"\n'
            "Content-Disposition: attachment;\n"
            " filename*=iso-8859-1''caf%E9.txt\n"
            "\n"
            "x"
        )
    )
    assert bodystructure(s.root, True) == (
        b'("APPLICATION" "OCTET-STREAM" ("NAME" {13}\r\n\xe2\x82\xac rates.txt)'
        b' NIL NIL "7BIT" 1 NIL ("ATTACHMENT" ("FILENAME" {9}\r\ncaf\xc3\xa9.txt))'
        b" NIL NIL)"
    )


def test_8bit_header_is_sent_as_literal():
    subject = "Grüße aus Köln".encode("utf-8")
    s = parse_message(b"Subject: " + subject + b"\r\n\r\nbody\r\n")
    assert envelope(s.envelope) == (
        b"(NIL {%d}\r\n" % len(subject) + subject + b" NIL NIL NIL NIL NIL NIL NIL NIL)"
    )
    assert s.headers["subject"] == ["Grüße aus Köln"]


def test_group_address():
    s = parse_message(
        b"From: me@example.org\r\n"
        b'To: "The Team": ann@example.org, Ben <ben@example.org>;, x@example.com\r\n'
        b"Cc: undisclosed-recipients:;\r\n\r\n"
    )
    assert envelope(s.envelope) == (
        b'(NIL NIL ((NIL NIL "me" "example.org")) ((NIL NIL "me" "example.org"))'
        b' ((NIL NIL "me" "example.org"))'
        b' ((NIL NIL "The Team" NIL)(NIL NIL "ann" "example.org")'
        b'("Ben" NIL "ben" "example.org")(NIL NIL NIL NIL)(NIL NIL "x" "example.com"))'
        b' ((NIL NIL "undisclosed-recipients" NIL)(NIL NIL NIL NIL)) NIL NIL NIL)'
    )


def test_route_address_comment_name_and_quoted_display_name():
    s = parse_message(
        b'From: "Doe, John \\"JD\\"" <@relay.example,@b.example:john@example.com>\r\n'
        b"Sender: jane@example.com (Jane Roe)\r\n"
        b"Reply-To: John Q. Public <jqp@example.com>\r\n\r\n"
    )
    env = s.envelope
    assert env.from_ == [
        (b'Doe, John "JD"', b"@relay.example,@b.example", b"john", b"example.com")
    ]
    assert env.sender == [(b"Jane Roe", None, b"jane", b"example.com")]
    assert env.reply_to == [(b"John Q. Public", None, b"jqp", b"example.com")]
    assert envelope(env).startswith(
        b'(NIL NIL (("Doe, John \\"JD\\"" "@relay.example,@b.example" "john" "example.com"))'
    )


def test_malformed_no_body_separator():
    s = parse_message(b"Subject: hi\r\nFrom: a@b")
    assert s.root.body_start == s.root.end == s.size
    assert bodystructure(s.root, False) == (
        b'("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 0 0)'
    )
    assert s.envelope.subject == b"hi"


def test_malformed_unterminated_multipart():
    data = crlf(
        "Content-Type: multipart/mixed; boundary=zz\n"
        "\n"
        "--zz\n"
        "\n"
        "one\n"
        "--zz\n"
        "Content-Type: text/html\n"
        "\n"
        "<b>cut off"
    )
    s = parse_message(data)
    assert bodystructure(s.root, False) == (
        b'(("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 3 1)'
        b'("TEXT" "HTML" NIL NIL NIL "7BIT" 10 1) "MIXED")'
    )


def test_malformed_bogus_content_type_and_missing_boundary():
    bogus = parse_message(b"Content-Type: bogus\r\n\r\nhello")
    assert bodystructure(bogus.root, False) == (
        b'("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 5 1)'
    )
    no_boundary = parse_message(b"Content-Type: multipart/mixed\r\n\r\nhello\r\n")
    assert bodystructure(no_boundary.root, False) == (
        b'(("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 7 1) "MIXED")'
    )


def test_digest_children_default_to_message_rfc822():
    data = crlf(
        "Content-Type: multipart/digest; boundary=d\n"
        "\n"
        "--d\n"
        "\n"
        "Subject: one\n"
        "\n"
        "first\n"
        "--d--\n"
    )
    s = parse_message(data)
    assert bodystructure(s.root, False) == (
        b'(("MESSAGE" "RFC822" NIL NIL NIL "7BIT" 21'
        b' (NIL "one" NIL NIL NIL NIL NIL NIL NIL NIL)'
        b' ("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 5 1) 3) "DIGEST")'
    )
