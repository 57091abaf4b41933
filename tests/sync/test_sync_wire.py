"""Reading imaplib's response data: FETCH, LIST, INTERNALDATE, Message-ID."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from twisted_mailhub.sync.source import SourceURL
from twisted_mailhub.sync.wire import (
    WireError,
    fetch_items,
    internaldate,
    list_entries,
    message_id,
    quote,
)


def test_fetch_with_literals_and_sections():
    # As imaplib returns them: (text ending in {N}, literal) pairs, then the rest.
    data = [
        (b'1 (UID 7 FLAGS (\\Seen $Work) INTERNALDATE "01-Feb-2020 10:00:00 +0530" '
         b'RFC822.SIZE 42 BODY[HEADER.FIELDS (MESSAGE-ID)] {23}', b"Message-ID: <a@b>\r\n\r\n"),
        b")",
        b'2 (UID 9 FLAGS () INTERNALDATE " 3-Mar-2019 12:30:45 -0700" RFC822.SIZE 5 '
        b'BODY[HEADER.FIELDS (MESSAGE-ID)] "")',
        (b"3 (UID 10 BODY[] {5}", b"a)b\r\n"), (b" BODY[TEXT] {2}", b"(("), b" FLAGS (\\Deleted))",
    ]
    first, second, third = fetch_items(data)
    assert first[b"UID"] == b"7"
    assert first[b"FLAGS"] == [b"\\Seen", b"$Work"]
    assert first[b"INTERNALDATE"] == b"01-Feb-2020 10:00:00 +0530"
    assert first[b"BODY[HEADER.FIELDS (MESSAGE-ID)]"] == b"Message-ID: <a@b>\r\n\r\n"
    assert second[b"FLAGS"] == [] and second[b"BODY[HEADER.FIELDS (MESSAGE-ID)]"] == b""
    assert third == {b"UID": b"10", b"BODY[]": b"a)b\r\n", b"BODY[TEXT]": b"((",
                     b"FLAGS": [b"\\Deleted"]}


def test_broken_fetch_is_an_error():
    for data in ([b"1 (UID 7 FLAGS (\\Seen)"], [b'1 (UID "7)'], [b"1 (UID)"]):
        with pytest.raises(WireError):
            list(fetch_items(data))


def test_list_entries():
    data = [b'(\\HasNoChildren \\Sent) "/" Sent', b'(\\Noselect) "." "Work"',
            (b"() NIL {7}", b"Odd \"x\""), b"", b'() "/" "say \\"hi\\""', None]
    entries = list_entries(data)
    assert [(e.attributes, e.delimiter, e.name) for e in entries] == [
        (frozenset({"\\HasNoChildren", "\\Sent"}), "/", b"Sent"),
        (frozenset({"\\Noselect"}), ".", b"Work"),
        (frozenset(), None, b'Odd "x"'),
        (frozenset(), "/", b'say "hi"'),
    ]


def test_internaldate_keeps_its_zone():
    date = internaldate(b" 3-Mar-2019 12:30:45 -0730")
    assert date == datetime(2019, 3, 3, 12, 30, 45, tzinfo=timezone(-timedelta(hours=7.5)))
    assert date.utcoffset() == -timedelta(hours=7, minutes=30)
    for bad in (b"3-Foo-2019 12:30:45 +0000", b"2019-03-03T12:30:45Z", b""):
        with pytest.raises(WireError):
            internaldate(bad)


def test_message_id():
    assert message_id(b"Message-ID: <a@b>\r\n\r\n") == "<a@b>"
    assert message_id(b"Subject: x\r\nmessage-id:\r\n  <folded@b> (comment)\r\n\r\n") \
        == "<folded@b>"
    assert message_id(b"Subject: x\n\nMessage-ID: <in-body@b>\n") is None
    assert message_id(b"") is None


def test_quote():
    assert quote('a "b" \\c') == '"a \\"b\\" \\\\c"'
    with pytest.raises(WireError):
        quote("line\r\nbreak")


def test_source_urls():
    url = SourceURL.parse("imaps://bob%40example.org@mail.example.org")
    assert (url.tls, url.user, url.host, url.port) == (True, "bob@example.org",
                                                        "mail.example.org", 993)
    assert not url.loopback
    plain = SourceURL.parse("imap://bob@[::1]:1143")
    assert (plain.tls, plain.host, plain.port, plain.loopback) == (False, "::1", 1143, True)
    assert str(plain) == "imap://bob@[::1]:1143"
    assert SourceURL.parse("imap://bob@localhost").loopback
    for bad in ("pop3://bob@host", "imap://host", "imap://bob:pw@host", "imap://bob@host/INBOX",
                "imap://bob@host:99999"):
        with pytest.raises(ValueError):
            SourceURL.parse(bad)
