"""
Header-field level parsing: splitting a header block into fields, MIME
parameters (RFC 2045 section 5.1 with RFC 2231 extensions), RFC 2047
encoded words, and RFC 5322 address lists for ENVELOPE.

Everything here is tolerant: malformed input yields a best-effort value,
never an exception.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re
from urllib.parse import unquote_to_bytes

from twisted_mailhub.mime.structure import Address

# A field line ("name:" value) with its folded continuation lines.  A name
# may be followed by whitespace before the colon (RFC 5322 section 4.5.3
# obsolete syntax).  Lines that are neither are skipped.
_FIELD_RE = re.compile(rb"^([^\s:][^:\r\n]*):([^\n]*(?:\n[ \t][^\n]*)*)", re.M)
_UNFOLD_RE = re.compile(rb"\r?\n(?=[ \t])")


def unfold(value: bytes) -> bytes:
    """Remove folding line breaks (RFC 5322 section 2.2.3) and trim."""
    return _UNFOLD_RE.sub(b"", value).strip(b" \t\r\n")


def split_fields(header: bytes) -> list[tuple[str, bytes]]:
    """
    The fields of a header block in order: (lower-cased name, unfolded raw
    value).  Lines that are not fields (no colon, a stray continuation) are
    ignored.
    """
    fields = []
    for m in _FIELD_RE.finditer(header):
        name = m.group(1).strip(b" \t").decode("latin-1").lower()
        fields.append((name, unfold(m.group(2))))
    return fields


def field_spans(header: bytes) -> list[tuple[str, int, int]]:
    """(lower-cased name, start, end) of each field including its folded
    lines and line ending, for header subsetting."""
    spans = []
    for m in _FIELD_RE.finditer(header):
        end = m.end()
        if end < len(header) and header[end : end + 1] == b"\n":
            end += 1
        name = m.group(1).strip(b" \t").decode("latin-1").lower()
        spans.append((name, m.start(), end))
    return spans


def to_text(raw: bytes) -> str:
    """8-bit header bytes as UTF-8, falling back to latin-1."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def charset_decode(raw: bytes, charset: str) -> str:
    """Decode with a declared charset; unknown or malformed charset names
    (a NUL byte, say, which the codec registry rejects with ValueError) fall
    back to UTF-8 then latin-1."""
    charset = charset.strip().lower()
    if charset in ("", "us-ascii", "ascii"):
        return to_text(raw)
    try:
        codecs.lookup(charset)
    except (LookupError, ValueError, TypeError):
        return to_text(raw)
    try:
        return raw.decode(charset, errors="replace")
    except Exception:  # some codecs reject errors= or raise oddly
        return raw.decode("latin-1")


# -- RFC 2047 encoded words ---------------------------------------------------

_EWORD_RE = re.compile(
    r"=\?([^?\s*]+)(?:\*[^?\s]*)?\?([bBqQ])\?([^?\s]*)\?="
)
# Whitespace between two adjacent encoded words is not displayed
# (RFC 2047 section 6.2).
_EWORD_GAP_RE = re.compile(r"(\?=)[ \t\r\n]+(?==\?[^?\s]+\?[bBqQ]\?)")


def _decode_eword(m: re.Match[str]) -> str:
    charset, enc, text = m.group(1), m.group(2).upper(), m.group(3)
    raw_text = text.encode("latin-1", errors="replace")
    try:
        if enc == "B":
            raw_text = raw_text + b"=" * (-len(raw_text) % 4)
            data = base64.b64decode(raw_text, validate=True)
        else:
            data = binascii.a2b_qp(raw_text.replace(b"_", b" "), header=True)
    except (binascii.Error, ValueError):
        return m.group(0)
    return charset_decode(data, charset)


def decode_words(value: str) -> str:
    """Decode the RFC 2047 encoded words in an already-unfolded value."""
    if "=?" not in value:
        return value
    value = _EWORD_GAP_RE.sub(r"\1", value)
    return _EWORD_RE.sub(_decode_eword, value)


def decode_header_value(raw: bytes) -> str:
    """
    A header value as text: unfolded, 8-bit bytes as UTF-8 (latin-1
    fallback), RFC 2047 encoded words decoded.
    """
    return decode_words(to_text(unfold(raw)))


# -- MIME parameters (RFC 2045 section 5.1, RFC 2231) --------------------------

