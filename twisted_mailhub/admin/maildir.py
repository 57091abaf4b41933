"""
Reading and writing Maildir folders for ``mailhub import`` and ``export``.

A Maildir is a directory with C{tmp}, C{new} and C{cur}: one file per
message, its flags in the file name after C{:2,} (C{S} \\Seen, C{R}
\\Answered, C{F} \\Flagged, C{T} \\Deleted, C{D} \\Draft, C{P}
$Forwarded; the letters C{a} to C{z} are keywords, numbered in the
folder's C{dovecot-keywords} file as Dovecot does), its INTERNALDATE the
file's modification time.  Files in C{new} have no flags yet.

A I{Maildir++} tree (Courier, Dovecot) adds folders as sub-directories
of the top one named C{.Level1.Level2}, each a Maildir with a
C{maildirfolder} file; the names are in modified UTF-7 (RFC 3501 section
5.1.3), so C{.Archive.2024} is the mailbox C{Archive/2024}.

Messages are copied byte for byte.  Everything here blocks.
"""

from __future__ import annotations

import os
import socket
import time
from datetime import datetime, timezone
from typing import Iterator

from twisted_mailhub.admin.mboxfile import SourceMessage, header_date
from twisted_mailhub.backends.files import fsync_directory, replace_file, write_all

#: Flag letters of the Maildir info (after ":2,") and the flag each means.
LETTERS = {
    "D": "\\Draft",
    "F": "\\Flagged",
    "P": "$Forwarded",
    "R": "\\Answered",
    "S": "\\Seen",
    "T": "\\Deleted",
}
_FLAG_LETTERS = {flag: letter for letter, flag in LETTERS.items()}
KEYWORDS_FILE = "dovecot-keywords"
#: Keyword letters available per folder.
MAX_KEYWORDS = 26
#: A file time before this (the start of 1990) is taken for one lost in a
#: copy; the Delivery-date field, if any, is used instead.
_PLAUSIBLE = 631152000


def is_maildir(path: str) -> bool:
    """Whether C{path} has the C{cur} and C{new} directories of a Maildir."""
    return os.path.isdir(os.path.join(path, "cur")) and os.path.isdir(os.path.join(path, "new"))


def folder_levels(entry: str) -> list[str]:
    """The name levels of the Maildir++ folder directory C{entry} (C{.A.B})."""
    from twisted_mailhub.imap.mutf7 import decode

    levels = []
    for level in entry[1:].split("."):
        try:
            levels.append(decode(level.encode("ascii")))
        except (UnicodeEncodeError, ValueError):
            levels.append(level)  # a tree written with UTF-8 names
    return levels


def folder_entry(levels: list[str]) -> str:
    """The Maildir++ directory name of a mailbox with C{levels}; C{ValueError} if it has none."""
    from twisted_mailhub.imap.mutf7 import encode

    for level in levels:
        if "." in level:
            raise ValueError(f"a Maildir++ folder name cannot hold '.': {'/'.join(levels)}")
    return "." + ".".join(encode(level).decode("ascii") for level in levels)


def tree(root: str) -> list[tuple[list[str], str]]:
    """
    C{(levels, path)} of every Maildir of the tree at C{root}: C{root}
    itself (levels C{[]}) if it is one, then its Maildir++ folders by name.
    """
    found = [([], root)] if is_maildir(root) else []
    for entry in sorted(os.listdir(root)):
        path = os.path.join(root, entry)
        if entry.startswith(".") and entry not in (".", "..") and is_maildir(path):
            found.append((folder_levels(entry), path))
    return found


