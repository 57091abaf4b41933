"""
Comparing two snapshots of a user's tree of mailboxes: what another process
changed in it, told as the tree events (L{twisted_mailhub.model}) a change
made here publishes.  L{twisted_mailhub.watch.ChangeWatcher} reads the
snapshots and publishes what L{tree_changes} finds, less what L{explained}
says this process's own events told already.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Hashable

from twisted_mailhub.model import (
    MailboxCreated,
    MailboxDeleted,
    MailboxRenamed,
    SubscriptionChanged,
    TreeEvent,
)


@dataclass(frozen=True, slots=True)
class TreeSnapshot:
    """
    What one user's tree holds, as far as other processes' changes to it
    are told: C{mailboxes} maps each name (selectable or a hierarchy node)
    to C{(identity, selectable)}, where the identity is what a rename keeps
    (C{None} if the store has none: a rename is then told as a deletion and
    a creation); C{subscriptions} are the subscribed names.
    """

    mailboxes: dict[str, tuple[Hashable | None, bool]]
    subscriptions: frozenset[str]
    delimiter: str


def tree_changes(old: TreeSnapshot, new: TreeSnapshot) -> list[TreeEvent]:
    """
    The tree events that lead from C{old} to C{new}: renames (one for a
    mailbox and its inferiors renamed with it), deletions (a mailbox gone
    or become a hierarchy node), creations (one for a mailbox and the
    superiors made with it), then subscription changes.
    """
    delimiter = new.delimiter
    old_names = {ident: name for name, (ident, _) in old.mailboxes.items() if ident is not None}
    moves = sorted((old_names[ident], name) for name, (ident, _) in new.mailboxes.items()
                   if ident is not None and ident in old_names and old_names[ident] != name)
    tops: list[tuple[str, str]] = []
    for source, target in moves:
        # An inferior moved along with a superior already listed.
        if not any(source.startswith(s + delimiter) and target == t + source[len(s):]
                   for s, t in tops):
            tops.append((source, target))
    moved_from = {source for source, _ in moves}
    moved_to = {target for _, target in moves}
    events: list[TreeEvent] = [MailboxRenamed(source, target) for source, target in tops]
    was = {name for name, (_, selectable) in old.mailboxes.items() if selectable}
    now = {name for name, (_, selectable) in new.mailboxes.items() if selectable}
    events += [MailboxDeleted(name) for name in sorted(was - now) if name not in moved_from]
    created = [name for name in sorted(now - was) if name not in moved_to]
    # As a CREATE is told: by its name, its missing superiors with it.
    events += [MailboxCreated(name) for name in created
               if not any(other.startswith(name + delimiter) for other in created)]
    events += [SubscriptionChanged(name, True)
               for name in sorted(new.subscriptions - old.subscriptions)]
    events += [SubscriptionChanged(name, False)
               for name in sorted(old.subscriptions - new.subscriptions)]
    return events


def _names(event: TreeEvent) -> tuple[str, ...]:
    if isinstance(event, MailboxRenamed):
        return (event.old, event.new)
    return (event.name,)


def explained(event: TreeEvent, local: list[TreeEvent], delimiter: str) -> bool:
    """
    Whether C{event}, found by comparing snapshots, is (part of) one of the
    C{local} events: a name of one, or a superior or inferior of it (a
    CREATE makes missing superiors, a RENAME moves inferiors).
    """
    def related(a: str, b: str) -> bool:
        return a == b or a.startswith(b + delimiter) or b.startswith(a + delimiter)

    subscription = isinstance(event, SubscriptionChanged)
    return any(related(mine, theirs)
               for done in local if isinstance(done, SubscriptionChanged) == subscription
               for mine in _names(done) for theirs in _names(event))