_TOKEN_RE = re.compile(rb'[^\s()<>@,;:\\"/\[\]?=]+')
_QUOTED_RE = re.compile(rb'"((?:[^"\\]|\\.)*)"?', re.S)
_COMMENT_RE = re.compile(rb"\((?:[^()\\]|\\.)*\)")
_PARAM_NAME_RE = re.compile(r"^([^*]+)(?:\*(\d+))?(\*)?$")


def _comment_end(value: bytes, i: int) -> int:
    """The index just after the (possibly nested) comment opening at i."""
    n = len(value)
    depth = 0
    while i < n:
        c = value[i]
        if c == 0x5C:
            i += 2
            continue
        if c == 0x28:
            depth += 1
        elif c == 0x29:
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return n


def _skip_cfws(value: bytes, i: int) -> int:
    n = len(value)
    while i < n:
        c = value[i]
        if c in b" \t\r\n":
            i += 1
        elif c == 0x28:
            i = _comment_end(value, i)
        else:
            break
    return i


def _unquote(content: bytes) -> bytes:
    return re.sub(rb"\\(.)", rb"\1", content, flags=re.S)


def parse_params(value: bytes, start: int = 0) -> list[tuple[str, str]]:
    """
    Parse ``; name=value`` pairs from ``value[start:]``.  Names are lower
    case; RFC 2231 continuations and charset'lang'%XX values are decoded;
    quoted strings unquoted.  Order is that of first appearance.
    """
    raw: list[tuple[str, bytes]] = []
    i, n = start, len(value)
    while i < n:
        semi = value.find(b";", i)
        if semi < 0:
            break
        i = _skip_cfws(value, semi + 1)
        m = _TOKEN_RE.match(value, i)
        if not m:
            continue
        name = m.group(0).decode("latin-1").lower()
        i = _skip_cfws(value, m.end())
        if i >= n or value[i] != 0x3D:  # "="
            continue
        i = _skip_cfws(value, i + 1)
        if i < n and value[i] == 0x22:
            q = _QUOTED_RE.match(value, i)
            assert q is not None
            pvalue = _unquote(q.group(1))
            i = q.end()
        else:
            end = value.find(b";", i)
            end = n if end < 0 else end
            pvalue = _COMMENT_RE.sub(b"", value[i:end]).strip()
            i = end
        raw.append((name, pvalue))
    return _combine_2231(raw)


def _combine_2231(raw: list[tuple[str, bytes]]) -> list[tuple[str, str]]:
    order: list[str] = []
    plain: dict[str, str] = {}
    # name -> {section: (bytes, encoded)}
    ext: dict[str, dict[int, tuple[bytes, bool]]] = {}
    for name, pvalue in raw:
        m = _PARAM_NAME_RE.match(name)
        if m is None or (m.group(2) is None and m.group(3) is None):
            if name not in plain and name not in ext:
                order.append(name)
                plain[name] = to_text(pvalue)
            continue
        base = m.group(1)
        section = int(m.group(2)) if m.group(2) is not None else 0
        if base not in ext:
            if base not in plain:
                order.append(base)
            ext[base] = {}
        ext[base].setdefault(section, (pvalue, m.group(3) is not None))
    result = []
    for name in order:
        # An extended value wins over a plain one of the same name (senders
        # put both for old readers), unless its first section is missing.
        if name in ext and (0 in ext[name] or name not in plain):
            result.append((name, _join_sections(ext[name])))
        else:
            result.append((name, plain[name]))
    return result


def _join_sections(sections: dict[int, tuple[bytes, bool]]) -> str:
    # RFC 2231 section 3: sections are numbered from 0 without gaps; stop at
    # the first missing one.  Section 4: only the first encoded section
    # carries charset'language'.
    charset = ""
    data = b""
    k = 0
    while k in sections:
        pvalue, encoded = sections[k]
        if encoded:
            if k == 0:
                parts = pvalue.split(b"'", 2)
                if len(parts) == 3:
                    charset = parts[0].decode("latin-1")
                    pvalue = parts[2]
            data += unquote_to_bytes(pvalue)
        else:
            data += pvalue
        k += 1
    if charset:
        return charset_decode(data, charset)
    return to_text(data)


_MEDIA_RE = re.compile(rb"\s*([^\s/;()]+)\s*/\s*([^\s;()]+)")


