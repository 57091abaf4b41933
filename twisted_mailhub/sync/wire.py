"""
Reading the responses Python's C{imaplib} hands back: FETCH, LIST and LSUB
data, INTERNALDATE values and Message-ID fields.

C{imaplib} gives each untagged response as a run of C{(text, literal)}
pairs, one per literal the line announced, ended by a plain C{bytes}
element holding the rest of the line.  L{responses} regroups them and
L{parse} turns one into Python values: lists for parenthesised lists,
C{bytes} for atoms, numbers, quoted strings and literals, C{None} for NIL.
Atoms such as C{BODY[HEADER.FIELDS (MESSAGE-ID)]} stay one atom (RFC 3501
section 7.4.2: the section text is part of the item name).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Iterable, Iterator, Union

Value = Union[bytes, None, list["Value"]]


class WireError(ValueError):
    """A response this client cannot read."""


@dataclass(frozen=True, slots=True)
class Literal:
    """The content of a literal, kept apart from the text around it."""

    data: bytes


def responses(data: Iterable[object]) -> Iterator[list[bytes | Literal]]:
    """Each response of C{imaplib}'s data list, as text pieces and literals."""
    pending: list[bytes | Literal] = []
    for element in data:
        if isinstance(element, tuple):
            text, literal = element
            # The text ends with the literal's announcement, {N}.
            head = re.sub(rb"\{\d+\+?\}$", b"", bytes(text))
            pending += [head, Literal(bytes(literal))]
        elif element is None:
            continue
        else:
            pending.append(bytes(element))
            yield pending
            pending = []
    if pending:
        yield pending


class _Reader:
    def __init__(self, pieces: list[bytes | Literal]) -> None:
        self.pieces = pieces
        self.index = 0
        self.pos = 0

    def _text(self) -> bytes | None:
        while self.index < len(self.pieces):
            piece = self.pieces[self.index]
            if isinstance(piece, Literal):
                return None
            if self.pos < len(piece):
                return piece
            self.index += 1
            self.pos = 0
        return b""

    def skip_spaces(self) -> None:
        while True:
            text = self._text()
            if not text or text[self.pos : self.pos + 1] != b" ":
                return
            self.pos += 1

    def at_end(self) -> bool:
        self.skip_spaces()
        return self._text() == b""

    def value(self) -> Value:
        self.skip_spaces()
        text = self._text()
        if text is None:
            literal = self.pieces[self.index]
            self.index += 1
            self.pos = 0
            assert isinstance(literal, Literal)
            return literal.data
        if text == b"":
            raise WireError("response ended early")
        char = text[self.pos : self.pos + 1]
        if char == b"(":
            self.pos += 1
            items: list[Value] = []
            while True:
                self.skip_spaces()
                text = self._text()
                if text == b"":
                    raise WireError("unterminated list")
                if text is not None and text[self.pos : self.pos + 1] == b")":
                    self.pos += 1
                    return items
                items.append(self.value())
        if char == b'"':
            return self._quoted(text)
        if char == b")":
            raise WireError("unexpected ')'")
        return self._atom(text)

    def _quoted(self, text: bytes) -> bytes:
        out = bytearray()
        i = self.pos + 1
        while i < len(text):
            c = text[i : i + 1]
            if c == b"\\" and i + 1 < len(text):
                out += text[i + 1 : i + 2]
                i += 2
            elif c == b'"':
                self.pos = i + 1
                return bytes(out)
            else:
                out += c
                i += 1
        raise WireError("unterminated quoted string")

    def _atom(self, text: bytes) -> Value:
        start = i = self.pos
        while i < len(text):
            c = text[i : i + 1]
            if c == b"[":
                end = text.find(b"]", i)
                if end < 0:
                    raise WireError("unterminated section")
                i = end + 1
            elif c in (b" ", b"(", b")", b'"', b"{", b"\r", b"\n") or c == b"]":
                break
            else:
                i += 1
        if i == start:
            raise WireError(f"unexpected {text[i:i + 1]!r}")
        self.pos = i
        atom = text[start:i]
        return None if atom.upper() == b"NIL" else atom


