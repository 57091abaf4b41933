"""
The two files a Maildir folder shares with Dovecot: C{dovecot-uidlist}
and C{dovecot-keywords}.

C{dovecot-uidlist}, version 3 (what Dovecot has written since 1.1)::

    3 V1712345678 N42 G0123456789abcdef0123456789abcdef
    40 :1712345678.M12P345Q0.host,S=1200,W=1230
    41 W2481 S2400 :1712345699.M7P345Q1.host

The header holds UIDVALIDITY (C{V}), the next UID (C{N}) and the mailbox
GUID (C{G}); each record a UID, optional fields (an upper-case letter and a
value: C{W} virtual size, C{S} physical size, C{G} the message's GUID,
which this server writes as its identity, C{P}, C{O}, ... of Dovecot) and, after C{:}, the I{base} of the message's file name (the part
before C{:2,}, which a flag change does not touch).  Records are in UID
order.  Dovecot may append records without rewriting the header, so the
next UID is the larger of C{N} and the last UID plus one.

C{dovecot-keywords} maps keyword letters to names, one C{<index> <name>}
line per keyword, index 0 being the letter C{a}.  Names are matched without
regard to case, as Dovecot does.

Everything here is pure: bytes in, values out.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field

from twisted_mailhub.backends.maildir.naming import KEYWORD_LETTERS

VERSION = 3
_EXTENSION = re.compile(r"[A-Z]\S*")


@dataclass(slots=True)
class Record:
    """One message of the list: its UID, base name and extra fields."""

    uid: int
    base: str
    # Extra fields as written ("W1234"), kept for Dovecot.
    extensions: tuple[str, ...] = ()

    @property
    def guid(self) -> str | None:
        """The message GUID of the C{G} field, if the record has one."""
        for extension in self.extensions:
            if extension.startswith("G") and len(extension) > 1:
                return extension[1:]
        return None


@dataclass(slots=True)
class UidList:
    """The parsed C{dovecot-uidlist}."""

    uidvalidity: int
    nextuid: int = 1
    guid: str = field(default_factory=lambda: uuid.uuid4().hex)
    records: list[Record] = field(default_factory=list)
    # Header fields other than V, N and G, kept as they were.
    header_extra: tuple[str, ...] = ()

    def render(self) -> bytes:
        """The file's bytes."""
        header = [str(VERSION), f"V{self.uidvalidity}", f"N{self.nextuid}", f"G{self.guid}"]
        lines = [" ".join(header + list(self.header_extra))]
        for record in self.records:
            lines.append(" ".join([str(record.uid), *record.extensions, ":" + record.base]))
        return ("\n".join(lines) + "\n").encode("utf-8", "surrogateescape")


class UnreadableUidList(ValueError):
    """The file is not a version 3 list this module can read."""


def parse_uidlist(data: bytes) -> UidList:
    """
    Read a C{dovecot-uidlist}.  Raises L{UnreadableUidList} for another
    version or a damaged header; damaged records are skipped, as are records
    out of UID order (the file is then rewritten without them).
    """
    text = data.decode("utf-8", "surrogateescape")
    lines = text.split("\n")
    words = lines[0].split()
    if not words or words[0] != str(VERSION):
        raise UnreadableUidList(f"not a version {VERSION} uidlist")
    values: dict[str, str] = {}
    extra = []
    for word in words[1:]:
        key, value = word[:1], word[1:]
        if key in ("V", "N", "G"):
            values[key] = value
        else:
            extra.append(word)
    try:
        uidvalidity = int(values["V"])
        nextuid = int(values.get("N", "1"))
    except (KeyError, ValueError) as e:
        raise UnreadableUidList("damaged uidlist header") from e
    if not 1 <= uidvalidity < 2**32:
        raise UnreadableUidList("UIDVALIDITY out of range")
    guid = values.get("G") or ""
    records: list[Record] = []
    last = 0
    for line in lines[1:]:
        record = _parse_record(line)
        if record is None or record.uid <= last:
            continue
        records.append(record)
        last = record.uid
    return UidList(uidvalidity, max(nextuid, last + 1, 1), guid, records, tuple(extra))


def _parse_record(line: str) -> Record | None:
    head, colon, base = line.partition(" :")
    if not colon:
        head, colon, base = line.partition(":")
    if not colon or not base or "/" in base:
        return None
    words = head.split()
    if not words or not words[0].isdigit():
        return None
    uid = int(words[0])
    if not 0 < uid < 2**32:
        return None
    extensions = tuple(word for word in words[1:] if _EXTENSION.fullmatch(word))
    # A name with its info would never match a file: keep the base only.
    return Record(uid, base.partition(":")[0], extensions)


# -- keywords --------------------------------------------------------------------


@dataclass(slots=True)
class Keywords:
    """Keyword letter to name, as C{dovecot-keywords} has them."""

    names: list[str | None] = field(default_factory=lambda: [None] * len(KEYWORD_LETTERS))

    def name_of(self, letter: str) -> str | None:
        """The keyword of a letter, if the file names one."""
        index = ord(letter) - ord("a")
        return self.names[index] if 0 <= index < len(self.names) else None

    def letter_of(self, keyword: str) -> str | None:
        """The letter of C{keyword} (any case), if it has one."""
        wanted = keyword.lower()
        for index, name in enumerate(self.names):
            if name is not None and name.lower() == wanted:
                return KEYWORD_LETTERS[index]
        return None

    def spelling(self, keyword: str) -> str:
        """C{keyword} as the file spells it (the first spelling wins)."""
        letter = self.letter_of(keyword)
        return keyword if letter is None else self.name_of(letter) or keyword

    def allocate(self, keyword: str) -> str | None:
        """The letter of C{keyword}, taking a free one; C{None} when all 26 are used."""
        letter = self.letter_of(keyword)
        if letter is not None:
            return letter
        for index, name in enumerate(self.names):
            if name is None:
                self.names[index] = keyword
                return KEYWORD_LETTERS[index]
        return None

    def render(self) -> bytes:
        lines = [f"{index} {name}\n" for index, name in enumerate(self.names) if name is not None]
        return "".join(lines).encode("utf-8", "surrogateescape")


def parse_keywords(data: bytes) -> Keywords:
    """Read C{dovecot-keywords}; lines it cannot use are ignored, as Dovecot does."""
    keywords = Keywords()
    for line in data.decode("utf-8", "surrogateescape").split("\n"):
        number, space, name = line.partition(" ")
        name = name.strip()
        if not space or not number.isdigit() or not name or " " in name:
            continue
        index = int(number)
        if index < len(keywords.names) and keywords.letter_of(name) is None:
            keywords.names[index] = name
    return keywords
