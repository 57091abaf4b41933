"""
What one sync run does to one folder, decided from the two listings alone:
which source messages are already on the target, whose flags differ, and
which are copied with which UID.  Pure functions; no I/O.

A message is recognised by its UID when the target kept the source's
UIDVALIDITY (and then its size and INTERNALDATE must agree too), otherwise
by its Message-ID, INTERNALDATE and size.  Messages that match nothing are
copied, so a run interrupted at any point and started again copies only
what is still missing and never copies a message twice.
"""

from __future__ import annotations

from collections import defaultdict, deque
from typing import Iterable, Iterator, Sequence

from twisted_mailhub.model import MessageMeta
from twisted_mailhub.sync.source import SourceMessage

Pair = tuple[SourceMessage, MessageMeta]


def same_message(source: SourceMessage, target: MessageMeta) -> bool:
    """True when the target message under a source UID is that message."""
    return (source.size == target.size
            and int(source.internaldate.timestamp()) == int(target.internaldate.timestamp()))


def uid_clashes(source: Sequence[SourceMessage], target: Sequence[MessageMeta]) -> int:
    """
    How many target messages hold a source UID but are another message:
    a UIDVALIDITY that is equal by chance, not because it was kept.
    """
    by_uid = {message.uid: message for message in source}
    return sum(1 for meta in target
               if meta.uid in by_uid and not same_message(by_uid[meta.uid], meta))


def match_by_uid(source: Sequence[SourceMessage], target: Sequence[MessageMeta],
                 ) -> tuple[list[Pair], list[SourceMessage], list[MessageMeta]]:
    """Pairs with equal UIDs, then the source and target messages left over."""
    by_uid = {meta.uid: meta for meta in target}
    pairs, left = [], []
    for message in source:
        meta = by_uid.get(message.uid)
        if meta is not None and same_message(message, meta):
            pairs.append((message, meta))
            del by_uid[message.uid]
        else:
            left.append(message)
    return pairs, left, [meta for meta in target if meta.uid in by_uid]


def fingerprint(message_id: str | None, meta: SourceMessage | MessageMeta) -> tuple:
    """What recognises a message whose UID changed."""
    return (message_id, int(meta.internaldate.timestamp()), meta.size)


def match_by_fingerprint(source: Sequence[SourceMessage],
                         target: Iterable[tuple[MessageMeta, str | None]],
                         ) -> tuple[list[Pair], list[SourceMessage]]:
    """
    Pairs of equal fingerprints (C{target} holds each meta with its
    Message-ID), then the source messages left over.  Copies of one
    message pair up one to one.
    """
    pool: dict[tuple, deque[MessageMeta]] = defaultdict(deque)
    for meta, message_id in target:
        pool[fingerprint(message_id, meta)].append(meta)
    pairs, left = [], []
    for message in source:
        found = pool.get(fingerprint(message.message_id, message))
        if found:
            pairs.append((message, found.popleft()))
        else:
            left.append(message)
    return pairs, left


def flag_changes(pairs: Iterable[Pair]) -> dict[frozenset[str], list[int]]:
    """Target UIDs to set to each flag set, for the pairs whose flags differ."""
    changes: dict[frozenset[str], list[int]] = defaultdict(list)
    for message, meta in pairs:
        if message.flags != meta.flags:
            changes[message.flags].append(meta.uid)
    return dict(changes)


def assign_uids(missing: Sequence[SourceMessage], keep: bool, uidnext: int,
                ) -> list[tuple[SourceMessage, int | None]]:
    """
    Each missing message with the UID to ask for (C{None}: a new one), in
    the order to append them: when UIDs are kept, those the target can
    still give (at least its UIDNEXT) first, ascending; the others after.
    """
    if not keep:
        return [(message, None) for message in missing]
    ordered = sorted(missing, key=lambda m: m.uid)
    kept = [(m, m.uid) for m in ordered if m.uid >= uidnext]
    return kept + [(m, None) for m in ordered if m.uid < uidnext]


def batches(items: Sequence[tuple[SourceMessage, int | None]], count: int, size: int,
            ) -> Iterator[list[tuple[SourceMessage, int | None]]]:
    """
    C{items} in runs of at most C{count} messages and about C{size} bytes
    (a larger message goes alone), which bounds what is held in memory.
    """
    batch: list[tuple[SourceMessage, int | None]] = []
    total = 0
    for item in items:
        if batch and (len(batch) >= count or total + item[0].size > size):
            yield batch
            batch, total = [], 0
        batch.append(item)
        total += item[0].size
    if batch:
        yield batch
