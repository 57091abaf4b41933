"""
C{mailhub-state}: what IMAP needs of a folder and Maildir cannot hold.

One JSON file per folder, next to C{dovecot-uidlist}, read and written
only by this server (other programs leave it alone):

  - the UIDVALIDITY it was written under: a C{dovecot-uidlist} with
    another one (recreated by Dovecot, or lost) makes it void;
  - HIGHESTMODSEQ, and for each message its MODSEQ, its flags as last seen
    (a rename by another program that changed them is a flag change with a
    new MODSEQ), its INTERNALDATE, its size as served, the keywords that
    did not fit in the 26 letters of the file name, whether its file
    is served as it is (L{twisted_mailhub.backends.maildir.content}), and
    when this server saved it into the folder (RFC 8514 SAVEDATE);
  - the expunge history (UID and MODSEQ of each expunge) for QRESYNC, and
    the MODSEQ from which it is complete (see L{FolderState.rebuilt});
  - which UIDs are still \\Recent, and the special-use attributes.

It is replaced atomically (temporary file, fsync, rename) while the
folder's C{dovecot-uidlist.lock} is held.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from datetime import datetime

from twisted_mailhub.backends.files import replace_file

STATE_FILE = "mailhub-state"
FORMAT_VERSION = 1


@dataclass(slots=True)
class Known:
    """One message as this server last knew it."""

    modseq: int
    flags: frozenset[str]
    internaldate: datetime
    size: int
    # Keywords kept here only: the file name had no letter left for them.
    extra: frozenset[str] = frozenset()
    # The file is served as it is (see twisted_mailhub.backends.maildir.content).
    raw: bool = False
    # When this server saved it into the folder; None for a file another
    # program delivered (and for states written before this was kept).
    saved: datetime | None = None

    def to_json(self, uid: int) -> list:
        row = [uid, self.modseq, sorted(self.flags), self.internaldate.isoformat(), self.size]
        if self.extra or self.raw or self.saved is not None:
            row.append(sorted(self.extra))
        if self.raw or self.saved is not None:
            row.append(1 if self.raw else 0)
        if self.saved is not None:
            row.append(self.saved.isoformat())
        return row

    @classmethod
    def from_json(cls, row: list) -> tuple[int, Known]:
        uid, modseq, flags, date, size = row[:5]
        extra = frozenset(row[5]) if len(row) > 5 else frozenset()
        raw = len(row) > 6 and bool(row[6])
        saved = datetime.fromisoformat(row[7]) if len(row) > 7 and row[7] else None
        return uid, cls(modseq, frozenset(flags), datetime.fromisoformat(date), size, extra, raw,
                        saved)


@dataclass(slots=True)
class FolderState:
    """Everything C{mailhub-state} holds about one folder."""

    uidvalidity: int
    # RFC 7162 wants a positive HIGHESTMODSEQ even for an empty mailbox.
    highestmodseq: int = 1
    recent_after: int = 0
    special_use: frozenset[str] = frozenset()
    known: dict[int, Known] = field(default_factory=dict)
    # (uid, modseq of its expunge), in expunge order.
    expunged: list[tuple[int, int]] = field(default_factory=list)
    # Every expunge with a greater MODSEQ is in C{expunged}; those before
    # were lost with an earlier state file.
    history_from: int = 0

    @classmethod
    def rebuilt(cls, uidvalidity: int, special_use: frozenset[str] = frozenset(),
                now: float | None = None) -> FolderState:
        """
        The state of a folder whose UIDs survived but whose state file did
        not (deleted, or unreadable).  The UIDs keep their UIDVALIDITY, so
        the MODSEQs must go on above every MODSEQ a client may hold (RFC
        7162 section 3.1.2: they only grow).  The old HIGHESTMODSEQ is gone;
        the clock in microseconds is above it, since MODSEQs count changes
        from 1 and no folder changes a million times a second.  The expunge
        history before that point is gone too, which QRESYNC is told.
        """
        floor = int((time.time() if now is None else now) * 1_000_000)
        return cls(uidvalidity, highestmodseq=floor, special_use=special_use,
                   history_from=floor)

    def next_modseq(self) -> int:
        """Allocate a MODSEQ greater than any before."""
        self.highestmodseq += 1
        return self.highestmodseq

    def render(self) -> bytes:
        data = {
            "version": FORMAT_VERSION,
            "uidvalidity": self.uidvalidity,
            "highestmodseq": self.highestmodseq,
            "recent_after": self.recent_after,
            "special_use": sorted(self.special_use),
            "messages": [known.to_json(uid) for uid, known in sorted(self.known.items())],
            "expunged": [list(pair) for pair in self.expunged],
        }
        if self.history_from:
            data["history_from"] = self.history_from
        return json.dumps(data, separators=(",", ":")).encode("utf-8")


def parse_state(data: bytes) -> FolderState:
    """Read C{mailhub-state}; C{ValueError} (or C{KeyError}) when damaged."""
    raw = json.loads(data)
    if raw.get("version") != FORMAT_VERSION:
        raise ValueError(f"Unknown state format {raw.get('version')!r}")
    known = dict(Known.from_json(row) for row in raw["messages"])
    return FolderState(
        uidvalidity=raw["uidvalidity"],
        highestmodseq=raw["highestmodseq"],
        recent_after=raw["recent_after"],
        special_use=frozenset(raw["special_use"]),
        known=known,
        expunged=[(uid, modseq) for uid, modseq in raw["expunged"]],
        history_from=raw.get("history_from", 0),
    )


def write_state(directory: str, state: FolderState) -> os.stat_result:
    """Atomically store C{state} in C{directory}; return the file's stat."""
    return replace_file(os.path.join(directory, STATE_FILE), [state.render()], 0o600)