def parse_content_type(value: bytes) -> tuple[str, str, list[tuple[str, str]]] | None:
    """(type, subtype, params) lower-cased, or None when syntactically invalid."""
    start = _skip_cfws(value, 0)
    m = _MEDIA_RE.match(value, start)
    if m is None or not _TOKEN_RE.fullmatch(m.group(1)) or not _TOKEN_RE.fullmatch(m.group(2)):
        return None
    return (
        m.group(1).decode("latin-1").lower(),
        m.group(2).decode("latin-1").lower(),
        parse_params(value, m.end()),
    )


def parse_disposition(value: bytes) -> tuple[str, list[tuple[str, str]]] | None:
    """RFC 2183 Content-Disposition: (lower-cased type, params)."""
    start = _skip_cfws(value, 0)
    m = _TOKEN_RE.match(value, start)
    if m is None:
        return None
    return m.group(0).decode("latin-1").lower(), parse_params(value, m.end())


def first_token(value: bytes) -> bytes:
    """The first token of a structured value, comments skipped."""
    m = _TOKEN_RE.match(value, _skip_cfws(value, 0))
    return m.group(0) if m else b""


def parse_language(value: bytes) -> list[str] | None:
    """RFC 3282 Content-Language: a list of tags, or None when empty."""
    tags = [t.strip().decode("latin-1") for t in _COMMENT_RE.sub(b"", value).split(b",")]
    tags = [t for t in tags if t]
    return tags or None


# -- RFC 5322 addresses -------------------------------------------------------

# Tokens: quoted string, comment (to be matched with nesting by hand),
# domain literal, a special, or an atom (8-bit allowed, RFC 6532).
_ADDR_TOKEN_RE = re.compile(
    rb'"(?:[^"\\]|\\.)*"?'
    rb"|\[(?:[^\]\\]|\\.)*\]?"
    rb"|[<>@,;:.]"
    rb'|[^\s()<>@,;:."\[\]]+',
    re.S,
)


def _tokenize(value: bytes) -> list[tuple[str, bytes]]:
    """(kind, raw) pairs; kind is "q" quoted string, "c" comment content,
    "l" domain literal, "a" atom, or the special character itself."""
    tokens: list[tuple[str, bytes]] = []
    i, n = 0, len(value)
    while i < n:
        c = value[i]
        if c in b" \t\r\n":
            i += 1
            continue
        if c == 0x28:
            j = _comment_end(value, i)
            content = value[i + 1 : j - 1] if value[j - 1 : j] == b")" else value[i + 1 : j]
            tokens.append(("c", _unquote(content).strip()))
            i = j
            continue
        if c == 0x29:  # stray ")"
            i += 1
            continue
        m = _ADDR_TOKEN_RE.match(value, i)
        if m is None:  # a lone "\\" or similar: treat as an atom character
            tokens.append(("a", value[i : i + 1]))
            i += 1
            continue
        tok = m.group(0)
        if c == 0x22:
            tokens.append(("q", tok))
        elif c == 0x5B:
            tokens.append(("l", tok))
        elif len(tok) == 1 and tok in b"<>@,;:.":
            tokens.append((tok.decode(), tok))
        else:
            tokens.append(("a", tok))
        i = m.end()
    return tokens


def _qs_content(raw: bytes) -> bytes:
    inner = raw[1:-1] if len(raw) >= 2 and raw.endswith(b'"') else raw[1:]
    return _unquote(inner)


def _phrase(words: list[tuple[str, bytes]]) -> bytes | None:
    """Display-name words joined by single spaces; quoted strings unquoted;
    an obsolete "." sticks to the word before it."""
    out: list[bytes] = []
    for kind, raw in words:
        if kind == ".":
            if out:
                out[-1] += b"."
            else:
                out.append(b".")
        elif kind == "q":
            out.append(_qs_content(raw))
        else:
            out.append(raw)
    return b" ".join(out) if out else None


def _raw_join(words: list[tuple[str, bytes]]) -> bytes:
    return b"".join(raw for kind, raw in words if kind != "c")


def _local_join(words: list[tuple[str, bytes]]) -> bytes:
    """A local-part as ENVELOPE gives it: quoted strings without their
    quotes and escapes (RFC 3501 section 7.4.2 addr-mailbox is the
    local-part's value, which the response quotes again as needed)."""
    return b"".join(_qs_content(raw) if kind == "q" else raw
                    for kind, raw in words if kind != "c")


