"""The LMTP command grammar: verbs, paths (RFC 5321 section 4.1.2), ESMTP parameters."""

from __future__ import annotations

import pytest

from twisted_mailhub.lmtp.commands import (
    Address,
    CommandError,
    parse_domain,
    parse_mail,
    parse_rcpt,
    split_command,
)
from twisted_mailhub.lmtp.replies import Reply


def refused(parse, argument: bytes) -> Reply:
    with pytest.raises(CommandError) as caught:
        parse(argument)
    return caught.value.reply


def test_verbs_are_case_insensitive() -> None:
    assert split_command(b"lhlo mx.example.org").verb == "LHLO"
    assert split_command(b"Rcpt TO:<a@b>").argument == b"TO:<a@b>"
    assert split_command(b"QUIT").argument == b""


def test_a_line_without_a_verb_is_a_syntax_error() -> None:
    assert refused(split_command, b"").code == 500
    assert refused(split_command, b"12 34").enhanced == "5.5.2"


def test_mail_from_with_parameters() -> None:
    command = parse_mail(b"FROM:<chris@bar.com> BODY=8BITMIME SIZE=1024 SMTPUTF8")
    assert command.address == Address("chris@bar.com", "chris", "bar.com")
    assert command.params == {"BODY": "8BITMIME", "SIZE": "1024", "SMTPUTF8": None}


def test_null_reverse_path() -> None:
    command = parse_mail(b"FROM:<>")
    assert command.address.is_null
    assert command.params == {}


def test_null_forward_path_is_refused() -> None:
    answer = refused(parse_rcpt, b"TO:<>")
    assert (answer.code, answer.enhanced) == (501, "5.1.3")


def test_leniencies_of_deployed_clients() -> None:
    # A space after the colon, a lower-case keyword, several spaces.
    assert parse_mail(b"from: <a@example.org>  BODY=7BIT").params == {"BODY": "7BIT"}
    assert parse_rcpt(b"to:<Postmaster>").address == Address("Postmaster", "Postmaster", None)


def test_quoted_local_part_is_unquoted() -> None:
    address = parse_rcpt(b'TO:<"john \\"jr\\" doe"@example.org>').address
    assert address.local == 'john "jr" doe'
    assert address.domain == "example.org"
    # A ">" inside the quotes does not end the path.
    assert parse_rcpt(b'TO:<"a>b"@example.org>').address.local == "a>b"


def test_source_route_is_dropped() -> None:
    # RFC 5321 section 4.1.2 and appendix C: accepted, ignored.
    address = parse_rcpt(b"TO:<@relay.example,@other.example:pat@foo.edu>").address
    assert (address.text, address.local, address.domain) == ("pat@foo.edu", "pat", "foo.edu")


def test_utf8_address() -> None:
    address = parse_rcpt("TO:<jörg@bücher.example>".encode()).address
    assert address.local == "jörg"
    assert not address.ascii


@pytest.mark.parametrize("argument", [
    b"TO:pat@foo.edu",  # no angle brackets
    b"TO:<pat@foo.edu",  # unterminated
    b"TO:<pat@foo.edu>X",  # no space before parameters
    b"TO:<pat@@foo.edu>",
    b"TO:<pat@>",
    b"TO:<pa t@foo.edu>",
    b"TO:<\xff@foo.edu>",  # not UTF-8
    b"FOR:<pat@foo.edu>",
])
def test_bad_forward_paths(argument: bytes) -> None:
    assert refused(parse_rcpt, argument).code == 501


@pytest.mark.parametrize("argument", [
    b"FROM:<a@b> =x",
    b"FROM:<a@b> BODY=",
    b"FROM:<a@b> -X=1",
])
def test_bad_parameters(argument: bytes) -> None:
    answer = refused(parse_mail, argument)
    assert (answer.code, answer.enhanced) == (501, "5.5.4")


def test_lhlo_needs_one_name() -> None:
    assert parse_domain(b"mx.example.org") == "mx.example.org"
    assert parse_domain(b"[127.0.0.1]") == "[127.0.0.1]"
    assert refused(parse_domain, b"").code == 501
    assert refused(parse_domain, b"two words").code == 501


def test_reply_bytes() -> None:
    assert Reply.of(250, "2.1.5", "OK").to_bytes() == b"250 2.1.5 OK\r\n"
    assert Reply.of(250, "", "host", "PIPELINING").to_bytes() == b"250-host\r\n250 PIPELINING\r\n"
    # No line break can be smuggled into a reply; lines stop at 512 octets.
    assert Reply.of(550, "5.1.1", "a\r\nb").to_bytes() == b"550 5.1.1 a b\r\n"
    assert len(Reply.of(550, "5.1.1", "x" * 1000).to_bytes()) == 512
