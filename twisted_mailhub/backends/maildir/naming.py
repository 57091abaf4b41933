"""
Names on disk in a Maildir++ tree, the way Dovecot and Courier spell them.

A user's directory is one Maildir++ tree (see C{docs/backends-maildir.md}):

  - the directory itself is INBOX (C{cur/}, C{new/}, C{tmp/});
  - every other mailbox is a directory C{.<level>.<level>...} beside
    them: C{Work/Projects} is C{.Work.Projects}, C{INBOX/Sub} is
    C{.INBOX.Sub};
  - each level is written as Dovecot writes it with its C{listescape}
    plugin: a C{\\} becomes C{\\5c} and a C{.} becomes C{\\2e} (the dot
    separates levels on disk), and the result is in modified UTF-7
    (RFC 3501 section 5.1.3), so C{Café} is C{Caf&AOk-}, as Dovecot's
    default and Courier store it.

Message files are named C{<base>:2,<info>}: the base is unique
(C{<seconds>.M<microseconds>P<pid>Q<n>.<host>,S=<size>,W=<vsize>}) and
never changes; the I{info} after C{:2,} holds the flags as letters in ASCII
order: C{D} draft, C{F} flagged, C{P} passed (no IMAP flag, kept as it
is), C{R} replied (\\Answered), C{S} seen, C{T} trashed (\\Deleted), and
C{a}...C{z} the keywords numbered 0...25 in C{dovecot-keywords}.

Everything here is pure: strings in, strings out.
"""

from __future__ import annotations

import base64
import itertools
import os
import re
import socket
import threading
import time

from twisted_mailhub.errors import InvalidMailboxName

#: The separator of levels in a folder directory's name.
LEVEL_SEPARATOR = "."
#: The longest file name most file systems take, in bytes.
MAX_NAME_BYTES = 255

#: Maildir info letters of the IMAP system flags.
FLAG_LETTERS = {
    "\\Draft": "D",
    "\\Flagged": "F",
    "\\Answered": "R",
    "\\Seen": "S",
    "\\Deleted": "T",
}
LETTER_FLAGS = {letter: flag for flag, letter in FLAG_LETTERS.items()}
#: Keyword letters: index 0 is C{a}.
KEYWORD_LETTERS = "abcdefghijklmnopqrstuvwxyz"
INFO_PREFIX = ":2,"

_ESCAPES = {"\\": "\\5c", ".": "\\2e"}
_UNESCAPE = re.compile(r"\\([0-9a-fA-F]{2})")


# -- modified UTF-7 --------------------------------------------------------


def mutf7_encode(text: str) -> str:
    """C{text} in modified UTF-7: printable ASCII as itself, C{&} as C{&-}."""
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            data = "".join(pending).encode("utf-16-be", "surrogatepass")
            encoded = base64.b64encode(data).decode("ascii").rstrip("=")
            out.append("&" + encoded.replace("/", ",") + "-")
            pending.clear()

    for char in text:
        if 0x20 <= ord(char) < 0x7F:
            flush()
            out.append("&-" if char == "&" else char)
        else:
            pending.append(char)
    flush()
    return "".join(out)


def mutf7_decode(text: str) -> str:
    """Undo L{mutf7_encode}; C{ValueError} for what it cannot have written."""
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if not 0x20 <= ord(char) < 0x7F:
            raise ValueError("not modified UTF-7")
        if char != "&":
            out.append(char)
            i += 1
            continue
        end = text.find("-", i + 1)
        if end < 0:
            raise ValueError("unterminated modified UTF-7 shift")
        run = text[i + 1 : end]
        if not run:
            out.append("&")
        else:
            padded = run.replace(",", "/") + "=" * (-len(run) % 4)
            try:
                data = base64.b64decode(padded, validate=True)
                out.append(data.decode("utf-16-be"))
            except (ValueError, UnicodeDecodeError) as e:
                raise ValueError("malformed modified UTF-7") from e
        i = end + 1
    return "".join(out)


# -- folder directories ------------------------------------------------------


def encode_level(level: str) -> str:
    """The on-disk spelling of one level of a mailbox name."""
    escaped = "".join(_ESCAPES.get(char, char) for char in level)
    return mutf7_encode(escaped)


