"""
The ENVELOPE, BODY and BODYSTRUCTURE FETCH values (RFC 3501 section 7.4.2,
RFC 9051 section 7.5.2 and the ``body`` rules of section 9), serialised
from a parsed L{MessageStructure}.

Media type and subtype, parameter names and the disposition type are sent
in upper case, as in the RFC 3501 examples (``("TEXT" "PLAIN" ("CHARSET"
"US-ASCII") ...)``); parameter values and header-derived strings are sent
as found in the message.  8-bit values become literals.
"""

from __future__ import annotations

from twisted_mailhub.imap.wire import NIL, nstring, number, plist, string
from twisted_mailhub.mime.structure import Address, BodyPart, Envelope

_MESSAGE_SUBTYPES = ("rfc822", "global")


def _address(addr: Address) -> bytes:
    return plist(nstring(v) for v in addr)


def _address_list(addrs: list[Address] | None) -> bytes:
    if not addrs:
        return NIL
    # address lists have no separator between addresses (RFC 3501 section 9:
    # "(" 1*address ")").
    return b"(" + b"".join(_address(a) for a in addrs) + b")"


def envelope(env: Envelope) -> bytes:
    """The parenthesised ENVELOPE value."""
    return plist(
        [
            nstring(env.date),
            nstring(env.subject),
            _address_list(env.from_),
            _address_list(env.sender),
            _address_list(env.reply_to),
            _address_list(env.to),
            _address_list(env.cc),
            _address_list(env.bcc),
            nstring(env.in_reply_to),
            nstring(env.message_id),
        ]
    )


def _params(params: list[tuple[str, str]]) -> bytes:
    # body-fld-param = "(" string SP string *(SP string SP string) ")" / nil
    if not params:
        return NIL
    items = []
    for name, value in params:
        items.append(string(name.upper()))
        items.append(string(value))
    return plist(items)


def _disposition(disp: tuple[str, list[tuple[str, str]]] | None) -> bytes:
    if disp is None:
        return NIL
    return plist([string(disp[0].upper()), _params(disp[1])])


def _language(lang: list[str] | None) -> bytes:
    if not lang:
        return NIL
    return plist(string(tag) for tag in lang)


def bodystructure(part: BodyPart, extensible: bool) -> bytes:
    """
    The BODYSTRUCTURE value of ``part`` when ``extensible``, else the BODY
    value (the same without extension data).
    """
    if part.type == "multipart" and part.children:
        # body-type-mpart = 1*body SP media-subtype [SP body-ext-mpart]
        out = b"(" + b"".join(bodystructure(c, extensible) for c in part.children)
        out += b" " + string(part.subtype.upper())
        if extensible:
            out += b" " + b" ".join(
                [
                    _params(part.params),
                    _disposition(part.disposition),
                    _language(part.language),
                    nstring(part.location),
                ]
            )
        return out + b")"

    # body-fields = body-fld-param SP body-fld-id SP body-fld-desc SP
    #               body-fld-enc SP body-fld-octets
    items = [
        string(part.type.upper()),
        string(part.subtype.upper()),
        _params(part.params),
        nstring(part.id),
        nstring(part.description),
        string(part.encoding),
        number(part.body_size),
    ]
    if part.type == "message" and part.subtype in _MESSAGE_SUBTYPES and part.message:
        # body-type-msg: ... SP envelope SP body SP body-fld-lines
        items.append(envelope(part.message.envelope))
        items.append(bodystructure(part.message.root, extensible))
        items.append(number(part.lines))
    elif part.type == "text":
        items.append(number(part.lines))
    if extensible:
        # body-ext-1part = body-fld-md5 SP body-fld-dsp SP body-fld-lang SP
        #                  body-fld-loc
        items += [
            nstring(part.md5),
            _disposition(part.disposition),
            _language(part.language),
            nstring(part.location),
        ]
    return plist(items)
