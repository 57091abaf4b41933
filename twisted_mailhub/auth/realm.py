"""The twisted.cred realm that turns an authenticated user into a mail store."""

from __future__ import annotations

from typing import Any

from twisted.cred.portal import IRealm
from twisted.internet.defer import Deferred
from zope.interface import implementer

from twisted_mailhub.interfaces import IBackend, IMailStore


@implementer(IRealm)
class MailhubRealm:
    """
    Gives each authenticated user the L{IMailStore} of C{backend}.

    Avatar ids may be str or UTF-8 bytes (Twisted's own checkers use bytes).
    """

    def __init__(self, backend: IBackend) -> None:
        self.backend = backend

    def requestAvatar(self, avatarId: Any, mind: Any, *interfaces: Any) -> Deferred:
        """
        Deferred firing C{(IMailStore, store, logout)}; raises
        L{NotImplementedError} when IMailStore is not among C{interfaces}
        (the convention of twisted.cred realms).
        """
        if IMailStore not in interfaces:
            raise NotImplementedError("MailhubRealm only provides IMailStore")
        username = avatarId.decode("utf-8") if isinstance(avatarId, bytes) else str(avatarId)
        return Deferred.fromCoroutine(self._open(username))

    async def _open(self, username: str) -> tuple[Any, Any, Any]:
        store = await self.backend.open_store(username)
        return IMailStore, store, lambda: None