def parse(pieces: list[bytes | Literal]) -> list[Value]:
    """Every value of one response, in order."""
    reader = _Reader(pieces)
    values = []
    while not reader.at_end():
        values.append(reader.value())
    return values


def fetch_items(data: Iterable[object]) -> Iterator[dict[bytes, Value]]:
    """
    The data items of each FETCH response in C{imaplib}'s data list
    (C{b"1 (UID 7 FLAGS ...)"}), keyed by upper-cased item name.
    """
    for response in responses(data):
        values = parse(response)
        if len(values) != 2 or not isinstance(values[1], list):
            raise WireError(f"not a FETCH response: {values!r}")
        items = values[1]
        if len(items) % 2:
            raise WireError("odd number of FETCH items")
        yield {bytes(items[i]).upper(): items[i + 1] for i in range(0, len(items), 2)}


@dataclass(frozen=True, slots=True)
class ListEntry:
    """One LIST or LSUB response: attributes, delimiter and raw (encoded) name."""

    attributes: frozenset[str]
    delimiter: str | None
    name: bytes


def list_entries(data: Iterable[object]) -> list[ListEntry]:
    """The LIST (or LSUB) responses in C{imaplib}'s data list."""
    entries = []
    for response in responses(data):
        values = parse(response)
        if len(values) < 3 or not isinstance(values[0], list):
            raise WireError(f"not a LIST response: {values!r}")
        attributes, delimiter, name = values[0], values[1], values[2]
        if not isinstance(name, bytes):
            raise WireError(f"bad mailbox name in LIST: {name!r}")
        entries.append(ListEntry(
            frozenset(a.decode("ascii", "replace") for a in attributes if isinstance(a, bytes)),
            None if delimiter is None else bytes(delimiter).decode("ascii", "replace"),
            name,
        ))
    return entries


_MONTHS = {m: i for i, m in enumerate(
    "jan feb mar apr may jun jul aug sep oct nov dec".split(), start=1)}
_DATE_TIME = re.compile(
    rb"^\s*(\d{1,2})-([A-Za-z]{3})-(\d{4}) (\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)\s*$")


def internaldate(value: bytes) -> datetime:
    """
    An INTERNALDATE (RFC 3501 section 9, date-time: C{"17-Jul-1996 02:44:25
    -0700"}) as an aware datetime in the zone it names.
    """
    match = _DATE_TIME.match(value)
    month = _MONTHS.get(match.group(2).decode().lower()) if match else None
    if match is None or month is None:
        raise WireError(f"not an INTERNALDATE: {value!r}")
    day, _, year, hour, minute, second, sign, zh, zm = match.groups()
    offset = timedelta(hours=int(zh), minutes=int(zm))
    zone = timezone(-offset if sign == b"-" else offset)
    return datetime(int(year), month, int(day), int(hour), int(minute), int(second),
                    tzinfo=zone)


_FIELD = re.compile(rb"^message-id[ \t]*:(.*)$", re.IGNORECASE)


def message_id(header: bytes) -> str | None:
    """
    The Message-ID field of a header block (unfolded, without comments or
    surrounding space), or C{None} when there is none.  Used only to
    recognise a message again, so both servers' copies go through this.
    """
    lines = header.split(b"\n")
    for i, line in enumerate(lines):
        line = line.rstrip(b"\r")
        if line == b"":
            break
        match = _FIELD.match(line)
        if match is None:
            continue
        value = match.group(1)
        for following in lines[i + 1:]:
            if following[:1] not in (b" ", b"\t"):
                break
            value += following.rstrip(b"\r")
        value = value.strip()
        angle = re.search(rb"<[^<>]*>", value)
        text = angle.group(0) if angle else value
        return text.decode("utf-8", "replace") or None
    return None


def quote(text: str) -> str:
    """An IMAP quoted string of 7-bit C{text} (no CR or LF)."""
    if any(c in text for c in "\r\n\0") or not text.isascii():
        raise WireError(f"cannot quote {text!r}")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
