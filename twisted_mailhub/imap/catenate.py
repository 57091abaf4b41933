"""
The octets an IMAP URL names (RFC 4469 section 3: "as if the literal
returned in a FETCH BODY response were put in place"), and the joining of
CATENATE parts into one message.

A URL that cannot be used -- bad syntax, a mailbox or message that is not
there, a UIDVALIDITY that does not match, a body part that does not exist,
another user's mail -- is L{BadUrl}, answered ``NO [BADURL url]`` (section
4.1); a message over the size limit is ``NO [TOOBIG]`` (section 4.2).
"""

from __future__ import annotations

from twisted_mailhub.errors import MailhubError
from twisted_mailhub.imap import url as imapurl
from twisted_mailhub.imap.commands import CatenateUrl
from twisted_mailhub.mime import sections


class BadUrl(Exception):
    """A URL that names nothing this session can read."""

    def __init__(self, url: bytes, reason: str) -> None:
        super().__init__(reason)
        self.url = url
        self.reason = reason


class TooBig(Exception):
    """The message being built went over C{limit} bytes."""

    def __init__(self, limit: int) -> None:
        super().__init__(limit)
        self.limit = limit


def badurl_code(url: bytes) -> str:
    """
    ``BADURL url-resp-text``: the URL as the client sent it (RFC 4469
    section 4.1), its own percent-escapes (RFC 5092) included.  Only what
    url-resp-text (section 5: any TEXT-CHAR but ``]``) and 7-bit response
    text cannot carry is percent-encoded: ``]``, controls and 8-bit octets,
    none of which a well-formed URL holds outside an IPv6 host.
    """
    out = []
    for byte in url:
        if 0x20 <= byte <= 0x7E and byte != 0x5D:
            out.append(chr(byte))
        else:
            out.append(f"%{byte:02X}")
    return "BADURL " + ("".join(out) or "%20")


async def read_part(store, url: imapurl.ImapUrl, raw: bytes, *, limit: int,
                    mailbox=None) -> bytes:
    """
    The octets that C{url} names in C{store} (the store of the URL's
    user): a message, or with ``;SECTION=`` a part as BODY.PEEK[section]
    gives it (no \\Seen is set), cut by ``;PARTIAL=``.  C{mailbox}, when
    given, is the mailbox to read instead of opening the URL's.  Raises
    L{BadUrl} (C{raw} is the URL as sent) or L{TooBig} when the data is
    over C{limit} bytes.
    """
    try:
        if mailbox is None:
            mailbox = await store.get_mailbox(url.mailbox, read_only=True)
        if url.uidvalidity is not None and url.uidvalidity != mailbox.uidvalidity:
            raise BadUrl(raw, "UIDVALIDITY of the URL does not match the mailbox")
        if not await mailbox.metadata([url.uid]):
            raise BadUrl(raw, "No message with the URL's UID")
        message = await mailbox.open_message(url.uid)
        section = url.section
        if section == sections.Section():
            offset, length, fields = 0, message.meta.size, None
            exclude = False
        else:
            structure = await message.structure()
            _check_section(structure, section, raw)
            plan = sections.resolve(structure, section)
            offset, length, fields, exclude = plan.offset, plan.length, plan.fields, plan.exclude
        if url.partial is not None and fields is None:
            # Read only what the partial range keeps.
            start, count = url.partial
            start = min(start, length)
            offset += start
            length = length - start if count is None else min(count, length - start)
        if length > limit:
            raise TooBig(limit)
        data = await message.read(offset, length) if length else b""
        if fields is not None:
            data = sections.filter_header(data, fields, exclude)
            if url.partial is not None:
                start, count = url.partial
                data = data[start:] if count is None else data[start:start + count]
        return data
    except MailhubError as e:
        # No such mailbox, not selectable, expunged meanwhile...
        raise BadUrl(raw, str(e)) from None


def _check_section(structure, section: sections.Section, raw: bytes) -> None:
    """RFC 4469 section 4.1: an "invalid body part" is BADURL, not empty data."""
    if not section.part:
        return
    part = sections.part_for(structure, section.part)
    if part is None:
        raise BadUrl(raw, "No such body part")
    if section.text in ("HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT"):
        if not (part.type == "message" and part.message is not None):
            raise BadUrl(raw, "Body part is not a message")


async def build(parts: tuple[bytes | CatenateUrl, ...], resolve, limit: int) -> bytes:
    """
    Join the CATENATE C{parts} in order: TEXT octets as they are, URL parts
    through the coroutine C{resolve(raw_url, room)}, given how many bytes
    may still be added.  Raises L{BadUrl} for the first URL that fails,
    L{TooBig} once the message would exceed C{limit}.
    """
    out = bytearray()
    for part in parts:
        room = limit - len(out)
        if isinstance(part, CatenateUrl):
            data = await resolve(part.url, room)
        else:
            data = part
        if len(data) > room:
            raise TooBig(limit)
        out += data
    return bytes(out)
