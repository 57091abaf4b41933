"""
The grammar of LMTP commands: pure functions from a command line's bytes
to values, raising L{CommandError} with the reply a bad line gets.

LMTP commands are SMTP's (RFC 5321 section 4.1) with LHLO in place of
HELO and EHLO (RFC 2033 section 4.1).  Paths follow RFC 5321 section
4.1.2::

    Reverse-path   = Path / "<>"
    Forward-path   = Path
    Path           = "<" [ A-d-l ":" ] Mailbox ">"
    Mailbox        = Local-part "@" ( Domain / address-literal )
    Mail-parameters = esmtp-param *(SP esmtp-param)
    esmtp-param    = esmtp-keyword ["=" esmtp-value]

with the usual leniencies of deployed servers: spaces after ``FROM:`` and
``TO:``, several spaces between parameters, and a recipient without a
domain (``RCPT TO:<alice>``, like RFC 5321's ``<Postmaster>``).  Addresses
are UTF-8 (RFC 6531); whether non-ASCII is allowed is the session's
decision, which knows if the transaction said SMTPUTF8.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from twisted_mailhub.lmtp.replies import Reply, reply

_VERB = re.compile(rb"^[A-Za-z]{1,16}$")
_KEYWORD = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*$")
# RFC 5321 esmtp-value: any CHAR but "=", SP and controls; RFC 6531
# section 3.3 adds UTF-8 characters.
_VALUE = re.compile(r"^[^\x00-\x20=\x7f]+$")


class CommandError(Exception):
    """A line that cannot be run; C{reply} says why."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.lines[0])
        self.reply = reply


@dataclass(frozen=True, slots=True)
class Command:
    """A command line split into its verb (upper case) and the rest (bytes)."""

    verb: str
    argument: bytes


@dataclass(frozen=True, slots=True)
class Address:
    """
    A mailbox of a path: C{local} is the local part unquoted, C{domain} the
    domain or address literal (C{None} for a bare local part).  C{text} is
    the mailbox as the client wrote it, inside the angle brackets and
    without a source route; C{""} is the null reverse-path C{<>}.
    """

    text: str
    local: str = ""
    domain: str | None = None

    @property
    def is_null(self) -> bool:
        """The null reverse-path C{<>} (bounces, RFC 5321 section 4.5.5)."""
        return self.text == ""

    @property
    def ascii(self) -> bool:
        """Whether the address is plain ASCII (does not need SMTPUTF8)."""
        return self.text.isascii()


@dataclass(frozen=True, slots=True)
class PathCommand:
    """The argument of MAIL or RCPT: the address and its ESMTP parameters."""

    address: Address
    # Keywords in upper case; a parameter without "=" has the value None.
    params: dict[str, str | None] = field(default_factory=dict)


def split_command(line: bytes) -> Command:
    """
    Split a line (without its CRLF) into a L{Command}.  The verb is
    case-insensitive (RFC 5321 section 2.4).
    """
    verb, _, argument = line.partition(b" ")
    if not _VERB.match(verb):
        raise CommandError(reply(500, "5.5.2", "Syntax error: expected a command"))
    return Command(verb.decode("ascii").upper(), argument)


def parse_mail(argument: bytes) -> PathCommand:
    """The argument of C{MAIL FROM:<reverse-path> [params]}."""
    return _parse_path_command(argument, b"FROM:", null_allowed=True, status="5.1.7")


def parse_rcpt(argument: bytes) -> PathCommand:
    """The argument of C{RCPT TO:<forward-path> [params]}."""
    return _parse_path_command(argument, b"TO:", null_allowed=False, status="5.1.3")


def parse_domain(argument: bytes) -> str:
    """The client's name given with LHLO: one word, a domain or address literal."""
    name = argument.strip()
    if not name or b" " in name:
        raise CommandError(reply(501, "", "Syntax: LHLO hostname"))
    try:
        return name.decode("utf-8")
    except UnicodeDecodeError:
        raise CommandError(reply(501, "", "LHLO: the host name is not UTF-8")) from None


def _parse_path_command(argument: bytes, keyword: bytes, *, null_allowed: bool,
                        status: str) -> PathCommand:
    verb = "MAIL FROM" if keyword == b"FROM:" else "RCPT TO"
    if argument[: len(keyword)].upper() != keyword:
        raise CommandError(reply(501, "5.5.4", f"Syntax: {verb}:<address>"))
    rest = argument[len(keyword):].lstrip(b" ")
    try:
        text = rest.decode("utf-8")
    except UnicodeDecodeError:
        raise CommandError(reply(501, status, "The address is not valid UTF-8")) from None
    if not text.startswith("<"):
        raise CommandError(reply(501, status, f"Syntax: {verb}:<address>"))
    end = _closing_bracket(text)
    if end is None:
        raise CommandError(reply(501, status, "Unterminated address: missing '>'"))
    path, tail = text[1:end], text[end + 1:]
    if tail and not tail.startswith(" "):
        raise CommandError(reply(501, "5.5.4", "Expected a space after the address"))
    address = _parse_mailbox(path, null_allowed=null_allowed, status=status)
    return PathCommand(address, _parse_params(tail))


def _closing_bracket(text: str) -> int | None:
    """Index of the ">" ending the path that starts at 0, skipping quoted strings."""
    quoted = escaped = False
    for i, char in enumerate(text):
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == ">" and not quoted:
            return i
    return None


def _parse_mailbox(path: str, *, null_allowed: bool, status: str) -> Address:
    if path == "":
        if null_allowed:
            return Address("")
        raise CommandError(reply(501, status, "An empty address is not a recipient"))
    if path.startswith("@"):
        # A source route (RFC 5321 section 4.1.2 A-d-l): ignored, as
        # section 3.6.1 allows.
        route, colon, path = path.partition(":")
        if not colon or not path:
            raise CommandError(reply(501, status, "Bad source route"))
    if any(char in path for char in "\r\n\t\x00") or path.startswith("."):
        raise CommandError(reply(501, status, "Bad address syntax"))
    if path.startswith('"'):
        local, rest = _quoted_string(path, status)
    else:
        local, at, domain = path.rpartition("@")
        if not at:
            local, rest = path, ""
        else:
            rest = "@" + domain
        if not local or any(char in local for char in ' "@'):
            raise CommandError(reply(501, status, "Bad address syntax"))
    if rest and not rest.startswith("@"):
        raise CommandError(reply(501, status, "Bad address syntax"))
    domain = rest[1:] if rest else None
    if domain is not None and (not domain or " " in domain or "@" in domain):
        raise CommandError(reply(501, status, "Bad domain in address"))
    return Address(path, local, domain)


def _quoted_string(path: str, status: str) -> tuple[str, str]:
    """The unquoted content of the quoted local part starting C{path}, and what follows."""
    chars = []
    i = 1
    while i < len(path):
        char = path[i]
        if char == "\\" and i + 1 < len(path):
            chars.append(path[i + 1])
            i += 2
            continue
        if char == '"':
            return "".join(chars), path[i + 1:]
        chars.append(char)
        i += 1
    raise CommandError(reply(501, status, "Unterminated quoted local part"))


def _parse_params(tail: str) -> dict[str, str | None]:
    params: dict[str, str | None] = {}
    for word in tail.split(" "):
        if not word:
            continue
        keyword, equals, value = word.partition("=")
        if not _KEYWORD.match(keyword) or (equals and not _VALUE.match(value)):
            raise CommandError(reply(501, "5.5.4", f"Bad parameter: {word[:64]}"))
        params[keyword.upper()] = value if equals else None
    return params
