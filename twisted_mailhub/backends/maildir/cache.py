"""
What a server process keeps of each Maildir folder between operations.

A L{FolderCache} holds, per folder, what was last read (L{CachedFolder}):
the parsed C{dovecot-uidlist}, C{dovecot-keywords} and C{mailhub-state},
the listing of C{new/} and C{cur/}, and the L{Message}s built from them,
each with the size, mtime and inode (a L{Signature}) it was read at.  An
entry is only used by the thread holding the folder's process lock.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from datetime import datetime

from twisted_mailhub.backends.maildir.state import STATE_FILE, FolderState, parse_state
from twisted_mailhub.backends.maildir.uidlist import Keywords, UidList
from twisted_mailhub.model import MessageMeta

UIDLIST_FILE = "dovecot-uidlist"
KEYWORDS_FILE = "dovecot-keywords"
FOLDER_FILE = "maildirfolder"
#: The message directories, in the order they are listed: a file moving
#: from new/ to cur/ meanwhile is then seen in cur/ rather than missed.
MESSAGE_DIRECTORIES = ("new", "cur")
#: How long before a listing a directory's last change must lie for the
#: listing to be trusted while the directory stays unchanged.
SETTLE_SECONDS = 1.0
#: Files in tmp/ older than this are left over from crashes (Dovecot's rule).
TMP_MAX_AGE = 36 * 3600

Signature = tuple[int, int, int] | None


def signature_of(path: str) -> Signature:
    """(size, mtime in ns, inode) of C{path}, or C{None} if it does not exist."""
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return (st.st_size, st.st_mtime_ns, st.st_ino)


@dataclass(slots=True)
class Message:
    """One message: where its file is and what IMAP knows of it."""

    uid: int
    base: str
    subdir: str
    filename: str
    info: str | None
    flags: frozenset[str]
    modseq: int
    internaldate: datetime
    size: int
    # Served as the file holds it, without turning LF into CRLF.
    raw: bool = False
    # The G field of its uidlist record, or one derived from its base name.
    identity: str = ""
    # When it was saved into this folder, if this server did it.
    saved: datetime | None = None

    def meta(self) -> MessageMeta:
        """
        The L{MessageMeta} of this message.  A file another program
        delivered has no save date kept: its INTERNALDATE (the file's
        mtime, the delivery's) stands in.
        """
        return MessageMeta(self.uid, self.flags, self.internaldate, self.size, self.modseq,
                           self.identity, self.saved or self.internaldate)


@dataclass(slots=True)
class CachedFolder:
    """What was read of one folder, with the signatures it was read at."""

    loaded: bool = False
    uidlist_sig: Signature = None
    uidlist: UidList | None = None
    keywords_sig: Signature = None
    keywords: Keywords = field(default_factory=Keywords)
    state_sig: Signature = None
    state: FolderState | None = None
    dirs_sig: tuple[Signature, Signature] | None = None
    listed_at: float = 0.0
    # base name -> (subdir, file name)
    listing: dict[str, tuple[str, str]] = field(default_factory=dict)
    messages: list[Message] | None = None


class FolderCache:
    """
    Folders as last read, per path.  An entry is only used under the
    folder's L{process_lock}.
    """

    def __init__(self) -> None:
        self._entries: dict[str, CachedFolder] = {}
        self._special: dict[str, tuple[Signature, frozenset[str]]] = {}
        self._tidied: set[str] = set()
        self._lock = threading.Lock()

    def entry(self, path: str) -> CachedFolder:
        with self._lock:
            cached = self._entries.get(path)
            if cached is None:
                cached = self._entries[path] = CachedFolder()
            return cached

    def forget(self, path: str) -> None:
        with self._lock:
            self._entries.pop(path, None)

    def first_visit(self, path: str) -> bool:
        """True the first time C{path} is asked about (to tidy its tmp/)."""
        with self._lock:
            if path in self._tidied:
                return False
            self._tidied.add(path)
            return True

    def special_use(self, path: str) -> frozenset[str]:
        """The special-use attributes recorded for the folder at C{path}."""
        name = os.path.join(path, STATE_FILE)
        sig = signature_of(name)
        cached = self._special.get(path)
        if cached is not None and cached[0] == sig:
            return cached[1]
        special: frozenset[str] = frozenset()
        if sig is not None:
            try:
                with open(name, "rb") as f:
                    special = parse_state(f.read()).special_use
            except (OSError, ValueError, KeyError, TypeError):
                special = frozenset()
        self._special[path] = (sig, special)
        return special