class MaildirReader:
    """The messages of the Maildir C{path}, oldest first (by file time)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.keywords = read_keywords(path)
        files = []
        for sub in ("new", "cur"):
            directory = os.path.join(path, sub)
            for name in os.listdir(directory):
                if name.startswith("."):
                    continue
                full = os.path.join(directory, name)
                try:
                    stat = os.stat(full)
                except FileNotFoundError:
                    continue  # taken by another program meanwhile
                files.append((stat.st_mtime, name, sub, stat.st_size))
        files.sort()
        self._files = files
        self.count = len(files)
        self.size = sum(size for *_, size in files)

    def __iter__(self) -> Iterator[SourceMessage]:
        for mtime, name, sub, _ in self._files:
            try:
                with open(os.path.join(self.path, sub, name), "rb") as f:
                    content = f.read()
            except FileNotFoundError:
                continue
            flags = self.flags_of(name) if sub == "cur" else frozenset()
            date: datetime | None = None
            if mtime < _PLAUSIBLE:
                date = header_date(content, b"delivery-date")
            if date is None:
                date = datetime.fromtimestamp(int(mtime), timezone.utc)
            yield SourceMessage(content, flags, date, len(content))

    def close(self) -> None:
        """Nothing is held open between messages."""

    def flags_of(self, name: str) -> frozenset[str]:
        """The flags the info part of the file name C{name} gives."""
        _, sep, info = name.rpartition(":2,")
        if not sep:
            return frozenset()
        flags = set()
        for letter in info:
            if letter in LETTERS:
                flags.add(LETTERS[letter])
            elif "a" <= letter <= "z":
                keyword = self.keywords.get(ord(letter) - ord("a"))
                if keyword:
                    flags.add(keyword)
        return frozenset(flags)


def read_keywords(path: str) -> dict[int, str]:
    """The numbered keywords of C{path}'s C{dovecot-keywords} file."""
    keywords: dict[int, str] = {}
    try:
        with open(os.path.join(path, KEYWORDS_FILE), encoding="utf-8", errors="replace") as f:
            for line in f:
                number, _, keyword = line.strip().partition(" ")
                if number.isdigit() and keyword and int(number) < MAX_KEYWORDS:
                    keywords[int(number)] = keyword
    except FileNotFoundError:
        pass
    return keywords


class MaildirWriter:
    """
    Messages written into the Maildir C{path} (created if missing, a
    Maildir++ folder when C{folder} is true), each delivered through
    C{tmp} and synced before it appears in C{cur}.
    """

    def __init__(self, path: str, folder: bool = False) -> None:
        self.path = path
        for sub in ("tmp", "new", "cur"):
            os.makedirs(os.path.join(path, sub), 0o700, exist_ok=True)
        if folder:
            open(os.path.join(path, "maildirfolder"), "ab").close()
        self.keywords = {keyword: number for number, keyword in read_keywords(path).items()}
        self._keywords_changed = False
        #: Keywords that had no letter left, with how many messages lost them.
        self.dropped: dict[str, int] = {}
        self._host = (socket.gethostname() or "localhost").replace("/", "\\057").replace(
            ":", "\\072")
        self._count = 0

    def write(self, content: bytes, flags: frozenset[str], internaldate: datetime) -> int:
        """Deliver one message; return its size."""
        letters = sorted(self._letters(flags))
        self._count += 1
        now = time.time()
        unique = (f"{int(now)}.M{int(now % 1 * 1e6)}P{os.getpid()}Q{self._count}."
                  f"{self._host},S={len(content)}")
        name = f"{unique}:2,{''.join(letters)}"
        temporary = os.path.join(self.path, "tmp", unique)
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            write_all(fd, content)
            os.fsync(fd)
        finally:
            os.close(fd)
        stamp = internaldate.timestamp()
        os.utime(temporary, (stamp, stamp))
        os.rename(temporary, os.path.join(self.path, "cur", name))
        return len(content)

    def _letters(self, flags: frozenset[str]) -> list[str]:
        letters = []
        for flag in flags:
            if flag in _FLAG_LETTERS:
                letters.append(_FLAG_LETTERS[flag])
            elif not flag.startswith("\\"):
                number = self.keywords.get(flag)
                if number is None:
                    if len(self.keywords) >= MAX_KEYWORDS:
                        self.dropped[flag] = self.dropped.get(flag, 0) + 1
                        continue
                    number = self.keywords[flag] = min(
                        set(range(MAX_KEYWORDS)) - set(self.keywords.values()))
                    self._keywords_changed = True
                letters.append(chr(ord("a") + number))
        return letters

    def close(self) -> None:
        """Record new keywords and sync the directories."""
        if self._keywords_changed:
            text = "".join(f"{number} {keyword}\n" for keyword, number in
                           sorted(self.keywords.items(), key=lambda item: item[1]))
            replace_file(os.path.join(self.path, KEYWORDS_FILE), [text.encode("utf-8")], 0o600)
        fsync_directory(os.path.join(self.path, "cur"))
        fsync_directory(self.path)
