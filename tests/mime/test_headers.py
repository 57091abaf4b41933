"""Header-level parsing: addresses, encoded words, parameters."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from twisted_mailhub.mime.headers import (
    _AddressParser,
    decode_header_value,
    parse_addresses,
    parse_content_type,
    split_fields,
)


@pytest.mark.parametrize(
    "value, expected",
    [
        (b"a@b.example", [(None, None, b"a", b"b.example")]),
        (b"Ann <ann@x>", [(b"Ann", None, b"ann", b"x")]),
        (b'"Lee, Ann" <ann@x>, bob@y', [(b"Lee, Ann", None, b"ann", b"x"), (None, None, b"bob", b"y")]),
        (b"ann@x (Ann (the) Lee)", [(b"Ann (the) Lee", None, b"ann", b"x")]),
        # a quoted local part is given without its quotes (RFC 3501 addr-mailbox)
        (b'"a b"@x', [(None, None, b"a b", b"x")]),
        (b'John <"john doe"@x>', [(b"John", None, b"john doe", b"x")]),
        (b'"a\\"b"@x', [(None, None, b'a"b', b"x")]),
        (b"a@[192.0.2.1]", [(None, None, b"a", b"[192.0.2.1]")]),
        (b"=?utf-8?Q?J=C3=B6rg?= <j@x>", [(b"=?utf-8?Q?J=C3=B6rg?=", None, b"j", b"x")]),
        (b"J\xc3\xb6rg <j@x>", [(b"J\xc3\xb6rg", None, b"j", b"x")]),
        (b"localonly", [(None, None, b"localonly", b"")]),
        (b"<>", None),
        (b"", None),
        (b"Empty:;", [(None, None, b"Empty", None), (None, None, None, None)]),
        # an unterminated group is closed at the end of the field
        (b"G: a@b", [(None, None, b"G", None), (None, None, b"a", b"b"), (None, None, None, None)]),
        (b"<a@b", [(None, None, b"a", b"b")]),
    ],
)
def test_parse_addresses(value, expected):
    assert parse_addresses(value) == expected


def test_decode_header_value():
    assert decode_header_value(b"=?utf-8?q?a_b?= =?utf-8?q?c?= d") == "a bc d"
    assert decode_header_value(b"=?ISO-8859-1?B?Y2Fm6Q==?=") == "café"
    assert decode_header_value(b"=?utf-8*en?Q?hi?=") == "hi"
    # unknown charsets fall back to UTF-8; broken words are left as they are
    assert decode_header_value(b"=?x-unknown?Q?=C3=A9?=") == "é"
    assert decode_header_value(b"=?utf-8?B?***?=") == "=?utf-8?B?***?="
    assert decode_header_value(b"plain\r\n folded") == "plain folded"
    assert decode_header_value(b"\xe9t\xe9") == "été"


def test_parse_content_type_rejects_bogus_values():
    assert parse_content_type(b"bogus") is None
    assert parse_content_type(b"text/") is None
    assert parse_content_type(b" (c) Text/HTML ; Charset=UTF-8") == (
        "text",
        "html",
        [("charset", "UTF-8")],
    )


def test_split_fields_ignores_junk_lines():
    header = b" stray continuation\r\nA: 1\r\n  2\r\nno colon here\r\nB : 3\r\n\r\n"
    assert split_fields(header) == [("a", b"1  2"), ("b", b"3")]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([b"a", b"@", b",", b";", b":", b"<", b">", b"(", b")", b'"', b"\\", b".", b"[", b"]", b" ", b"\xc3"]), max_size=30).map(b"".join))
def test_parse_addresses_never_raises_and_groups_balance(value):
    # The parser itself, not the defensive wrapper, must cope.
    result = _AddressParser(value).parse() or None
    assert parse_addresses(value) == result
    if result is not None:
        depth = 0
        for name, adl, mailbox, host in result:
            if host is None and mailbox is not None:
                depth += 1
            elif host is None:
                depth -= 1
            assert depth in (0, 1)
        assert depth == 0


def test_extended_parameter_wins_over_plain_one():
    ct = parse_content_type(b"text/plain; name=\"fallback.txt\"; name*=utf-8''%C3%A9.txt")
    assert ct == ("text", "plain", [("name", "é.txt")])
    broken = parse_content_type(b"text/plain; name=ok.txt; name*1=tail")
    assert broken == ("text", "plain", [("name", "ok.txt")])


def test_nul_in_charset_name_degrades_to_raw_bytes():
    # The codec registry rejects a name with NUL (ValueError, not
    # LookupError); such a charset is unknown, the bytes decode as UTF-8.
    from twisted_mailhub.mime.headers import charset_decode, parse_params

    assert charset_decode(b"caf\xc3\xa9", "ut\0f-8") == "café"
    assert decode_header_value(b"=?ut\0f-8?Q?caf=C3=A9?=") == "café"
    assert parse_params(b"; title*=ut\0f-8''caf%C3%A9") == [("title", "café")]
