"""
POP3 on the wire, without sockets: status lines, multi-line responses,
dot-stuffing and the TOP line filter (RFC 1939 section 3, RFC 2449
section 8).

Everything here is pure: bytes in, bytes out.  Message content goes through
L{DotStuffer} chunk by chunk, so a message is never held whole in memory
and a line split across two chunks is stuffed correctly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

CRLF = b"\r\n"
TERMINATOR = b".\r\n"

# RFC 2449 section 4: the first line of a response is at most 512 octets.
MAX_STATUS_LINE = 512


def _text(text: str) -> bytes:
    # Response text is one line of 7-bit text (RFC 1939 section 3).
    return text.replace("\r", " ").replace("\n", " ").encode("ascii", "replace")


def ok(text: str = "", code: str | None = None) -> bytes:
    """``+OK [CODE] text`` with CRLF."""
    return _status(b"+OK", text, code)


def err(text: str, code: str | None = None) -> bytes:
    """``-ERR [CODE] text`` with CRLF; C{code} per RFC 2449 section 8."""
    return _status(b"-ERR", text, code)


def _status(indicator: bytes, text: str, code: str | None) -> bytes:
    line = indicator
    if code:
        line += b" [" + code.encode("ascii") + b"]"
    if text:
        line += b" " + _text(text)
    return line[: MAX_STATUS_LINE - 2] + CRLF


def multiline(first: bytes, lines: list[bytes]) -> bytes:
    """
    A complete multi-line response: the status line C{first} (with its CRLF),
    each of C{lines} dot-stuffed and CRLF-terminated, then ``.``.
    """
    body = b"".join(
        (b"." + line if line.startswith(b".") else line) + CRLF for line in lines
    )
    return first + body + TERMINATOR


@dataclass(frozen=True, slots=True)
class Command:
    """One client command: the upper-cased keyword and its arguments."""

    keyword: str
    args: tuple[str, ...]
    # Everything after the keyword and one space, verbatim (PASS takes it
    # whole, since passwords may contain spaces).
    rest: str


class CommandSyntaxError(ValueError):
    """The line is not a POP3 command."""


def parse_command(line: bytes) -> Command:
    """
    Parse one command line (without its CRLF).  RFC 1939 section 3:
    a case-insensitive keyword, then arguments separated by single spaces.
    Arguments are decoded as UTF-8 (invalid bytes replaced).
    """
    text = line.decode("utf-8", "replace")
    keyword, _, rest = text.partition(" ")
    if not keyword or not keyword.isascii() or not keyword.isalpha() or len(keyword) > 8:
        raise CommandSyntaxError("not a command")
    args = tuple(a for a in rest.split(" ") if a)
    return Command(keyword.upper(), args, rest)


# A line end that needs rewriting: a LF without its CR, or one followed by
# a dot.  One regular expression pass over a chunk (its scan goes from LF to
# LF) costs a third of the three whole-chunk byte searches it replaces, and
# nearly every message has no match.
_NEEDS_WORK = re.compile(rb"\n(?:(?<!\r\n)|\.)")


class DotStuffer:
    """
    Turns raw message bytes into the body of a multi-line response.

    Line ends are made CRLF (a bare LF becomes CRLF; a lone CR is left as
    it is), a line starting with ``.`` gets another ``.`` in front (RFC 1939
    section 3), and L{finish} ends the last line if needed and adds the
    terminating ``.`` line.  Feed chunks in order; state carries across.
    """

    def __init__(self) -> None:
        self._at_line_start = True
        self._pending_cr = False

    def feed(self, data: bytes) -> bytes:
        """The stuffed form of the next C{data} (possibly held back by one CR)."""
        if self._pending_cr:
            data = b"\r" + data
            self._pending_cr = False
        if data.endswith(b"\r"):
            # It may be the first half of a CRLF split across chunks.
            data = data[:-1]
            self._pending_cr = True
        if not data:
            return b""
        # Whole-chunk passes in C, not a loop over lines; a message whose
        # lines all end in CRLF and none starts with a dot (nearly every
        # one) needs no rewriting.
        if _NEEDS_WORK.search(data) is not None:
            if data.count(b"\n") != data.count(b"\r\n"):
                data = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
            if b"\n." in data:
                data = data.replace(b"\n.", b"\n..")
        if self._at_line_start and data.startswith(b"."):
            data = b"." + data
        self._at_line_start = data.endswith(b"\n")
        return data

    def finish(self) -> bytes:
        """The rest of the response: a final CRLF if needed, then ``.`` CRLF."""
        tail = b""
        if self._pending_cr:
            self._pending_cr = False
            tail = b"\r"
            self._at_line_start = False
        if not self._at_line_start:
            tail += CRLF
        self._at_line_start = True
        return tail + TERMINATOR


class TopFilter:
    """
    Passes the header, the blank line after it and the first C{lines} lines
    of the body (RFC 1939 section 7, TOP), chunk by chunk, without holding
    more than two bytes of a line.  L{done} turns true once nothing more is
    needed, so the caller can stop reading the message.
    """

    def __init__(self, lines: int) -> None:
        self.lines = lines
        self.done = False
        self._in_header = True
        self._body_lines = 0
        # The first bytes of the current, unfinished line: enough to tell
        # whether it is the empty line ending the header.
        self._head = b""

    def feed(self, data: bytes) -> bytes:
        """The part of C{data} that belongs to the TOP response."""
        out: list[bytes] = []
        pos = 0
        while pos < len(data) and not self.done:
            if not self._in_header and self._body_lines >= self.lines:
                self.done = True
                break
            newline = data.find(b"\n", pos)
            if newline == -1:
                segment = data[pos:]
                self._head = (self._head + segment)[:2]
                out.append(segment)
                break
            segment = data[pos : newline + 1]
            line_start = (self._head + segment)[:3]
            self._head = b""
            out.append(segment)
            pos = newline + 1
            if self._in_header:
                if line_start in (b"\n", b"\r\n"):
                    self._in_header = False
            else:
                self._body_lines += 1
        if not self._in_header and self._body_lines >= self.lines:
            self.done = True
        return b"".join(out)