GROUP_END: Address = (None, None, None, None)


class _AddressParser:
    def __init__(self, value: bytes) -> None:
        self.toks = _tokenize(value)
        self.i = 0
        self.out: list[Address] = []

    def peek(self) -> str | None:
        return self.toks[self.i][0] if self.i < len(self.toks) else None

    def parse(self) -> list[Address]:
        in_group = False
        while self.i < len(self.toks):
            kind = self.peek()
            if kind == ",":
                self.i += 1
                continue
            if kind == ";":
                self.i += 1
                if in_group:
                    self.out.append(GROUP_END)
                    in_group = False
                continue
            in_group = self._item(in_group)
        if in_group:
            self.out.append(GROUP_END)
        return self.out

    def _item(self, in_group: bool) -> bool:
        words: list[tuple[str, bytes]] = []
        comment: bytes | None = None
        while self.i < len(self.toks) and self.peek() not in ("<", ":", "@", ",", ";", ">"):
            tok = self.toks[self.i]
            if tok[0] == "c":
                comment = tok[1] or comment
            else:
                words.append(tok)
            self.i += 1
        kind = self.peek()
        if kind == ":" and not in_group:
            self.i += 1
            self.out.append((None, None, _phrase(words) or b"", None))
            return True
        if kind == ":":  # a stray colon inside a group: skip it
            self.i += 1
            return in_group
        if kind == ">":
            self.i += 1
            return in_group
        if kind == "<":
            self.i += 1
            adl, local, host, c2 = self._angle()
            name = _phrase(words)
            self._mailbox(name if name is not None else (c2 or comment), adl, local, host)
            return in_group
        if kind == "@":
            self.i += 1
            host, c2 = self._domain()
            self._mailbox(comment or c2, None, _local_join(words), host)
            return in_group
        if words:  # a local part without a domain
            self._mailbox(comment, None, _local_join(words), b"")
        return in_group

    def _domain(self) -> tuple[bytes, bytes | None]:
        parts: list[bytes] = []
        comment = None
        while self.i < len(self.toks) and self.peek() not in ("<", ">", ",", ";", ":", "@"):
            kind, raw = self.toks[self.i]
            if kind == "c":
                comment = raw or comment
            elif kind != "q":
                parts.append(raw)
            self.i += 1
        return b"".join(parts), comment

    def _angle(self) -> tuple[bytes | None, bytes, bytes, bytes | None]:
        # angle-addr = "<" [obs-route] addr-spec ">"; obs-route is
        # "@dom,@dom:" (RFC 5322 section 4.4), reported as the adl.
        adl = None
        start = self.i
        depth_end = self.i
        while depth_end < len(self.toks) and self.toks[depth_end][0] not in (">", "<"):
            depth_end += 1
        colon = next(
            (k for k in range(start, depth_end) if self.toks[k][0] == ":"), None
        )
        if colon is not None:
            adl = _raw_join(self.toks[start:colon]) or None
            self.i = colon + 1
        local: list[tuple[str, bytes]] = []
        comment = None
        while self.i < depth_end and self.peek() != "@":
            tok = self.toks[self.i]
            if tok[0] == "c":
                comment = tok[1] or comment
            else:
                local.append(tok)
            self.i += 1
        host = b""
        if self.peek() == "@":
            self.i += 1
            parts = []
            while self.i < depth_end:
                kind, raw = self.toks[self.i]
                if kind not in ("c", "q"):
                    parts.append(raw)
                self.i += 1
            host = b"".join(parts)
        self.i = depth_end
        if self.peek() == ">":
            self.i += 1
        return adl, _local_join(local), host, comment

    def _mailbox(self, name: bytes | None, adl: bytes | None, local: bytes, host: bytes) -> None:
        if not local and not host:
            return  # "<>" (null return path) or empty
        # A missing domain is sent as "" rather than NIL: NIL host means a
        # group marker in an ENVELOPE address (RFC 3501 section 7.4.2).
        self.out.append((name, adl, local, host))


def parse_addresses(value: bytes) -> list[Address] | None:
    """
    An RFC 5322 address-list as ENVELOPE addresses (name, adl, mailbox,
    host), with group start ``(NIL NIL name NIL)`` and end markers.  None
    when the field holds no address.
    """
    try:
        result = _AddressParser(value).parse()
    except Exception:  # defensive: a header must never break a message
        return None
    return result or None
