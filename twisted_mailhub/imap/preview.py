"""
PREVIEW (RFC 8970): a short plain-text extract of a message, for the line
under the subject in a client's message list.

The preview is made from the message's first text part (L{choose_part}:
text/plain preferred over text/html among alternatives, attachments and
attached messages left out), decoded (Content-Transfer-Encoding, then the
charset), HTML reduced to its text, white space collapsed, and cut to
L{PREVIEW_LENGTH} characters.  A message without such a part has the empty
preview (section 3.2: zero-length, not NIL).

Only the start of the part is read (L{READ_LIMIT}), so a preview costs one
small read whatever the size of the message.  The FETCH layer keeps the
result with the message's other immutable renderings (the index's memo and
an SQL store's summaries), so it is made once per message.
"""

from __future__ import annotations

from html.parser import HTMLParser

from twisted_mailhub.imap import wire
from twisted_mailhub.interfaces import IMessage
from twisted_mailhub.mime.headers import charset_decode
from twisted_mailhub.mime.sections import binary_decode
from twisted_mailhub.mime.structure import BodyPart, MessageStructure

__all__ = ["PREVIEW_LENGTH", "READ_LIMIT", "choose_part", "preview_text", "generate",
           "render"]

#: Section 3.3: the server SHOULD keep to 200 characters (and MUST NOT go
#: over 256).
PREVIEW_LENGTH = 200
#: Raw bytes of the chosen part read at most: text/plain, then text/html
#: (markup and style sheets often come before the first word of text).
READ_LIMIT = {"plain": 16 * 1024, "html": 128 * 1024}

# Characters of text kept while reading HTML: enough for the preview once
# white space is collapsed.
_HTML_TEXT_ENOUGH = 8 * PREVIEW_LENGTH
# Control characters other than white space: dropped.
_CONTROLS = dict.fromkeys([*range(0x00, 0x09), *range(0x0E, 0x1C), 0x7F], None)


def _is_attachment(part: BodyPart) -> bool:
    return part.disposition is not None and part.disposition[0].lower() == "attachment"


def choose_part(structure: MessageStructure) -> BodyPart | None:
    """
    The text part a preview is made from: the first text/plain or
    text/html body of the message in reading order, where of the
    alternatives of a multipart/alternative the plain one wins; None when
    there is none.
    """
    return _choose(structure.root)


def _choose(part: BodyPart) -> BodyPart | None:
    if part.children:
        if part.subtype == "alternative":
            found = [c for c in map(_choose, part.children) if c is not None]
            for candidate in found:
                if candidate.subtype == "plain":
                    return candidate
            return found[0] if found else None
        for child in part.children:
            chosen = _choose(child)
            if chosen is not None:
                return chosen
        return None
    if (part.message is None and part.type == "text" and part.subtype in READ_LIMIT
            and not _is_attachment(part)):
        return part
    return None


def preview_text(body: bytes, part: BodyPart) -> str:
    """
    The preview from C{body}, the start of C{part}'s raw body: decoded,
    markup removed for text/html, white space collapsed, at most
    L{PREVIEW_LENGTH} characters.
    """
    decoded = binary_decode(body, part.encoding)
    if decoded is None:
        # An unknown transfer encoding: nothing readable to show.
        return ""
    text = charset_decode(decoded, dict(part.params).get("charset", ""))
    if part.subtype == "html":
        text = _html_text(text)
    text = " ".join(text.translate(_CONTROLS).split())
    return text[:PREVIEW_LENGTH].rstrip()


async def generate(message: IMessage, structure: MessageStructure) -> str:
    """The preview of C{message}, whose parsed structure is C{structure}."""
    part = choose_part(structure)
    if part is None:
        return ""
    length = min(part.body_size, READ_LIMIT[part.subtype])
    body = await message.read(part.body_start, length) if length > 0 else b""
    return preview_text(body, part)


def render(text: str | None) -> bytes:
    """The value of the PREVIEW item as sent (section 6: an nstring)."""
    return wire.nstring(text)


# Elements whose content is not text a reader sees.
_HIDDEN = frozenset({"head", "title", "script", "style", "template", "noscript"})
# Elements that separate words: a space is put where they start and end.
_BREAKING = frozenset({
    "address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt", "footer",
    "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "img", "li", "main", "nav", "ol",
    "p", "pre", "section", "table", "td", "th", "tr", "ul",
})


class _TextOfHTML(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.pieces: list[str] = []
        self.size = 0
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs) -> None:
        if tag == "body":
            # The text starts here, even after a head left unclosed.
            self._hidden = 0
        elif tag in _HIDDEN:
            self._hidden += 1
        elif tag in _BREAKING:
            self.pieces.append(" ")

    def handle_startendtag(self, tag: str, attrs) -> None:
        if tag in _BREAKING:
            self.pieces.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN:
            self._hidden = max(0, self._hidden - 1)
        elif tag in _BREAKING:
            self.pieces.append(" ")

    def handle_data(self, data: str) -> None:
        if not self._hidden and self.size < _HTML_TEXT_ENOUGH:
            self.pieces.append(data)
            self.size += len(data.strip())


def _html_text(html: str) -> str:
    parser = _TextOfHTML()
    try:
        parser.feed(html)
        parser.close()
    except (AssertionError, ValueError):
        # Markup broken beyond what the parser recovers from: the text so far.
        pass
    return "".join(parser.pieces)
