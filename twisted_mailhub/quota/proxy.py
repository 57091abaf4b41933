"""
Quota enforcement as a wrapper around any backend, in one place for every
protocol: IMAP, LMTP, ``mailhub deliver`` and the admin commands all open
their store with L{twisted_mailhub.service.open_configured_backend}, which
puts a L{QuotaBackend} in front of it when quotas are in force.

  - L{QuotaBackend.open_store} gives a user without limits the wrapped
    backend's own store, untouched (no cost on any later call), and a user
    with limits a L{QuotaMailStore};
  - a L{QuotaMailStore} is the user's store with one more interface,
    L{IQuotaRoot}; its C{get_mailbox} returns L{QuotaMailbox}es;
  - a L{QuotaMailbox} checks C{append} and C{copy_to} (and C{move_to}
    into another root) against the limits of the root the messages go to,
    raising L{OverQuota} before anything is stored.

Each wrapper provides every interface the wrapped object provides and
passes every other attribute through, so optional capabilities (a fast
COPY, SEARCH pushed down to SQL, a store's user table) keep working.  A
backend recognises its own mailboxes by type; the wrappers hand it the
unwrapped destination of a COPY or MOVE.

A MOVE between mailboxes of one root changes neither the number of
messages nor their total size, so it is never refused, even for a user
already over a limit (say, after the limit was lowered); a store that
cannot move in one step copies and then removes, without a check between.
"""

from __future__ import annotations

from typing import Any, Hashable, Iterable
from weakref import WeakValueDictionary

from twisted.internet.defer import DeferredLock
from zope.interface import implementer, providedBy
from zope.interface.declarations import directlyProvides

from twisted_mailhub.backends.base import move_messages
from twisted_mailhub.interfaces import (
    IBackend,
    ICopyableMailbox,
    IMailbox,
    IMailStore,
    IMoveableMailbox,
    IQuotaLimits,
)
from twisted_mailhub.model import AppendRequest, MessageMeta
from twisted_mailhub.quota.account import ROOT, IQuotaRoot, QuotaAccount, QuotaReport
from twisted_mailhub.quota.limits import QuotaLimits, QuotaSettings


def quota_backend(backend: IBackend, settings: QuotaSettings) -> IBackend:
    """
    C{backend} behind a L{QuotaBackend} when quotas can apply to it: the
    settings limit someone, or the backend keeps limits of its own
    (L{IQuotaLimits}).  Otherwise C{backend} itself.
    """
    if isinstance(backend, QuotaBackend):
        return backend
    if not settings.configured and not IQuotaLimits.providedBy(backend):
        return backend
    return QuotaBackend(backend, settings)


class QuotaBackend:
    """
    An L{IBackend} (with whatever else C{backend} provides) whose users'
    stores enforce their limits: the C{settings}' default and per-user
    overrides, and those C{backend} keeps (L{IQuotaLimits}), which win.
    """

    def __init__(self, backend: IBackend, settings: QuotaSettings) -> None:
        self._inner = backend
        self.quota_settings = settings
        # One lock per user, shared by the accounts of that user alive in
        # this process.
        self._locks: WeakValueDictionary[str, DeferredLock] = WeakValueDictionary()
        directlyProvides(self, providedBy(backend))

    def __getattr__(self, name: str) -> Any:
        # Only reached for what this class does not define itself.
        return getattr(self._inner, name)

    def __repr__(self) -> str:
        return f"<QuotaBackend {self._inner!r}>"

    @property
    def inner(self) -> IBackend:
        """The wrapped backend."""
        return self._inner

    async def limits_for(self, username: str) -> QuotaLimits:
        """The limits of C{username}: settings, then what the store keeps."""
        kept = None
        own = IQuotaLimits(self._inner, None)
        if own is not None:
            kept = await own.quota_limits(username)
        return self.quota_settings.limits_for(username, kept)

    async def open_store(self, username: str) -> IMailStore:
        """The user's store: wrapped in a L{QuotaMailStore} when limited."""
        store = await self._inner.open_store(username)
        limits = await self.limits_for(username)
        if limits.unlimited:
            return store
        return QuotaMailStore(store, self.account(username, store, limits))

    def account(self, username: str, store: IMailStore, limits: QuotaLimits) -> QuotaAccount:
        """A L{QuotaAccount} of C{username} sharing this process's lock for the user."""
        lock = self._locks.get(username)
        if lock is None:
            lock = DeferredLock()
            self._locks[username] = lock
        key: Hashable = (id(self._inner), username)
        return QuotaAccount(username, store, limits, lock, key)