def decode_level(spelled: str) -> str | None:
    """
    The level a spelling stands for, or C{None} for one L{encode_level}
    never writes (so that two directories never mean one mailbox).
    """
    if not spelled:
        return None
    try:
        level = _UNESCAPE.sub(lambda m: chr(int(m.group(1), 16)), mutf7_decode(spelled))
    except ValueError:
        return None
    if encode_level(level) != spelled:
        return None
    return level


def folder_directory_name(name: str, delimiter: str = "/") -> str:
    """
    The directory name (C{.Work.Projects}) of the mailbox C{name}, which is
    not INBOX and is already validated.  Raises L{InvalidMailboxName} for a
    name that cannot be one directory.
    """
    levels = name.split(delimiter)
    for level in levels:
        check_level(level)
    spelled = LEVEL_SEPARATOR + LEVEL_SEPARATOR.join(encode_level(level) for level in levels)
    if len(spelled.encode("utf-8")) > MAX_NAME_BYTES:
        raise InvalidMailboxName("Mailbox name is too long for a Maildir++ folder")
    return spelled


def folder_name(directory_name: str, delimiter: str = "/") -> str | None:
    """
    The mailbox a directory of the tree holds (C{Work/Projects} for
    C{.Work.Projects}), or C{None} when it is not a folder of this layout:
    no leading dot, an empty level, a spelling not in canonical form, a
    top-level INBOX in another case (or INBOX itself, which is the tree's
    root).
    """
    if not directory_name.startswith(LEVEL_SEPARATOR) or directory_name in (".", ".."):
        return None
    levels = []
    for spelled in directory_name[1:].split(LEVEL_SEPARATOR):
        level = decode_level(spelled)
        if level is None or delimiter in level:
            return None
        levels.append(level)
    if levels[0].upper() == "INBOX" and (levels[0] != "INBOX" or len(levels) == 1):
        return None
    return delimiter.join(levels)


def check_level(level: str) -> None:
    """Refuse what must never reach a path."""
    if level in ("", ".", ".."):
        raise InvalidMailboxName("Mailbox name has an empty, '.' or '..' level")
    if "\x00" in level or "/" in level:
        raise InvalidMailboxName("Mailbox name contains a forbidden character")


# -- message files -------------------------------------------------------------

_counter = itertools.count()
_counter_lock = threading.Lock()


def _hostname() -> str:
    # The Maildir convention for characters a file name part cannot hold.
    host = socket.gethostname() or "localhost"
    return host.replace("/", "\\057").replace(":", "\\072").replace(",", "\\054")


def unique_name() -> str:
    """
    A new, unique name: time, microseconds, process id and a counter of
    this process, and the host.
    """
    with _counter_lock:
        n = next(_counter)
    now = time.time()
    seconds = int(now)
    micro = int((now - seconds) * 1_000_000)
    return f"{seconds}.M{micro}P{os.getpid()}Q{n}.{_hostname()}"


def unique_base(stored_size: int, served_size: int) -> str:
    """
    A new, unique base name (L{unique_name}) with the physical (C{S=}) and
    virtual (C{W=}, with CRLF line endings) sizes, as Dovecot writes them.
    """
    return f"{unique_name()},S={stored_size},W={served_size}"


def base_for_copy(base: str) -> str:
    """A new, unique base for a copy of the file of C{base}, with the same size fields."""
    comma = base.find(",")
    return unique_name() + (base[comma:] if comma >= 0 else "")


def split_filename(filename: str) -> tuple[str, str | None]:
    """C{(base, info)}: info is what follows C{:2,} (C{None} without one)."""
    base, colon, rest = filename.partition(":")
    if not colon:
        return base, None
    if rest.startswith("2,"):
        return base, rest[2:]
    # Another info format (experimental ":1,"): kept, but carries no flags.
    return base, None


def filename_of(base: str, info: str | None) -> str:
    """The file name of C{base} with C{info} (C{None}: a file of C{new/})."""
    return base if info is None else base + INFO_PREFIX + info


def is_message_file(filename: str) -> bool:
    """Whether a name in C{new/} or C{cur/} can be a message (not hidden)."""
    return bool(filename) and not filename.startswith(".")


def info_letters(info: str | None) -> str:
    """The distinct flag letters of C{info}."""
    return "" if not info else "".join(sorted(set(info)))


def info_of(letters: set[str] | str) -> str:
    """Info holding C{letters}, in ASCII order as the Maildir convention asks."""
    return "".join(sorted(set(letters)))
