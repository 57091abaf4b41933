"""
Serialising IMAP data values (RFC 9051 section 4): the bytes the server
writes for strings, numbers, lists and NIL.

Everything here is pure: values in, ``bytes`` out.
"""

from __future__ import annotations

from typing import Iterable

# Characters allowed in a quoted string without escaping (RFC 9051 QUOTED-CHAR,
# less the two that need a backslash).
_QUOTED_SAFE = frozenset(range(0x20, 0x7F)) - {ord('"'), ord("\\")}
# atom-specials (RFC 3501 section 9) and 8-bit: an astring must be quoted.
_ATOM_SPECIALS = frozenset(b'(){ %*"\\]') | frozenset(range(0x00, 0x20)) | {0x7F}

NIL = b"NIL"

# The same sets as bytes, for bytes.translate(None, delete): what is left
# over is what does not belong (a C loop, not a Python one per byte).
_QUOTABLE = bytes(range(0x20, 0x7F))
_QUOTABLE_UTF8 = _QUOTABLE + bytes(range(0x80, 0x100))
_ATOM_CHARS = bytes(b for b in range(0x21, 0x7F) if b not in _ATOM_SPECIALS)


#: What a NUL is sent as inside a ``{n}`` literal.
NUL_SUBSTITUTE = b"\x80"


def without_nul(data: bytes) -> bytes:
    """
    C{data} fit for a ``{n}`` literal, which must not hold NUL (RFC 3501
    section 9: literal is CHAR8, any octet but NUL; only a BINARY response
    may use ``~{n}``, RFC 3516 section 4.3).  Each NUL becomes 0x80, as in
    Dovecot: one octet for one, so an announced length stays right and a
    streamed literal can be translated chunk by chunk.  The stored message
    is untouched; BINARY[] still gives the exact octets.
    """
    return data.replace(b"\0", NUL_SUBSTITUTE)


def literal(value: bytes) -> bytes:
    """``{n}\\r\\n`` followed by the bytes (a NUL sent as 0x80, see L{without_nul})."""
    return b"{%d}\r\n" % len(value) + without_nul(value)


def quoted_or_literal(value: bytes) -> bytes:
    """A quoted string when possible, else a literal (8-bit, CR, LF, long)."""
    if len(value) <= 1024 and not value.translate(None, _QUOTABLE):
        return b'"' + value.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
    return literal(value)


def string(value: bytes | str) -> bytes:
    """An IMAP ``string`` (quoted or literal)."""
    if isinstance(value, str):
        value = value.encode("utf-8")
    return quoted_or_literal(value)


def nstring(value: bytes | str | None) -> bytes:
    """An IMAP ``nstring``: NIL for None."""
    if value is None:
        return NIL
    return string(value)


def astring(value: bytes | str) -> bytes:
    """An atom when the value is a valid atom, else a string."""
    if isinstance(value, str):
        value = value.encode("utf-8")
    if value and not value.translate(None, _ATOM_CHARS):
        return value
    return quoted_or_literal(value)


def utf8_astring(value: str) -> bytes:
    """
    An astring that may hold UTF-8 (RFC 9051 QUOTED-CHAR has UTF8-2..4,
    as RFC 6855 section 3 has for UTF8=ACCEPT): quoted, not a literal,
    when 8-bit is all that keeps it from a quoted string.
    """
    data = value.encode("utf-8")
    if data and not data.translate(None, _ATOM_CHARS):
        return data
    if len(data) <= 1024 and not data.translate(None, _QUOTABLE_UTF8):
        return b'"' + data.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
    return literal(data)


def number(value: int) -> bytes:
    return b"%d" % value


def plist(items: Iterable[bytes]) -> bytes:
    """A parenthesised list of already-serialised items."""
    return b"(" + b" ".join(items) + b")"


# System flags first, in a fixed order, then \\Recent, then keywords.
_SYSTEM_ORDER = {f: i for i, f in enumerate(
    ("\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft", "\\Recent"))}


def flag_list(flags: Iterable[str], *, ordered: bool = False) -> bytes:
    """
    ``(\\Seen $Forwarded)``; flags are atoms.  Sent in a stable order unless
    C{ordered}, when the caller's order is kept.
    """
    if not ordered:
        flags = sorted(flags, key=_flag_order)
    return plist(f.encode("utf-8") for f in flags)


def _flag_order(flag: str) -> tuple[int, int, str]:
    if flag.startswith("\\"):
        return (0, _SYSTEM_ORDER.get(flag, len(_SYSTEM_ORDER)), flag)
    return (1, 0, flag)
