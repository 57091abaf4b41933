"""
Measuring what a user's tree holds: the number of messages and the sum of
their sizes over all mailboxes.

The cost is one step per mailbox, never one per message: a store that
totals its tree itself (L{IUsageQuery}, the SQL store: one query) is asked
once; otherwise every selectable mailbox's L{MailboxStatus} is read (by
L{IStatusQuery} when the store has it).  Only a store whose status does not
report sizes (a non-empty mailbox with a C{size} of 0) has the sizes of
that mailbox's messages added up from their metadata.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from twisted_mailhub.errors import MailboxNotFound, NotSelectable
from twisted_mailhub.interfaces import IMailbox, IMailStore, IStatusQuery, IUsageQuery

#: UIDs whose metadata is read at once by the size fallback.
_BATCH = 1000


@dataclass(frozen=True, slots=True)
class QuotaUsage:
    """What a user's tree holds: C{messages}, and C{storage} in octets."""

    messages: int = 0
    storage: int = 0

    def plus(self, messages: int, storage: int) -> "QuotaUsage":
        """The usage after adding C{messages} messages of C{storage} octets."""
        return QuotaUsage(self.messages + messages, self.storage + storage)


async def measure(store: IMailStore) -> QuotaUsage:
    """The current L{QuotaUsage} of C{store}'s whole tree."""
    totals = IUsageQuery(store, None)
    if totals is not None:
        messages, octets = await totals.usage()
        return QuotaUsage(int(messages), int(octets))
    query = IStatusQuery(store, None)
    messages = octets = 0
    for info in await store.list_mailboxes():
        if not info.selectable:
            continue
        mailbox = None
        try:
            if query is not None:
                status = await query.mailbox_status(info.name)
            else:
                mailbox = await store.get_mailbox(info.name, read_only=True)
                status = await mailbox.status()
            size = status.size
            if status.messages and not size:
                if mailbox is None:
                    mailbox = await store.get_mailbox(info.name, read_only=True)
                size = await sum_of_sizes(mailbox)
        except (MailboxNotFound, NotSelectable):
            # Deleted (or made a hierarchy node) since the listing.
            continue
        messages += status.messages
        octets += size
    return QuotaUsage(messages, octets)


async def sum_of_sizes(mailbox: IMailbox) -> int:
    """The sum of the sizes of C{mailbox}'s messages, from their metadata."""
    uids: list[Any] = await mailbox.uids()
    total = 0
    for start in range(0, len(uids), _BATCH):
        total += sum(meta.size for meta in await mailbox.metadata(uids[start:start + _BATCH]))
    return total
