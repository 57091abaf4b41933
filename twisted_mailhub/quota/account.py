"""
A user's quota root: the limits, the usage they are checked against, and
the check itself.

There is one root per user, named C{""} (as most servers name it): every
mailbox of the user's tree is in it, and what any protocol adds to the tree
counts against it.

Checks made by the sessions of one process for one user are serialised (one
check and write at a time per user), so two APPENDs in one server cannot
both pass at the limit.  Writes by other processes sharing the store (a
second server, ``mailhub deliver``) are not: two of them racing at the
limit may both be accepted, and the user ends slightly over, which the next
addition then sees.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, AsyncIterator, Hashable

from twisted.internet.defer import DeferredLock
from zope.interface import Attribute, Interface

from twisted_mailhub.errors import OverQuota
from twisted_mailhub.interfaces import IMailStore
from twisted_mailhub.quota.limits import QuotaLimits, format_octets
from twisted_mailhub.quota.usage import QuotaUsage, measure

#: The name of the one quota root of each user (RFC 9208 section 3.2).
ROOT = ""


@dataclass(frozen=True, slots=True)
class QuotaReport:
    """A quota root's C{limits} and current C{usage}."""

    root: str
    limits: QuotaLimits
    usage: QuotaUsage


class IQuotaRoot(Interface):
    """
    Provided by the L{IMailStore} of a user who has limits
    (L{twisted_mailhub.quota.proxy.QuotaMailStore}): the user's one root.
    """

    quota_root = Attribute('The name of the root (str): always "".')

    def quota():
        """Asynchronous.  The L{QuotaReport} of the root: limits and current usage."""


class QuotaAccount:
    """
    The quota root of C{username}: its C{limits}, measured on C{store} (the
    unwrapped L{IMailStore}).  C{lock} is shared by every account of that
    user in this process; C{key} tells roots apart (same key, same root).
    """

    root = ROOT

    def __init__(self, username: str, store: IMailStore, limits: QuotaLimits,
                 lock: DeferredLock, key: Hashable) -> None:
        self.username = username
        self.store = store
        self.limits = limits
        self.lock = lock
        self.key = key

    def __repr__(self) -> str:
        return f"<QuotaAccount {self.username!r} {self.limits}>"

    async def usage(self) -> QuotaUsage:
        """What the user's tree holds now."""
        return await measure(self.store)

    async def report(self) -> QuotaReport:
        """The limits with the current usage."""
        return QuotaReport(self.root, self.limits, await self.usage())

    def refusal(self, usage: QuotaUsage, messages: int, octets: int) -> str | None:
        """
        Why adding C{messages} messages of C{octets} octets to C{usage}
        would go over a limit, or C{None} when it would not.  Reaching a
        limit exactly is allowed.
        """
        after = usage.plus(messages, octets)
        limits = self.limits
        if limits.messages is not None and messages and after.messages > limits.messages:
            return (f"Quota exceeded: {after.messages} messages would be over the limit "
                    f"of {limits.messages}")
        if limits.storage is not None and octets and after.storage > limits.storage:
            return (f"Quota exceeded: {after.storage} octets would be over the limit "
                    f"of {limits.storage} ({format_octets(limits.storage)})")
        return None

    @asynccontextmanager
    async def adding(self, messages: int, octets: int) -> AsyncIterator[None]:
        """
        Hold this user's lock, check that C{messages} messages of C{octets}
        octets fit, and run the body that adds them; raise L{OverQuota}
        (before the body) when they do not fit.
        """
        await self.lock.acquire()
        try:
            problem = self.refusal(await self.usage(), messages, octets)
            if problem is not None:
                raise OverQuota(problem)
            yield
        finally:
            self.lock.release()

    def same_root(self, other: Any) -> bool:
        """True when C{other} is an account of this same root."""
        return isinstance(other, QuotaAccount) and other.key == self.key
