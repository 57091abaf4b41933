"""
IMAP flags to and from the info letters of a Maildir file name.

The letters are those of L{twisted_mailhub.backends.maildir.naming};
keyword letters mean what C{dovecot-keywords} (a L{Keywords}) says.
Letters with no IMAP meaning (C{P}, passed; a keyword letter the file does
not name; letters of other programs) are kept when the flags of a file are
changed.  A keyword that finds no free letter (26 are in use) is kept by
the caller outside the file name.

Everything here is pure.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from twisted_mailhub.backends.base import clean_flags
from twisted_mailhub.backends.maildir.naming import (
    FLAG_LETTERS,
    KEYWORD_LETTERS,
    LETTER_FLAGS,
    info_letters,
    info_of,
    split_filename,
)
from twisted_mailhub.backends.maildir.uidlist import Keywords
from twisted_mailhub.model import canonical_flag


def flags_of(info: str | None, keywords: Keywords,
             extra: frozenset[str] = frozenset()) -> frozenset[str]:
    """The IMAP flags of a file's info letters, plus the keywords kept aside."""
    flags = set(extra)
    for letter in info_letters(info):
        flag = LETTER_FLAGS.get(letter)
        if flag is not None:
            flags.add(flag)
        elif letter in KEYWORD_LETTERS:
            name = keywords.name_of(letter)
            if name is not None:
                flags.add(canonical_flag(name))
    return frozenset(flags)


def normalised(flags: Iterable[str], keywords: Keywords) -> frozenset[str]:
    """Cleaned flags, each keyword spelled as C{dovecot-keywords} spells it."""
    return frozenset(flag if flag.startswith("\\") else keywords.spelling(flag)
                     for flag in clean_flags(flags))


def info_for(flags: frozenset[str], old_info: str | None, keywords: Keywords,
             allocate: Callable[[str], str | None]) -> tuple[str, frozenset[str]]:
    """
    The info letters for C{flags} on a file whose info was C{old_info},
    and the flags that got no letter.  A keyword without a letter yet is
    given one by C{allocate} (which returns C{None} when none is free).
    """
    letters = {
        letter for letter in info_letters(old_info)
        if letter not in LETTER_FLAGS
        and not (letter in KEYWORD_LETTERS and keywords.name_of(letter) is not None)
    }
    extra = set()
    for flag in sorted(flags):
        if flag in FLAG_LETTERS:
            letters.add(FLAG_LETTERS[flag])
            continue
        if flag.startswith("\\"):
            extra.add(flag)
            continue
        letter = keywords.letter_of(flag)
        if letter is None:
            letter = allocate(flag)
        if letter is None:
            extra.add(flag)
        else:
            letters.add(letter)
    return info_of(letters), frozenset(extra)


def unnamed_letters(filenames: Iterable[str], keywords: Keywords) -> set[str]:
    """Keyword letters used on files that C{dovecot-keywords} does not name."""
    return {
        letter for filename in filenames
        for letter in info_letters(split_filename(filename)[1])
        if letter in KEYWORD_LETTERS and keywords.name_of(letter) is None
    }
