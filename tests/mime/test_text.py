"""Decoded text and sent date for SEARCH."""

import datetime

from twisted_mailhub.mime.parse import parse_message
from twisted_mailhub.mime.text import decode_header_value, search_text, sent_date

MESSAGE = (
    b"Date: Mon, 7 Feb 1994 21:52:25 -0800 (PST)\r\n"
    b"Subject: =?utf-8?Q?R=C3=A9union?=\r\n"
    b"Content-Type: multipart/mixed; boundary=s\r\n"
    b"\r\n"
    b"--s\r\n"
    b"Content-Type: text/plain; charset=iso-8859-1\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n"
    b"\r\n"
    b"Caf=E9 at no=\r\non\r\n"
    b"--s\r\n"
    b"Content-Type: text/html; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    b"PGI+w6l0w6k8L2I+\r\n"
    b"--s\r\n"
    b"Content-Type: application/octet-stream\r\n"
    b"\r\n"
    b"not searched\r\n"
    b"--s\r\n"
    b"Content-Type: message/rfc822\r\n"
    b"\r\n"
    b"Subject: inner\r\n"
    b"\r\n"
    b"inner words\r\n"
    b"--s--\r\n"
)


def test_search_text():
    header, body = search_text(MESSAGE, parse_message(MESSAGE))
    assert "subject: Réunion" in header
    assert "date: Mon, 7 Feb 1994" in header
    assert "Café at noon" in body
    assert "<b>été</b>" in body
    assert "inner words" in body
    assert "not searched" not in body


def test_search_text_with_wrong_charset_and_encoding():
    data = (
        b"Content-Type: text/plain; charset=x-nonsense\r\n"
        b"Content-Transfer-Encoding: x-weird\r\n\r\n\xe9t\xe9"
    )
    header, body = search_text(data, parse_message(data))
    assert body == "été"


def test_sent_date_uses_the_date_as_written():
    assert sent_date(parse_message(MESSAGE)) == datetime.date(1994, 2, 7)


def test_sent_date_is_tolerant():
    def date_of(value: bytes):
        return sent_date(parse_message(b"Date: " + value + b"\r\n\r\n"))

    assert date_of(b"7 Feb 94 21:52 PST") == datetime.date(1994, 2, 7)
    assert date_of(b"Tuesday, 03 March 2020 10:00:00 +0100 garbage") == datetime.date(2020, 3, 3)
    assert date_of(b"yesterday") is None
    assert sent_date(parse_message(b"Subject: x\r\n\r\n")) is None


def test_decode_header_value_is_exported_here():
    assert decode_header_value(b"=?utf-8?B?w6k=?=") == "é"


def test_header_search_values_add_the_parsed_addresses():
    from twisted_mailhub.mime.parse import parse_message
    from twisted_mailhub.mime.text import header_search_values

    s = parse_message(b"From: <user-from (comment)@ (comment) domain.org>\r\n"
                      b"To: =?utf-8?Q?J=C3=B6rg?= <\"j g\"@x.org>, Team: a@b.org;\r\n"
                      b"Subject: s\r\n\r\n")
    # (a comment stands for the missing display name, as in ENVELOPE)
    assert header_search_values(s, "from") == [
        "<user-from (comment)@ (comment) domain.org>", "user-from@domain.org", "comment"]
    assert header_search_values(s, "to")[1:] == ["j g@x.org", "Jörg", "a@b.org"]
    assert header_search_values(s, "subject") == ["s"]
    assert header_search_values(s, "cc") == []
