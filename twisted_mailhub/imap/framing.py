"""
Splitting the client's byte stream into whole IMAP commands.

A command is one or more lines joined by literals (RFC 9051 section 4.3):
a line that ends in ``{n}``, ``{n+}`` or ``~{n}`` (RFC 3516 literal8, RFC
7888 non-synchronizing forms) is followed by exactly n bytes, then the
command goes on with the next line.  The L{Framer} turns the stream into
frames holding the command's parts, line text and L{Literal} values in
turn, so the grammar reads each command once, whatever its literals.

The framer is also where memory is bounded: the line text of one command is
limited to C{max_line_length} bytes and its literals together to
C{max_literal_size} bytes; anything over is dropped while it streams by.

L{Cursor} reads the parts of a frame token by token for the grammar.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Union

# ATOM-CHAR: any CHAR except atom-specials (RFC 9051 section 9).
ATOM_CHARS = frozenset(range(0x21, 0x7F)) - frozenset(b'(){ %*"\\]')
ASTRING_CHARS = ATOM_CHARS | {ord("]")}
TAG_CHARS = ASTRING_CHARS - {ord("+")}
# list-char: ATOM-CHAR / list-wildcards / resp-specials
LIST_CHARS = ASTRING_CHARS | frozenset(b"%*")
DIGITS = frozenset(b"0123456789")

# Enough of a line's end to recognise the longest literal announcement
# ("~{" + 20 digits + "+}") and of a command's start to find its tag.
_TAIL_KEPT = 32
_HEAD_KEPT = 128

#: RFC 7888 section 5: under LITERAL-, the largest non-synchronizing literal.
LITERAL_MINUS_LIMIT = 4096


@dataclass(frozen=True, slots=True)
class Literal:
    """The bytes of a literal; C{binary} for a literal8 (``~{n}``)."""

    data: bytes
    binary: bool = False


Part = Union[bytes, Literal]


@dataclass(frozen=True, slots=True)
class CommandFrame:
    """A complete command: line text and literals in order."""

    parts: tuple[Part, ...]


@dataclass(frozen=True, slots=True)
class LiteralAnnounced:
    """
    A synchronizing literal of C{size} bytes was announced at the end of
    C{parts}, and fits the limits.  The framer now waits for its bytes,
    unless L{Framer.abandon_command} is called.
    """

    parts: tuple[Part, ...]
    size: int


@dataclass(frozen=True, slots=True)
class Oversize:
    """
    A line or literal went over the limits; C{head} is the start of the
    command (to find its tag), C{message} what went wrong.  The rest of the
    command is dropped as it arrives.  C{condition} is ``BAD`` for a line
    too long to parse, ``NO`` for a well-formed command refused for the size
    of its literal (RFC 4469 section 4, RFC 7889 section 4: ``NO [TOOBIG]``),
    ``BAD`` again for a non-synchronizing literal over the LITERAL- bound
    (RFC 7888 section 5: ``BAD [TOOBIG]``).
    """

    head: bytes
    message: str
    condition: str = "BAD"


@dataclass(frozen=True, slots=True)
class RawLineFrame:
    """The line asked for by L{Framer.expect_line}, end of line stripped."""

    line: bytes


Frame = Union[CommandFrame, LiteralAnnounced, Oversize, RawLineFrame]


def literal_announcement(line: bytes) -> tuple[int, int, bool, bool] | None:
    """
    If C{line} ends with a literal announcement, return C{(start, size,
    synchronizing, binary)} where C{start} is where the announcement begins.
    A size too long to be a number64 is reported as C{2**64}.
    """
    if not line.endswith(b"}"):
        return None
    brace = line.rfind(b"{", max(0, len(line) - _TAIL_KEPT))
    if brace < 0:
        return None
    inner = line[brace + 1:-1]
    sync = not inner.endswith(b"+")
    digits = inner if sync else inner[:-1]
    if not digits or not all(d in DIGITS for d in digits):
        return None
    size = int(digits) if len(digits) <= 20 else 2**64
    binary = brace > 0 and line[brace - 1] == 0x7E  # "~"
    return (brace - 1 if binary else brace), size, sync, binary


class Framer:
    """
    Bytes in, frames out.  Call L{receive_data}, then L{next_frame} until it
    returns None.  C{max_line_length} and C{max_literal_size} may be changed
    at any time; they apply from the next line or literal.
    """

    def __init__(self, max_line_length: int, max_literal_size: int,
                 max_non_synchronizing: int | None = None) -> None:
        self.max_line_length = max_line_length
        self.max_literal_size = max_literal_size
        #: LITERAL- (RFC 7888 section 5): the largest non-synchronizing
        #: literal a client may send, or None for LITERAL+ (any size the
        #: other limits allow).
        self.max_non_synchronizing = max_non_synchronizing
        self._buf = bytearray()
        self._scanned = 0
        self._raw = False
        self._reset_command()

    def _reset_command(self) -> None:
        self._parts: list[Part] = []
        self._line_used = 0
        self._literal_used = 0
        self._literal_need: int | None = None
        self._literal_binary = False
        self._drop = 0  # bytes of a refused literal still to drop
        self._skipping = False  # the current line is dropped, only its tail kept
        self._tail = bytearray()
        self._discarding = False  # the command was refused: drop the rest
        self._head = b""
        self._overlong = False

    def receive_data(self, data: bytes) -> None:
        """Buffer C{data} from the client."""
        self._buf += data

    def expect_line(self) -> None:
        """Deliver the next line as a L{RawLineFrame}."""
        self._raw = True

    def abandon_command(self) -> None:
        """
        Forget the command whose synchronizing literal was just announced;
        the client will not send the literal without a continuation request.
        """
        self._reset_command()

    def discard_buffer(self) -> int:
        """Drop all data not yet delivered in a frame; return its size."""
        dropped = self.buffered
        self._buf.clear()
        self._scanned = 0
        self._raw = False
        self._reset_command()
        return dropped

    @property
    def buffered(self) -> int:
        """Bytes held: the buffer plus the parts of the command so far."""
        return len(self._buf) + sum(
            len(p.data) if isinstance(p, Literal) else len(p) for p in self._parts
        )

    def next_frame(self) -> Frame | None:
        """The next frame, or None when more data is needed."""
        while True:
            if self._drop:
                taken = min(self._drop, len(self._buf))
                del self._buf[:taken]
                self._drop -= taken
                if self._drop:
                    return None
                continue
            if self._literal_need is not None:
                need = self._literal_need
                if len(self._buf) < need:
                    return None
                self._parts.append(Literal(bytes(self._buf[:need]), self._literal_binary))
                del self._buf[:need]
                self._literal_need = None
                continue
            frame = self._next_line()
            if frame is not _MORE:
                return frame

    def _next_line(self) -> Frame | None | object:
        if self._discarding and not self._skipping:
            self._skipping = True
            self._tail.clear()
        lf = self._buf.find(b"\n", self._scanned)
        if lf < 0:
            self._scanned = len(self._buf)
            room = self.max_line_length - self._line_used
            if self._skipping or len(self._buf) > room + 1:  # +1: a pending CR
                self._start_skipping(self._buf)
                self._keep_tail(self._buf)
                self._buf.clear()
                self._scanned = 0
            return None
        line = bytes(self._buf[:lf])
        del self._buf[:lf + 1]
        self._scanned = 0
        if line.endswith(b"\r"):
            line = line[:-1]
        if not self._skipping and self._line_used + len(line) > self.max_line_length:
            self._start_skipping(line)
        if self._skipping:
            self._keep_tail(line)
            return self._end_skipped_line()
        if self._raw:
            self._raw = False
            return RawLineFrame(line)
        if not self._parts:
            self._head = line[:_HEAD_KEPT]
        return self._end_line(line)

    def _start_skipping(self, line: bytes | bytearray) -> None:
        if not self._skipping:
            self._skipping = True
            self._tail.clear()
            if not self._parts and not self._discarding:
                self._head = bytes(line[:_HEAD_KEPT])
            if not self._discarding:
                self._overlong = True

    def _keep_tail(self, data: bytes | bytearray) -> None:
        self._tail += data[-_TAIL_KEPT:]
        del self._tail[:-_TAIL_KEPT]

    def _end_skipped_line(self) -> Frame | object:
        tail = bytes(self._tail)
        if tail.endswith(b"\r"):
            tail = tail[:-1]
        self._skipping = False
        announced = literal_announcement(tail)
        report = self._overlong and not self._raw
        head, raw = self._head, self._raw
        self._raw = False
        if announced is not None and not announced[2] and not raw:
            # The client sends a non-synchronizing literal regardless.
            self._drop = announced[1]
            self._discarding = True
            self._overlong = False
        else:
            self._reset_command()
        if report or raw:
            return Oversize(b"" if raw else head, "Line too long")
        return _MORE

    def _end_line(self, line: bytes) -> Frame | object:
        announced = literal_announcement(line)
        if announced is None:
            self._parts.append(line)
            frame = CommandFrame(tuple(self._parts))
            self._reset_command()
            return frame
        start, size, sync, binary = announced
        self._parts.append(line[:start])
        self._line_used += len(line)
        problem, condition = self._literal_problem(size), "NO"
        limit = self.max_non_synchronizing
        if not sync and limit is not None and size > limit:
            # RFC 7888 section 5: a client broke the LITERAL- rule; the
            # command is refused as section 4 says, with BAD [TOOBIG].
            problem = f"Non-synchronizing literal over {limit} bytes: {size}"
            condition = "BAD"
        if problem is not None:
            head = self._head
            if sync:
                self._reset_command()
            else:
                # RFC 7888 section 4, choice 1: read the literal and drop it.
                self._parts.clear()
                self._drop = size
                self._discarding = True
                self._skipping = False
            return Oversize(head, problem, condition)
        self._literal_need = size
        self._literal_binary = binary
        self._literal_used += size
        if sync:
            return LiteralAnnounced(tuple(self._parts), size)
        return _MORE

    def _literal_problem(self, size: int) -> str | None:
        if size > self.max_literal_size:
            return f"Literal too large: {size} bytes (limit {self.max_literal_size})"
        if self._literal_used + size > self.max_literal_size:
            return f"Literals in command exceed {self.max_literal_size} bytes"
        return None


_MORE = object()  # _next_line consumed a line without producing a frame


class ParseError(Exception):
    """
    The command does not match the grammar; C{code} is a response code and
    C{tag} the command's tag once known.  C{condition} is C{"NO"} for a
    command that is well formed but refused by what it names (an argument
    the server cannot take), C{"BAD"} otherwise.
    """

    def __init__(self, message: str, code: str | None = None, condition: str = "BAD") -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.condition = condition
        self.tag: str | None = None


class Cursor:
    """
    Reads a command's parts: line text byte by byte, each literal as one
    token.  A literal is always followed by more line text (maybe empty).

    C{utf8} is set once the client may send UTF-8 in quoted strings
    (UTF8=ACCEPT, RFC 6855 section 3, or IMAP4rev2, RFC 9051 section
    4.3.1): a quoted string must then be valid UTF-8.
    """

    def __init__(self, parts: tuple[Part, ...], utf8: bool = False) -> None:
        self._parts = parts
        self._index = 0
        self._pos = 0
        self.utf8 = utf8

    def mark(self) -> tuple[int, int]:
        """The current position, for L{reset}."""
        return self._index, self._pos

    def reset(self, mark: tuple[int, int]) -> None:
        self._index, self._pos = mark

    @property
    def _text(self) -> bytes:
        return self._parts[self._index]  # type: ignore[return-value]

    def peek(self) -> int | None:
        """The next byte of line text; None at a literal or the end."""
        text = self._text
        return text[self._pos] if self._pos < len(text) else None

    def peek_bytes(self, n: int) -> bytes:
        """Up to C{n} bytes of line text ahead (not crossing a literal)."""
        return self._text[self._pos:self._pos + n]

    def at_literal(self) -> bool:
        return self._pos >= len(self._text) and self._index + 1 < len(self._parts)

    def at_end(self) -> bool:
        return self._pos >= len(self._text) and self._index + 1 >= len(self._parts)

    def advance(self, n: int = 1) -> None:
        self._pos += n

    def skip(self, byte: int) -> bool:
        """Consume C{byte} if it comes next."""
        if self.peek() == byte:
            self._pos += 1
            return True
        return False

    def take_while(self, allowed: frozenset[int]) -> bytes:
        text = self._text
        start = pos = self._pos
        while pos < len(text) and text[pos] in allowed:
            pos += 1
        self._pos = pos
        return text[start:pos]

    def take_literal(self) -> Literal:
        literal = self._parts[self._index + 1]
        assert isinstance(literal, Literal)
        self._index += 2
        self._pos = 0
        return literal

    # -- tokens of RFC 9051 section 9 -----------------------------------------

    def missing_or_invalid(self, what: str) -> ParseError:
        """The error for C{what} absent (end of command) or malformed."""
        if self.at_end():
            return ParseError(f"Missing {what}")
        return ParseError(f"Invalid {what}")

    def sp(self, what: str) -> None:
        """The SP that comes before the argument C{what}."""
        if self.skip(_SP):
            return
        if self.at_end():
            raise ParseError(f"Missing {what}")
        raise ParseError(f"Expected SP before {what}")

    def expect(self, byte: int, what: str) -> None:
        if not self.skip(byte):
            raise ParseError(f"Expected {chr(byte)} {what}")

    def finish(self) -> None:
        """Check that nothing follows the command."""
        if not self.at_end():
            raise ParseError("Unexpected characters after command")

    def atom(self, what: str) -> bytes:
        value = self.take_while(ATOM_CHARS)
        if not value:
            raise self.missing_or_invalid(what)
        self._no_8bit(what)
        return value

    def _no_8bit(self, what: str) -> None:
        # 8-bit text is only allowed in quoted strings and literals.
        byte = self.peek()
        if byte is not None and byte >= 0x80:
            raise ParseError(f"Invalid character in {what}")

    def word(self, what: str) -> str:
        """An atom read as an upper-case keyword."""
        return self.atom(what).decode("ascii").upper()

    def peek_word(self) -> str:
        """The keyword that comes next, without consuming it."""
        mark = self.mark()
        value = self.take_while(ATOM_CHARS)
        self.reset(mark)
        return value.decode("ascii").upper()

    def quoted(self, what: str) -> bytes:
        """A quoted string, the opening DQUOTE next (RFC 9051 ``quoted``)."""
        text = self._text
        pos = self._pos + 1
        out = bytearray()
        while True:
            end = _next_special(text, pos)
            if end < 0:
                raise ParseError(f"Unterminated quoted string in {what}")
            out += text[pos:end]
            byte = text[end]
            if byte == _DQUOTE:
                self._pos = end + 1
                if self.utf8 and not out.isascii():
                    # RFC 6855 section 3: high-bit octets that are not
                    # UTF-8 in the extended quoted syntax are BAD.
                    try:
                        out.decode("utf-8")
                    except UnicodeDecodeError:
                        raise ParseError(f"Invalid UTF-8 in quoted {what}") from None
                return bytes(out)
            if byte == _BACKSLASH:
                if end + 1 >= len(text) or text[end + 1] not in (_DQUOTE, _BACKSLASH):
                    raise ParseError(f"Invalid escape in quoted {what}")
                out.append(text[end + 1])
                pos = end + 2
            else:
                raise ParseError(f"Invalid character in quoted {what}")

    def string(self, what: str, *, binary: bool = False) -> bytes:
        """A quoted string or a literal; a literal8 only if C{binary}."""
        if self.peek() == _DQUOTE:
            return self.quoted(what)
        if self.at_literal():
            literal = self.take_literal()
            if literal.binary and not binary:
                raise ParseError(f"Binary literal not allowed for {what}")
            if not literal.binary and b"\0" in literal.data:
                raise ParseError(f"NUL byte in literal for {what}")
            return literal.data
        raise self.missing_or_invalid(what)

    def astring(self, what: str) -> bytes:
        if self.peek() == _DQUOTE or self.at_literal():
            return self.string(what)
        value = self.take_while(ASTRING_CHARS)
        if not value:
            raise self.missing_or_invalid(what)
        self._no_8bit(what)
        return value

    def nstring(self, what: str) -> bytes | None:
        if self.peek() == _DQUOTE or self.at_literal():
            return self.string(what)
        if self.take_while(ATOM_CHARS).upper() == b"NIL":
            return None
        raise ParseError(f"Expected string or NIL for {what}")

    def number(self, what: str, *, nonzero: bool = False, limit: int = 2**32 - 1) -> int:
        """A number, nz-number, number64 (C{limit}=2**63-1) ..."""
        digits = self.take_while(DIGITS)
        if not digits:
            raise self.missing_or_invalid(what)
        if len(digits) > 20 or int(digits) > limit:
            raise ParseError(f"Number too large for {what}")
        value = int(digits)
        if nonzero and value == 0:
            raise ParseError(f"Invalid {what}: must not be 0")
        return value


_SP, _DQUOTE, _BACKSLASH = 0x20, 0x22, 0x5C
_QUOTED_SPECIAL = re.compile(rb'["\\\r\n\0]')


def _next_special(text: bytes, pos: int) -> int:
    """Index of the next DQUOTE, backslash, CR, LF or NUL from C{pos}."""
    found = _QUOTED_SPECIAL.search(text, pos)
    return found.start() if found else -1
