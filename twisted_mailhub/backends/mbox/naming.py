"""
Where each mailbox of the mbox backend lives on disk.

Layout of one user's directory (C{root/<user>/}):

  - C{INBOX}, C{Sent}, ...: one mbox file per selectable mailbox;
  - C{<file>.mailhub}: the JSON index next to each mbox file
    (see L{twisted_mailhub.backends.mbox.index});
  - C{<file>.d/}: the inferiors of a mailbox, laid out the same way; a
    mailbox with both messages and children is the file plus the
    directory, and a hierarchy-only (non-selectable) name is the directory
    alone;
  - C{<file>.lock}: the dotlock other mail programs also take;
  - names starting with a dot (C{.subscriptions}, C{.uidvalidity},
    temporary files) are the backend's own.

Each level of a mailbox name becomes one file name as it is, except that
C{%} becomes C{%25}, a leading C{.} becomes C{%2E}, and a level that would
end in one of the reserved suffixes C{.d}, C{.lock} or C{.mailhub} has the
dot of that suffix written C{%2E}.  So no mailbox can collide with a lock,
an index, a children directory or a private file, while ordinary names
(C{lists.python}) stay readable to other mail programs.
"""

from __future__ import annotations

import os
from urllib.parse import unquote

from twisted_mailhub.errors import InvalidMailboxName, PermissionDenied

CHILDREN_SUFFIX = ".d"
INDEX_SUFFIX = ".mailhub"
LOCK_SUFFIX = ".lock"
RESERVED_SUFFIXES = (CHILDREN_SUFFIX, LOCK_SUFFIX, INDEX_SUFFIX)
# Room for the longest suffix in a 255-byte file name.
MAX_LEVEL_BYTES = 255 - len(INDEX_SUFFIX)


def encode_level(level: str) -> str:
    """The file name of one level of a mailbox name (see module docstring)."""
    encoded = level.replace("%", "%25")
    if encoded.startswith("."):
        encoded = "%2E" + encoded[1:]
    for suffix in RESERVED_SUFFIXES:
        if encoded.endswith(suffix):
            encoded = encoded[: -len(suffix)] + "%2E" + suffix[1:]
    return encoded


def decode_level(filename: str) -> str | None:
    """
    The level a file name stands for, or C{None} for a name this layout
    never produces (reserved, private, or not in canonical encoding).
    """
    if filename.startswith(".") or filename.endswith(RESERVED_SUFFIXES):
        return None
    level = unquote(filename, errors="strict") if "%" in filename else filename
    if encode_level(level) != filename:
        return None
    return level


def check_level(level: str) -> None:
    """Refuse what must never reach a path even after encoding."""
    if level in ("", ".", ".."):
        raise InvalidMailboxName("Mailbox name has an empty, '.' or '..' level")
    if "\\" in level:
        raise InvalidMailboxName("Mailbox name contains a backslash")
    if "\x00" in level or "/" in level:
        raise InvalidMailboxName("Mailbox name contains a forbidden character")
    if len(encode_level(level).encode("utf-8", "surrogatepass")) > MAX_LEVEL_BYTES:
        raise InvalidMailboxName("Mailbox name has a level that is too long")


def user_directory(root: str, username: str) -> str:
    """
    The directory of C{username} under C{root}.  Raises L{PermissionDenied}
    for a name that could leave C{root} or cannot be a file name.
    """
    if (
        not username
        or username in (".", "..")
        or any(c in username for c in "/\\\x00")
        or any(ord(c) < 0x20 or ord(c) == 0x7F for c in username)
        or len(encode_level(username).encode("utf-8", "surrogatepass")) > 255
    ):
        raise PermissionDenied("Invalid user name")
    return os.path.join(root, encode_level(username))


def mailbox_file(userdir: str, name: str, delimiter: str = "/") -> str:
    """
    The mbox file of the (already validated) mailbox C{name}.  The
    children of a mailbox are under C{mailbox_file(...) + ".d"}.
    """
    levels = name.split(delimiter)
    for level in levels:
        check_level(level)
    parts = [encode_level(level) + CHILDREN_SUFFIX for level in levels[:-1]]
    parts.append(encode_level(levels[-1]))
    return os.path.join(userdir, *parts)


def index_file(path: str) -> str:
    """The JSON index of the mbox file C{path}."""
    return path + INDEX_SUFFIX


def children_directory(path: str) -> str:
    """The directory holding the inferiors of the mbox file C{path}."""
    return path + CHILDREN_SUFFIX


def lock_file(path: str) -> str:
    """The dotlock of the mbox file C{path}."""
    return path + LOCK_SUFFIX
