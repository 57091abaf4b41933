"""
The text a full-text index holds, and the patterns that search it: what
the SQL store's index (L{twisted_mailhub.backends.sql.fts}) and the file
stores' (L{twisted_mailhub.backends.textindex}) share.

SEARCH BODY and TEXT are substring tests on decoded text, without regard to
case (RFC 3501 section 6.4.4).  An index keeps, per message, the C{header}
and C{body} strings of L{twisted_mailhub.mime.text.search_text} already
case folded (C{str.casefold}), the very strings the generic evaluator of
SEARCH tests.  A message matches when the folded needle is a substring of
the folded text, so an index needs no case folding of its own and agrees
with the evaluator on every script (C{"STRASSE"} finds C{"Straße"}).

With SQLite's FTS5 trigram tokenizer, a needle with a run of at least
L{MIN_INDEXED} literal characters is looked up as C{GLOB '*needle*'}
(L{glob_pattern}): FTS5 takes the rows holding all its trigrams from the
index and checks the GLOB itself on each, so the answer is exact.
"""

from __future__ import annotations

import re
from typing import Any

#: Needles at least this long are looked up in a trigram index.
MIN_INDEXED = 3

#: Text stands in for U+0000, which PostgreSQL text cannot hold, SQLite's
#: string functions stop at, and no IMAP string contains.
NUL_STANDIN = "\ufffd"

_GLOB_SPECIAL = re.compile(r"[*?\[]")


def _clean(value: str) -> str:
    return value.replace("\x00", NUL_STANDIN) if "\x00" in value else value


def fold(value: str) -> str:
    """A needle or a text as an index holds it."""
    return _clean(value.casefold())


def index_text(content: bytes, structure: Any) -> tuple[str, str]:
    """
    The (header, body) an index holds for the message C{content}, whose
    parsed L{twisted_mailhub.mime.structure.MessageStructure} is
    C{structure}: decoded header fields (RFC 2047), the headers, file names
    and decoded text of the MIME parts and attached messages.
    """
    from twisted_mailhub.mime.text import search_text

    header, body = search_text(content, structure)
    return fold(header), fold(body)


def message_text(content: bytes) -> tuple[str, str]:
    """L{index_text} of C{content}, parsing it."""
    from twisted_mailhub.mime.parse import parse_message

    return index_text(content, parse_message(content))


def longest_literal_run(needle: str) -> int:
    """The longest stretch of C{needle} a GLOB pattern keeps as literal characters."""
    return max(len(run) for run in _GLOB_SPECIAL.split(needle))


def glob_pattern(needle: str) -> str | None:
    """
    The GLOB pattern matching text that contains the folded C{needle}, or
    C{None} when the needle has no run of L{MIN_INDEXED} literal characters
    (no trigram to look up: test it with C{instr()} instead).
    """
    if longest_literal_run(needle) < MIN_INDEXED:
        return None
    return "*" + _GLOB_SPECIAL.sub(r"[\g<0>]", needle) + "*"
