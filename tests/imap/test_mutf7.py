"""Modified UTF-7 mailbox names (RFC 3501 section 5.1.3)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from twisted_mailhub.imap import mutf7


def test_rfc3501_example_decodes():
    assert mutf7.decode(b"~peter/mail/&U,BTFw-/&ZeVnLIqe-") == "~peter/mail/台北/日本語"


def test_rfc3501_example_encodes():
    assert mutf7.encode("~peter/mail/台北/日本語") == b"~peter/mail/&U,BTFw-/&ZeVnLIqe-"


@pytest.mark.parametrize(
    "text, wire",
    [
        ("", b""),
        ("INBOX", b"INBOX"),
        ("a&b", b"a&-b"),
        ("&", b"&-"),
        ("Entwürfe", b"Entw&APw-rfe"),
        ("\U0001F600", b"&2D3eAA-"),  # outside the BMP: a surrogate pair
        ("tab\there", b"tab&AAk-here"),
    ],
)
def test_vectors(text, wire):
    assert mutf7.encode(text) == wire
    assert mutf7.decode(wire) == text


@pytest.mark.parametrize(
    "wire",
    [
        b"&U,BTFw",  # no closing "-"
        b"caf\xc3\xa9",  # 8-bit bytes
        b"a\x01b",  # control character
        b"&AGE-",  # "a" encoded although it can stand for itself
        b"&U,BTFw-&ZeVnLIqe-",  # null shift between two encoded runs
        b"&U/BTFw-",  # "/" instead of ","
        b"&Jjo=-",  # padding
        b"&2D3e-",  # lone high surrogate
        b"&AP-",  # not whole UTF-16 units
        b"&APx-",  # non-zero padding bits
    ],
)
def test_invalid_input_raises(wire):
    with pytest.raises(ValueError):
        mutf7.decode(wire)


@given(st.text())
def test_round_trip(text):
    wire = mutf7.encode(text)
    assert all(0x20 <= b < 0x7F for b in wire)
    assert mutf7.decode(wire) == text


@given(st.binary())
def test_decode_arbitrary_bytes_only_raises_value_error(data):
    try:
        text = mutf7.decode(data)
    except ValueError:
        return
    # Whatever decodes is canonical: it encodes back to the same bytes.
    assert mutf7.encode(text) == data