@implementer(IQuotaRoot)
class QuotaMailStore:
    """
    The L{IMailStore} of a user with limits: the wrapped C{store}, whose
    mailboxes are L{QuotaMailbox}es, and L{IQuotaRoot}.
    """

    quota_root = ROOT

    def __init__(self, store: IMailStore, account: QuotaAccount) -> None:
        self._inner = store
        self.account = account
        directlyProvides(self, providedBy(store))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def __repr__(self) -> str:
        return f"<QuotaMailStore {self._inner!r}>"

    @property
    def inner(self) -> IMailStore:
        """The wrapped store."""
        return self._inner

    async def get_mailbox(self, name: str, read_only: bool = False) -> "QuotaMailbox":
        """The wrapped store's mailbox C{name}, checked against the limits."""
        return QuotaMailbox(await self._inner.get_mailbox(name, read_only), self.account)

    async def quota(self) -> QuotaReport:
        """L{IQuotaRoot}: the limits and the current usage."""
        return await self.account.report()


class QuotaMailbox:
    """
    An L{IMailbox} (with whatever C{mailbox} provides, and always
    L{IMoveableMailbox}) whose additions are checked against C{account}.
    """

    def __init__(self, mailbox: IMailbox, account: QuotaAccount) -> None:
        self._inner = mailbox
        self.account = account
        directlyProvides(self, providedBy(mailbox), IMoveableMailbox)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def __repr__(self) -> str:
        return f"<QuotaMailbox {self._inner!r}>"

    @property
    def inner(self) -> IMailbox:
        """The wrapped mailbox."""
        return self._inner

    async def append(self, requests: Iterable[AppendRequest], origin: Hashable | None = None,
                     ) -> list[MessageMeta]:
        """L{IMailbox.append}, refused with L{OverQuota} when over a limit."""
        requests = list(requests)
        if not requests:
            return await self._inner.append(requests, origin=origin)
        octets = sum(len(request.content) for request in requests)
        async with self.account.adding(len(requests), octets):
            return await self._inner.append(requests, origin=origin)

    async def copy_to(self, uids: Iterable[int], destination: Any, origin: Hashable | None = None,
                      ) -> list[tuple[int, int]] | None:
        """
        L{ICopyableMailbox.copy_to} of the wrapped mailbox into the
        unwrapped C{destination}, checked against the destination's root.
        C{None} when the wrapped mailbox cannot copy there itself (the
        caller then appends to C{destination}, which checks).
        """
        copyable = ICopyableMailbox(self._inner, None)
        if copyable is None:
            return None
        target, account = unwrap(destination)
        uids = sorted(set(uids))
        if account is None or not uids:
            return await copyable.copy_to(uids, target, origin=origin)
        metas = await self._inner.metadata(uids)
        async with account.adding(len(metas), sum(meta.size for meta in metas)):
            return await copyable.copy_to(uids, target, origin=origin)

    async def move_to(self, uids: Iterable[int], destination: Any, origin: Hashable | None = None,
                      ) -> list[tuple[int, int]]:
        """
        L{IMoveableMailbox.move_to}: by the wrapped mailbox's own move when
        it has one that takes C{destination}, else by copying and removing
        (L{move_messages}).  Checked only when C{destination} is in another
        quota root: within one root a move adds nothing.
        """
        target, account = unwrap(destination)
        uids = sorted(set(uids))
        if account is None or account.same_root(self.account) or not uids:
            return await self._move(uids, target, origin)
        metas = await self._inner.metadata(uids)
        async with account.adding(len(metas), sum(meta.size for meta in metas)):
            return await self._move(uids, target, origin)

    async def _move(self, uids: list[int], target: IMailbox, origin: Hashable | None,
                    ) -> list[tuple[int, int]]:
        pairs, _ = await move_messages(self._inner, target, uids, origin=origin)
        return pairs


def unwrap(mailbox: Any) -> tuple[Any, QuotaAccount | None]:
    """
    C{(backend's mailbox, account)} for a L{QuotaMailbox} (also behind a
    session's index view, L{twisted_mailhub.index.IndexedMailbox}); C{(mailbox,
    None)} for any other mailbox, whose additions are not limited.
    """
    if not isinstance(mailbox, QuotaMailbox):
        wrapped = getattr(mailbox, "wrapped", None)
        if not isinstance(wrapped, QuotaMailbox):
            return mailbox, None
        mailbox = wrapped
    return mailbox.inner, mailbox.account
