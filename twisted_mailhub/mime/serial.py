"""
L{MessageStructure} to and from JSON-serialisable dicts, for backends that
store the parsed structure next to the message.

Bytes are stored as latin-1 strings (a lossless byte-to-code-point map).
Fields holding their default value are left out to keep rows small; the
round trip C{structure_from_json(structure_to_json(s)) == s} is exact.
"""

from __future__ import annotations

from typing import Any

from twisted_mailhub.mime.structure import Address, BodyPart, Envelope, MessageStructure

FORMAT = 1
"""Stored as ``"v"``; bump when the layout changes."""


def _b(value: bytes | None) -> str | None:
    return None if value is None else value.decode("latin-1")


def _unb(value: str | None) -> bytes | None:
    return None if value is None else value.encode("latin-1")


def _addrs(addrs: list[Address] | None) -> list[list[str | None]] | None:
    if addrs is None:
        return None
    return [[_b(v) for v in a] for a in addrs]


def _unaddrs(data: list[list[str | None]] | None) -> list[Address] | None:
    if data is None:
        return None
    return [(_unb(a[0]), _unb(a[1]), _unb(a[2]), _unb(a[3])) for a in data]


def _envelope_to(env: Envelope) -> dict[str, Any]:
    return {
        "date": _b(env.date),
        "subject": _b(env.subject),
        "from": _addrs(env.from_),
        "sender": _addrs(env.sender),
        "reply_to": _addrs(env.reply_to),
        "to": _addrs(env.to),
        "cc": _addrs(env.cc),
        "bcc": _addrs(env.bcc),
        "in_reply_to": _b(env.in_reply_to),
        "message_id": _b(env.message_id),
    }


def _envelope_from(d: dict[str, Any]) -> Envelope:
    return Envelope(
        date=_unb(d["date"]),
        subject=_unb(d["subject"]),
        from_=_unaddrs(d["from"]),
        sender=_unaddrs(d["sender"]),
        reply_to=_unaddrs(d["reply_to"]),
        to=_unaddrs(d["to"]),
        cc=_unaddrs(d["cc"]),
        bcc=_unaddrs(d["bcc"]),
        in_reply_to=_unb(d["in_reply_to"]),
        message_id=_unb(d["message_id"]),
    )


_BYTES_FIELDS = ("id", "description", "md5", "location")


def _part_to(part: BodyPart) -> dict[str, Any]:
    d: dict[str, Any] = {
        "off": [part.header_start, part.body_start, part.end],
        "type": [part.type, part.subtype],
    }
    if part.params:
        d["params"] = [list(p) for p in part.params]
    for name in _BYTES_FIELDS:
        value = getattr(part, name)
        if value is not None:
            d[name] = _b(value)
    if part.encoding != "7BIT":
        d["encoding"] = part.encoding
    if part.disposition is not None:
        d["disposition"] = [part.disposition[0], [list(p) for p in part.disposition[1]]]
    if part.language is not None:
        d["language"] = list(part.language)
    if part.lines:
        d["lines"] = part.lines
    if part.children:
        d["children"] = [_part_to(c) for c in part.children]
    if part.message is not None:
        d["message"] = _message_to(part.message)
    return d


def _part_from(d: dict[str, Any]) -> BodyPart:
    header_start, body_start, end = d["off"]
    part = BodyPart(header_start, body_start, end, d["type"][0], d["type"][1])
    part.params = [(k, v) for k, v in d.get("params", ())]
    for name in _BYTES_FIELDS:
        if name in d:
            setattr(part, name, _unb(d[name]))
    part.encoding = d.get("encoding", "7BIT")
    if "disposition" in d:
        dtype, dparams = d["disposition"]
        part.disposition = (dtype, [(k, v) for k, v in dparams])
    if "language" in d:
        part.language = list(d["language"])
    part.lines = d.get("lines", 0)
    part.children = [_part_from(c) for c in d.get("children", ())]
    if "message" in d:
        part.message = _message_from(d["message"])
    return part


def _message_to(s: MessageStructure) -> dict[str, Any]:
    return {
        "root": _part_to(s.root),
        "envelope": _envelope_to(s.envelope),
        "headers": {k: list(v) for k, v in s.headers.items()},
        "size": s.size,
    }


def _message_from(d: dict[str, Any]) -> MessageStructure:
    return MessageStructure(
        root=_part_from(d["root"]),
        envelope=_envelope_from(d["envelope"]),
        headers={k: list(v) for k, v in d["headers"].items()},
        size=d["size"],
    )


def structure_to_json(s: MessageStructure) -> dict[str, Any]:
    """A dict of JSON types (str, int, list, dict, None) describing ``s``."""
    d = _message_to(s)
    d["v"] = FORMAT
    return d


def structure_from_json(d: dict[str, Any]) -> MessageStructure:
    """The L{MessageStructure} that L{structure_to_json} described."""
    return _message_from(d)
