"""
Assembling FETCH responses (RFC 3501 section 6.4.5 / 7.4.2, RFC 9051 6.4.5
/ 7.5.2) from a message's metadata, parsed structure and byte ranges.

L{render} returns the pieces of one ``* n FETCH (...)`` response: ``bytes``
and, for large body sections, L{Stream} pieces that the protocol copies from
the store in chunks with flow control, so a 50 MB message is never held in
memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from operator import attrgetter
from typing import Callable, Iterable, Protocol, Sequence

from twisted_mailhub.imap import objectid, responses, wire
from twisted_mailhub.imap.commands import FetchAttr
from twisted_mailhub.mime.sections import Section
from twisted_mailhub.interfaces import IMessage
from twisted_mailhub.model import MessageMeta

# Sections at least this big are streamed rather than read whole.
STREAM_THRESHOLD = 256 * 1024
CHUNK_SIZE = 256 * 1024

_SEEN_SETTING = {"RFC822", "RFC822.TEXT"}


class UnknownTransferEncoding(Exception):
    """BINARY[] of a part whose Content-Transfer-Encoding we cannot decode."""


@dataclass(frozen=True, slots=True)
class Stream:
    """``length`` bytes of C{message} from C{offset}, sent as they are read."""

    message: IMessage
    offset: int
    length: int


Piece = bytes | Stream


_META_ONLY = ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "UID", "MODSEQ",
              "EMAILID", "THREADID", "SAVEDATE")


def needs_message(attrs: Iterable[FetchAttr]) -> bool:
    """Whether C{attrs} need the message itself, not only its metadata."""
    # Asked once or twice per command, of the few spellings clients use.
    return _needs_message(tuple(attrs))


@lru_cache(maxsize=256)
def _needs_message(attrs: tuple[FetchAttr, ...]) -> bool:
    return any(a.name not in _META_ONLY for a in attrs)


def needs_structure(attrs: Iterable[FetchAttr]) -> bool:
    """Whether C{attrs} need the parsed structure (a whole-message read does not)."""
    # Asked once or twice per command, of the few spellings clients use.
    return _needs_structure(tuple(attrs))


@lru_cache(maxsize=256)
def _needs_structure(attrs: tuple[FetchAttr, ...]) -> bool:
    for a in attrs:
        if a.name in _META_ONLY or a.name == "RFC822":
            continue
        if a.name == "BODY[]" and a.section == Section():
            continue
        return True
    return False


def sets_seen(attrs: Iterable[FetchAttr]) -> bool:
    """Whether fetching C{attrs} implicitly sets \\Seen (RFC 3501 6.4.5)."""
    # Asked once or twice per command, of the few spellings clients use.
    return _sets_seen(tuple(attrs))


@lru_cache(maxsize=256)
def _sets_seen(attrs: tuple[FetchAttr, ...]) -> bool:
    for a in attrs:
        if a.name in _SEEN_SETTING:
            return True
        if a.name in ("BODY[]", "BINARY[]") and not a.peek:
            return True
    return False


#: A message up to this size is read whole, in one round trip, by a FETCH
#: of its content alone (L{whole_content}), and sent in one write; larger
#: ones are streamed (L{STREAM_THRESHOLD}).
WHOLE_LIMIT = 4 * CHUNK_SIZE


@dataclass(frozen=True, slots=True)
class Whole:
    """
    A FETCH of the whole raw message and nothing else: C{BODY[]},
    C{BODY.PEEK[]} (maybe partial) or C{RFC822}.  C{label} is the item's
    name as the response gives it, C{seen} whether it sets \\Seen.
    """

    label: bytes
    partial: tuple[int, int] | None
    seen: bool


def whole_content(attrs: Sequence[FetchAttr]) -> Whole | None:
    """The L{Whole} that C{attrs} ask for, or None when they ask anything else."""
    # Asked once per command, of the few spellings clients use.
    return _whole_content(tuple(attrs))


@lru_cache(maxsize=256)
def _whole_content(attrs: tuple[FetchAttr, ...]) -> Whole | None:
    if len(attrs) != 1:
        return None
    attr = attrs[0]
    if attr.name == "RFC822":
        return Whole(b"RFC822", None, True)
    if attr.name != "BODY[]" or attr.section != Section():
        return None
    label = b"BODY[]"
    if attr.partial is not None:
        label += b"<%d>" % attr.partial[0]
    return Whole(label, attr.partial, not attr.peek)


def render_whole(seq: int, meta: MessageMeta, content: bytes, whole: Whole, *,
                 uid: bool, modseq: bool, verb: bytes = b"FETCH") -> bytes:
    """
    The FETCH response that L{render} gives for the L{Whole} item of a
    message whose content is C{content}, without FLAGS (the caller makes
    sure \\Seen is not newly set), in one piece.
    """
    head = (b"* %d %s (UID %d " % (seq, verb, meta.uid) if uid
            else b"* %d %s (" % (seq, verb))
    tail = b" MODSEQ (%d))\r\n" % meta.modseq if modseq else b")\r\n"
    partial = whole.partial
    if partial is not None:
        origin, count = partial
        if origin >= len(content):
            return head + whole.label + b' ""' + tail
        content = content[origin:origin + count]
    return b"".join((head, whole.label, b" {%d}\r\n" % len(content),
                     wire.without_nul(content), tail))


def section_spec(section: Section) -> bytes:
    """The section text as echoed in the response, e.g. ``1.2.HEADER.FIELDS (FROM)``."""
    parts = [str(n) for n in section.part]
    if section.text:
        parts.append(section.text)
    spec = ".".join(parts).encode("ascii")
    if section.text in ("HEADER.FIELDS", "HEADER.FIELDS.NOT"):
        spec += b" " + wire.plist(wire.astring(f) for f in section.fields)
    return spec


async def render(
    seq: int,
    meta: MessageMeta,
    message: IMessage | None,
    attrs: Sequence[FetchAttr],
    *,
    uid: bool,
    recent: bool,
    modseq: bool,
    memo: Memo | None = None,
    verb: bytes = b"FETCH",
) -> list[Piece]:
    """
    The pieces of the FETCH response for one message.  C{uid} adds the UID
    item (UID FETCH), C{modseq} the MODSEQ item (CONDSTORE), C{recent} adds
    \\Recent to FLAGS.  C{message} may be None when only metadata is asked.
    C{verb} is ``UIDFETCH`` for the response of RFC 9586 (UIDONLY), whose
    C{seq} is the UID.
    What is worth keeping of the message (see L{render_memoised}) is kept
    in C{memo}.
    """
    items: list[list[Piece]] = []
    names = {a.name for a in attrs}
    if uid and "UID" not in names:
        items.append([b"UID %d" % meta.uid])
    structure = None
    if message is not None and needs_structure(attrs):
        structure = await message.structure()
    first = len(items)
    for attr in attrs:
        if attr.name == "PREVIEW" and attr.lazy:
            items.append([_lazy_preview(memo, meta.uid)])
            continue
        items.append(await _item(attr, meta, message, structure, recent))
    if memo is not None and structure is not None:
        await _remember(memo, meta.uid, attrs, items[first:], message, structure)
    if modseq and "MODSEQ" not in names:
        items.append([b"MODSEQ (%d)" % meta.modseq])
    pieces: list[Piece] = [b"* %d %s (" % (seq, verb)]
    for i, item in enumerate(items):
        if i:
            pieces.append(b" ")
        pieces.extend(item)
    pieces.append(b")\r\n")
    return _coalesce(pieces)


def flags_item(meta: MessageMeta, recent: bool) -> bytes:
    return _flags_item(meta.flags, recent)


@lru_cache(maxsize=1024)
def _flags_item(flags: frozenset[str], recent: bool) -> bytes:
    # Most messages of a mailbox share a few flag sets: render each once.
    if recent:
        flags = flags | {"\\Recent"}
    return b"FLAGS " + wire.flag_list(flags)


class Memo(Protocol):
    """Where rendered parts of a message are kept (a L{MailboxIndex})."""

    def memo(self, uid: int, name: str) -> bytes | None: ...

    def remember(self, uid: int, name: str, value: bytes, *, keep: bool = False) -> None: ...


# What is kept per message: the items as rendered, and the raw top-level
# header (what BODY[HEADER], RFC822.HEADER and HEADER.FIELDS are cut from).
_MEMO_ITEMS = {"ENVELOPE": b"ENVELOPE ", "BODYSTRUCTURE": b"BODYSTRUCTURE ", "BODY": b"BODY ",
               "PREVIEW": b"PREVIEW "}
_HEADER_TEXTS = ("HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT")
#: A top-level header larger than this is not kept.
MAX_MEMO_HEADER = 64 * 1024


def _memo_name(attr: FetchAttr) -> str | None:
    if attr.name in _MEMO_ITEMS:
        return attr.name
    if attr.name == "RFC822.HEADER":
        return "header"
    if (attr.name == "BODY[]" and not attr.section.part
            and attr.section.text in _HEADER_TEXTS):
        return "header"
    return None


def kept_names(attrs: Sequence[FetchAttr]) -> list[str]:
    """The memo names of C{attrs} that a store may keep (see L{Memo.remember})."""
    return sorted({a.name for a in attrs if a.name in _MEMO_ITEMS})


def wants_header(attrs: Sequence[FetchAttr]) -> bool:
    """Whether some of C{attrs} are cut from the raw top-level header (the C{header} memo)."""
    return any(_memo_name(a) == "header" for a in attrs)


def can_memoise(attrs: Sequence[FetchAttr]) -> bool:
    """Whether L{render_memoised} may answer C{attrs} (given the values)."""
    # Asked once or twice per command, of the few spellings clients use.
    return _can_memoise(tuple(attrs))


@lru_cache(maxsize=256)
def _can_memoise(attrs: tuple[FetchAttr, ...]) -> bool:
    return all(a.name in _META_ONLY or _memo_name(a) is not None for a in attrs)


def render_memoised(seq: int, meta: MessageMeta, attrs: Sequence[FetchAttr], memo: Memo, *,
                    uid: bool, recent: bool, modseq: bool,
                    verb: bytes = b"FETCH") -> bytes | None:
    """
    The FETCH response for one message from metadata and the values kept in
    C{memo} by an earlier L{render}, without touching the message; C{None}
    when something is not kept.  Setting \\Seen for BODY[HEADER] is the
    caller's part, as for L{render}.
    """
    from twisted_mailhub.mime import sections

    items = []
    if uid and not any(a.name == "UID" for a in attrs):
        items.append(b"UID %d" % meta.uid)
    for attr in attrs:
        name = _memo_name(attr)
        if name is None:
            items.append(_meta_item(attr.name, meta, recent))
            continue
        value = memo.memo(meta.uid, name)
        if value is None:
            if attr.lazy:
                # RFC 8970 section 4.1: not at hand, so NIL.
                items.append(b"PREVIEW NIL")
                continue
            return None
        if name != "header":
            items.append(_MEMO_ITEMS[name] + value)
            continue
        if attr.name == "RFC822.HEADER":
            items.append(b"RFC822.HEADER " + wire.literal(value))
            continue
        if attr.section.text != "HEADER":
            value = sections.filter_header(value, tuple(f.lower() for f in attr.section.fields),
                                           attr.section.text == "HEADER.FIELDS.NOT")
        label = b"BODY[" + section_spec(attr.section) + b"]"
        if attr.partial is not None:
            label += b"<%d>" % attr.partial[0]
        items.append(label + b" " + _partial_literal(value, attr.partial))
    if modseq and not any(a.name == "MODSEQ" for a in attrs):
        items.append(b"MODSEQ (%d)" % meta.modseq)
    return b"* %d %s (%s)\r\n" % (seq, verb, b" ".join(items))


async def _remember(memo: Memo, uid: int, attrs: Sequence[FetchAttr], items: list[list[Piece]],
                    message: IMessage, structure) -> None:
    from twisted_mailhub.mime import sections

    for attr, item in zip(attrs, items):
        name = _memo_name(attr)
        if attr.lazy:
            continue
        if name in _MEMO_ITEMS and len(item) == 1 and isinstance(item[0], bytes):
            prefix = _MEMO_ITEMS[name]
            # The rendered items are worth keeping in the store too.
            memo.remember(uid, name, item[0][len(prefix):], keep=True)
        elif name == "header" and memo.memo(uid, "header") is None:
            plan = sections.resolve(structure, Section(text="HEADER"))
            if plan.length <= MAX_MEMO_HEADER:
                memo.remember(uid, "header",
                              await message.read(plan.offset, plan.length) if plan.length else b"")


def _lazy_preview(memo: Memo | None, uid: int) -> bytes:
    """
    PREVIEW (LAZY), RFC 8970 section 4.1: the preview if it is kept, else
    NIL rather than the delay of making it.
    """
    value = memo.memo(uid, "PREVIEW") if memo is not None else None
    return b"PREVIEW " + (value if value is not None else wire.NIL)


def _meta_item(name: str, meta: MessageMeta, recent: bool) -> bytes:
    if name == "FLAGS":
        return _flags_item(meta.flags, recent)
    if name == "UID":
        return b"UID %d" % meta.uid
    if name == "INTERNALDATE":
        return b"INTERNALDATE " + responses.internaldate(meta.internaldate)
    if name == "RFC822.SIZE":
        return b"RFC822.SIZE %d" % meta.size
    if name == "MODSEQ":
        return b"MODSEQ (%d)" % meta.modseq
    return _object_item(name, meta)


def _object_item(name: str, meta: MessageMeta) -> bytes:
    if name == "EMAILID":
        return b"EMAILID (" + objectid.email_id(meta).encode("ascii") + b")"
    if name == "THREADID":
        # RFC 8474 section 5.2: THREADID is optional, and a server that
        # does not compute threads answers NIL to every FETCH of it (and
        # SEARCH THREADID matches nothing).  This server does not: a
        # THREADID may never change once reported, and the stores do not
        # keep the References/In-Reply-To links a stable answer across
        # mailboxes would need, so NIL is the honest one.
        return b"THREADID NIL"
    if name == "SAVEDATE":
        # RFC 8514 section 4.2: NIL only where the store cannot keep it.
        if meta.saved is None:
            return b"SAVEDATE NIL"
        return b"SAVEDATE " + responses.internaldate(meta.saved)
    raise ValueError(f"not a metadata item: {name}")


def is_metadata_only(attrs: Sequence[FetchAttr]) -> bool:
    """Whether L{render_meta} can answer C{attrs}."""
    return not needs_message(attrs)


def render_meta(seq: int, meta: MessageMeta, attrs: Sequence[FetchAttr], *,
                uid: bool, recent: bool, modseq: bool, verb: bytes = b"FETCH") -> bytes:
    """
    The whole FETCH response for one message when only metadata is asked
    (see L{is_metadata_only}): the same bytes as L{render}, without awaiting
    anything, for the FETCH 1:* (UID FLAGS) that clients send on every
    open.
    """
    items = []
    if uid and not any(a.name == "UID" for a in attrs):
        items.append(b"UID %d" % meta.uid)
    for attr in attrs:
        items.append(_meta_item(attr.name, meta, recent))
    if modseq and not any(a.name == "MODSEQ" for a in attrs):
        items.append(b"MODSEQ (%d)" % meta.modseq)
    return b"* %d %s (%s)\r\n" % (seq, verb, b" ".join(items))


def meta_renderer(attrs: Sequence[FetchAttr], *, uid: bool, modseq: bool,
                  verb: bytes = b"FETCH") -> Callable[[int, MessageMeta, bool], bytes]:
    """
    L{render_meta} for C{attrs}, made once for many messages: a function
    of C{(seq, meta, recent)} giving the same bytes.  The common lists
    (UID, FLAGS, MODSEQ, RFC822.SIZE, in any order) become one format of a
    template a message: rendering is most of the cost of FETCH 1:* (UID
    FLAGS), which clients send at every open.
    """
    names = [a.name for a in attrs]
    if uid and "UID" not in names:
        names.insert(0, "UID")
    if modseq and "MODSEQ" not in names:
        names.append("MODSEQ")
    if not set(names) <= _FAST_ITEMS.keys() or len(set(names)) != len(names):
        def general(seq: int, meta: MessageMeta, recent: bool) -> bytes:
            return render_meta(seq, meta, attrs, uid=uid, recent=recent, modseq=modseq,
                               verb=verb)
        return general
    template = ("* %d " + verb.decode("ascii") + " ("
                + " ".join(_FAST_ITEMS[n][0] for n in names) + ")\r\n").encode("ascii")
    fields = [_FAST_ITEMS[n][1] for n in names]
    if len(fields) == 1:
        one = attrgetter(fields[0])

        def get(meta: MessageMeta) -> tuple:
            return (one(meta),)
    else:
        get = attrgetter(*fields)
    if "FLAGS" not in names:
        def without_flags(seq: int, meta: MessageMeta, recent: bool) -> bytes:
            return template % (seq, *get(meta))
        return without_flags
    at = names.index("FLAGS")
    # Rendered flag lists of this command, by (interned) flag set.
    rendered: tuple[dict, dict] = ({}, {})

    def fast(seq: int, meta: MessageMeta, recent: bool) -> bytes:
        values = get(meta)
        flags = values[at]
        item = rendered[recent].get(flags)
        if item is None:
            item = rendered[recent][flags] = _flags_item(flags, recent)
        return template % (seq, *values[:at], item, *values[at + 1:])
    return fast


# The items meta_renderer formats directly: their format and the meta field.
_FAST_ITEMS = {"UID": ("UID %d", "uid"), "FLAGS": ("%s", "flags"),
               "MODSEQ": ("MODSEQ (%d)", "modseq"), "RFC822.SIZE": ("RFC822.SIZE %d", "size")}


async def _item(attr, meta, message, structure, recent) -> list[Piece]:
    name = attr.name
    if name == "FLAGS":
        return [flags_item(meta, recent)]
    if name == "UID":
        return [b"UID %d" % meta.uid]
    if name == "INTERNALDATE":
        return [b"INTERNALDATE " + responses.internaldate(meta.internaldate)]
    if name == "RFC822.SIZE":
        return [b"RFC822.SIZE %d" % meta.size]
    if name == "MODSEQ":
        return [b"MODSEQ (%d)" % meta.modseq]
    if name in ("EMAILID", "THREADID", "SAVEDATE"):
        return [_object_item(name, meta)]
    from twisted_mailhub.imap import summaries

    if name in summaries.ITEMS:
        # Rendered as a store renders them at APPEND (imap.summaries).
        return [_MEMO_ITEMS[name] + summaries.render_item(name, structure)]
    if name == "PREVIEW":
        from twisted_mailhub.imap import preview

        return [b"PREVIEW " + preview.render(await preview.generate(message, structure))]
    if name == "RFC822":
        return await _whole_item(b"RFC822", message, meta, None)
    if name == "RFC822.HEADER":
        return await _section_item(b"RFC822.HEADER", message, structure, Section(text="HEADER"), None)
    if name == "RFC822.TEXT":
        return await _section_item(b"RFC822.TEXT", message, structure, Section(text="TEXT"), None)
    if name == "BODY[]":
        label = b"BODY[" + section_spec(attr.section) + b"]"
        if attr.partial is not None:
            label += b"<%d>" % attr.partial[0]
        if attr.section == Section():
            return await _whole_item(label, message, meta, attr.partial)
        return await _section_item(label, message, structure, attr.section, attr.partial)
    if name in ("BINARY[]", "BINARY.SIZE"):
        data = await _binary(message, structure, attr.section)
        spec = ".".join(str(n) for n in attr.section.part).encode("ascii")
        if name == "BINARY.SIZE":
            return [b"BINARY.SIZE[%s] %d" % (spec, len(data))]
        label = b"BINARY[" + spec + b"]"
        if attr.partial is not None:
            origin, count = attr.partial
            label += b"<%d>" % origin
            data = data[origin:origin + count]
        if b"\x00" in data:
            return [label + b" ~{%d}\r\n" % len(data), data]
        return [label + b" " + wire.literal(data)]
    raise ValueError(f"unsupported FETCH item {name}")


async def _section_item(label: bytes, message, structure, section: Section, partial) -> list[Piece]:
    from twisted_mailhub.mime import sections

    plan = sections.resolve(structure, section)
    if plan.fields is not None:
        header = await message.read(plan.offset, plan.length) if plan.length else b""
        data = sections.filter_header(header, plan.fields, plan.exclude)
        return [label + b" " + _partial_literal(data, partial)]
    return await _range_item(label, message, plan.offset, plan.length, partial)


async def _whole_item(label: bytes, message, meta: MessageMeta, partial) -> list[Piece]:
    """BODY[] and RFC822: the whole message, no structure needed."""
    return await _range_item(label, message, 0, meta.size, partial)


async def _range_item(label: bytes, message, offset: int, length: int, partial) -> list[Piece]:
    if partial is not None:
        origin, count = partial
        if origin >= length:
            return [label + b' ""']
        offset += origin
        length = min(count, length - origin)
    if length >= STREAM_THRESHOLD:
        return [label + b" {%d}\r\n" % length, Stream(message, offset, length)]
    data = await message.read(offset, length) if length else b""
    return [label + b" " + wire.literal(data)]


def _partial_literal(data: bytes, partial) -> bytes:
    if partial is not None:
        origin, count = partial
        if origin >= len(data):
            return b'""'
        data = data[origin:origin + count]
    return wire.literal(data)


async def _binary(message, structure, section: Section) -> bytes:
    from twisted_mailhub.mime import sections

    plan = sections.resolve(structure, section)
    raw = await message.read(plan.offset, plan.length) if plan.length else b""
    part = sections.part_for(structure, section.part) if section.part else structure.root
    if part is None or part.type == "multipart" or part.message is not None:
        return raw
    decoded = sections.binary_decode(raw, part.encoding)
    if decoded is None:
        raise UnknownTransferEncoding(part.encoding)
    return decoded


def _coalesce(pieces: list[Piece]) -> list[Piece]:
    # Runs of bytes joined once: adding them one by one copied a message's
    # literal once per piece after it.
    out: list[Piece] = []
    run: list[bytes] = []
    for p in pieces:
        if isinstance(p, bytes):
            run.append(p)
            continue
        if run:
            out.append(b"".join(run))
            run = []
        out.append(p)
    if run:
        out.append(b"".join(run))
    return out
