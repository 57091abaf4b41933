"""JSON round trip of parsed structures."""

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from twisted_mailhub.mime.parse import parse_message
from twisted_mailhub.mime.serial import structure_from_json, structure_to_json
from twisted_mailhub.mime.structure import MessageStructure

RICH = (
    b"From: \"J\xc3\xb6rg\" <j@x>, G: a@b;\r\n"
    b"Subject: =?utf-8?B?w6k=?= \xff\r\n"
    b"Content-Type: multipart/mixed; boundary=q\r\n\r\n"
    b"--q\r\n"
    b"Content-Type: text/plain; name*=utf-8''%C3%A9\r\n"
    b"Content-Disposition: attachment; filename=a.txt\r\n"
    b"Content-Language: en\r\n"
    b"Content-ID: <id>\r\nContent-MD5: abc\r\nContent-Location: here\r\n"
    b"Content-Description: d\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
    b"\xe9\r\n"
    b"--q\r\n"
    b"Content-Type: message/rfc822\r\n\r\n"
    b"Subject: inner\r\n\r\nx\r\n"
    b"--q--\r\n"
)


def test_round_trip_through_json_text():
    s = parse_message(RICH)
    text = json.dumps(structure_to_json(s))
    back = structure_from_json(json.loads(text))
    assert back == s
    assert back.root.children[0].md5 == b"abc"
    assert back.root.children[1].message is not None
    assert back.envelope.from_[0][0] == b"J\xc3\xb6rg"


def test_methods_on_the_dataclass():
    s = parse_message(RICH)
    assert MessageStructure.from_json(s.to_json()) == s


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=300))
def test_round_trip_of_arbitrary_messages(data):
    s = parse_message(data)
    assert structure_from_json(json.loads(json.dumps(structure_to_json(s)))) == s
