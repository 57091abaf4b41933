"""
Quick resynchronization (QRESYNC, RFC 7162 section 3.2): what a client that
comes back with a mailbox's UIDVALIDITY and a MODSEQ must be told, as
``* VANISHED (EARLIER)`` and ``* n FETCH`` responses.

SELECT/EXAMINE (QRESYNC ...) and UID FETCH ... (CHANGEDSINCE n VANISHED)
both end up here (section 3.2.5.1: the first is "semantically equivalent"
to the second).  The set arithmetic is pure; L{resync} reads the store.
"""

from __future__ import annotations

import bisect
from typing import Iterable, Iterator, Sequence

from twisted_mailhub.imap import fetch as F
from twisted_mailhub.imap import responses
from twisted_mailhub.interfaces import IExpungeHistory
from twisted_mailhub.model import MessageMeta
from twisted_mailhub.ranges import SequenceSet, compress

Ranges = list[tuple[int, int]]


def merged(ranges: Iterable[tuple[int, int]]) -> Ranges:
    """C{ranges} (each low <= high) sorted, with overlapping or adjacent ones joined."""
    out: Ranges = []
    for low, high in sorted(ranges):
        if out and low <= out[-1][1] + 1:
            if high > out[-1][1]:
                out[-1] = (out[-1][0], high)
        else:
            out.append((low, high))
    return out


def contains(ranges: Ranges, number: int) -> bool:
    """Whether C{number} is in the L{merged} C{ranges}."""
    i = bisect.bisect_right(ranges, (number, 0xFFFFFFFF)) - 1
    return i >= 0 and ranges[i][0] <= number <= ranges[i][1]


def numbers(seqset: SequenceSet) -> Iterator[int]:
    """The numbers of a set without ``*``, in the order written (lazily)."""
    for low, high in seqset.bounds(0):
        yield from range(low, high + 1)


def seq_match_floor(match: tuple[SequenceSet, SequenceSet] | None,
                    view: Sequence[int]) -> int:
    """
    RFC 7162 section 3.2.5.2: the highest UID of the client's (sequence
    number, UID) pairs that the mailbox agrees with now, or 0.  A pair
    that matches says the client knows of every expunge up to and
    including that message, so no UID at or below it is reported.

    Both sets are ascending with as many numbers each (the parser checks):
    the walk stops at the first sequence number past the mailbox's end, so
    it is never longer than the mailbox whatever ranges the client wrote.
    """
    if match is None:
        return 0
    exists = len(view)
    floor = 0
    for seq, uid in zip(numbers(match[0]), numbers(match[1])):
        if seq > exists:
            break
        if view[seq - 1] == uid:
            floor = uid
    return floor


def absent(known: Ranges, view: Sequence[int], floor: int, top: int) -> Ranges:
    """
    The UIDs of C{known} above C{floor} and at most C{top} that are not in
    C{view} (ascending UIDs), as ranges: what is reported when the expunges
    since the client's MODSEQ are not all remembered.  Computed range by
    range, never one UID at a time.
    """
    out: Ranges = []
    for low, high in known:
        low, high = max(low, floor + 1), min(high, top)
        if low > high:
            continue
        i = bisect.bisect_left(view, low)
        at = low
        while i < len(view) and view[i] <= high:
            if view[i] > at:
                out.append((at, view[i] - 1))
            at = view[i] + 1
            i += 1
        if at <= high:
            out.append((at, high))
    return out


def vanished_earlier(ranges: Ranges) -> list[bytes]:
    """``* VANISHED (EARLIER) uids``, or nothing for no UIDs (known-uids is never empty)."""
    if not ranges:
        return []
    return [responses.untagged(b"VANISHED (EARLIER) "
                               + str(SequenceSet(tuple(ranges))).encode("ascii"))]


async def history_complete(mailbox, modseq: int) -> bool:
    """Whether the store still remembers every expunge after C{modseq}."""
    history = IExpungeHistory(mailbox, None)
    if history is None:
        return True
    return modseq >= await history.expunges_remembered_after()


async def resync(selected, known: Ranges, modseq: int, *, floor: int = 0,
                 top: int) -> tuple[list[bytes], list[MessageMeta]]:
    """
    C{(vanished, metas)}: the ``* VANISHED (EARLIER)`` response for the UIDs
    of C{known} (L{merged} ranges) expunged after C{modseq}, and the metas
    of the messages of C{known} in the view changed after it, by UID.

    UIDs still in the session's view are left out of the VANISHED
    (EARLIER): another session expunged them after this one was told of
    them, and they are told as a plain VANISHED, which also renumbers,
    before the command ends (section 3.2.10.2).  C{floor} is from
    L{seq_match_floor}; C{top} the highest UID ever given (UIDNEXT - 1).
    """
    mailbox = selected.mailbox
    metas, expunged = await mailbox.changes_since(modseq)
    view = selected.uids
    if await history_complete(mailbox, modseq):
        gone = compress([uid for uid in expunged
                         if uid > floor and contains(known, uid)
                         and selected.seq_of(uid) is None])
    else:
        # RFC 7162 section 3.2.6: below what the store remembers, every UID
        # of the set that does not exist now.
        gone = absent(known, view, floor, top)
    changed = sorted((m for m in metas
                      if contains(known, m.uid) and selected.seq_of(m.uid) is not None),
                     key=lambda m: m.uid)
    return vanished_earlier(gone), changed


def fetch_responses(selected, metas: list[MessageMeta]) -> list[bytes]:
    """``* n FETCH (UID u FLAGS (...) MODSEQ (m))`` for each of C{metas} in the view."""
    out = selected.keyword_responses(metas)
    for meta in metas:
        seq = selected.seq_of(meta.uid)
        if seq is None:
            continue
        items = [F.flags_item(meta, selected.is_recent(meta.uid)), b"MODSEQ (%d)" % meta.modseq]
        if selected.uidonly:
            # RFC 9586: numbered by the UID, which is not repeated.
            out.append(responses.fetch(meta.uid, items, b"UIDFETCH"))
        else:
            out.append(responses.fetch(seq, [b"UID %d" % meta.uid, *items]))
    return out
