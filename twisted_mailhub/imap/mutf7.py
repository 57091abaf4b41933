"""
Modified UTF-7, the IMAP encoding of mailbox names (RFC 3501 section 5.1.3).

Printable US-ASCII stands for itself, except ``&`` which is written ``&-``.
Any other run of characters is written as ``&`` + the modified BASE64 of its
UTF-16BE form (``,`` in place of ``/``, no ``=`` padding) + ``-``.
"""

from __future__ import annotations

import binascii

_PRINTABLE = range(0x20, 0x7F)
_B64_CHARS = frozenset(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,"
)


def encode(name: str) -> bytes:
    """Encode the mailbox name C{name} in modified UTF-7."""
    if name.isascii() and name.isprintable() and "&" not in name:
        return name.encode("ascii")  # most names: the same octets
    out = bytearray()
    pending: list[str] = []

    def flush() -> None:
        if pending:
            utf16 = "".join(pending).encode("utf-16-be")
            b64 = binascii.b2a_base64(utf16, newline=False).rstrip(b"=")
            out.extend(b"&" + b64.replace(b"/", b",") + b"-")
            pending.clear()

    for ch in name:
        code = ord(ch)
        if code in _PRINTABLE:
            flush()
            out.extend(b"&-" if ch == "&" else bytes((code,)))
        else:
            pending.append(ch)
    flush()
    return bytes(out)


def decode(data: bytes) -> str:
    """
    Decode the modified UTF-7 mailbox name C{data}.

    Raise C{ValueError} for anything RFC 3501 section 5.1.3 does not allow:
    bytes outside printable US-ASCII, an unterminated or malformed shift
    sequence, BASE64 used for a character that can represent itself, a null
    shift (``-&``) between two encoded runs, or an unpaired surrogate.
    """
    out: list[str] = []
    i = 0
    n = len(data)
    previous_end = -1  # index just after the last encoded run's "-"
    while i < n:
        byte = data[i]
        if byte not in _PRINTABLE:
            raise ValueError(f"byte 0x{byte:02x} not allowed in modified UTF-7")
        if byte != 0x26:  # "&"
            out.append(chr(byte))
            i += 1
            continue
        end = data.find(b"-", i + 1)
        if end < 0:
            raise ValueError("unterminated modified BASE64 run")
        if end == i + 1:
            out.append("&")
            i = end + 1
            continue
        if previous_end == i:
            raise ValueError("null shift between modified BASE64 runs")
        out.append(_decode_run(data[i + 1:end]))
        i = previous_end = end + 1
    return "".join(out)


def _decode_run(b64: bytes) -> str:
    if not all(c in _B64_CHARS for c in b64):
        raise ValueError("invalid character in modified BASE64 run")
    # Each UTF-16 code unit is 16 bits, so the run has 8/3 characters per
    # unit; a length of 1, 4 or 7 (mod 8) cannot come from whole units.
    if len(b64) % 8 in (1, 4, 7):
        raise ValueError("truncated modified BASE64 run")
    padded = b64.replace(b",", b"/") + b"=" * (-len(b64) % 4)
    raw = binascii.a2b_base64(padded)
    if len(raw) % 2:
        raise ValueError("modified BASE64 run is not whole UTF-16 units")
    # Re-encoding must give back the same text, which rejects non-zero
    # padding bits.
    again = binascii.b2a_base64(raw, newline=False).rstrip(b"=")
    if again != b64.replace(b",", b"/"):
        raise ValueError("non-canonical modified BASE64 run")
    try:
        text = raw.decode("utf-16-be")
    except UnicodeDecodeError:
        raise ValueError("unpaired surrogate in modified BASE64 run") from None
    if any(ord(ch) in _PRINTABLE for ch in text):
        raise ValueError("printable US-ASCII encoded in modified BASE64")
    return text
