"""
Who has a mailbox here: the question mail delivery asks before it accepts
a recipient.

The answer comes from the same places logins are checked against: the
trial users (``--user``), the password file (``--passwd``) and the store's
own users when it keeps some (the SQL store's C{lookup_password}), so that
a user who can log in can receive mail, and nobody else.
"""

from __future__ import annotations

import inspect
from typing import Any, Awaitable, Callable, Iterable

from zope.interface import Interface, implementer

from twisted_mailhub.interfaces import IBackend


class IUserDirectory(Interface):
    """The set of user names that have a mailbox."""

    def exists(username):
        """Asynchronous.  Whether C{username} (str) is a user here (a bool)."""


Lookup = Callable[[str], Awaitable[Any] | Any]


@implementer(IUserDirectory)
class UserDirectory:
    """
    Users found through C{lookups}: callables taking a user name and
    returning (or awaiting to) something other than C{None} for a user that
    exists, such as the stored password.  They are asked in turn; the first
    that knows the name wins, and an error of one (a database that is down)
    propagates rather than being taken for "no such user".
    """

    def __init__(self, lookups: Iterable[Lookup]) -> None:
        self.lookups = list(lookups)

    async def exists(self, username: str) -> bool:
        """Whether any lookup knows C{username}."""
        if not username:
            return False
        for lookup in self.lookups:
            found = lookup(username)
            if inspect.isawaitable(found):
                found = await found
            if found is not None:
                return True
        return False


def directory_for(settings: Any, backend: IBackend) -> UserDirectory:
    """
    The L{UserDirectory} of a server configured by C{settings} (a
    L{twisted_mailhub.config.MailhubSettings}) on C{backend}: its trial
    users, its password file and the store's users, in the order logins
    try them (L{twisted_mailhub.service.make_portal}).
    """
    lookups: list[Lookup] = []
    if settings.users:
        users = dict(settings.users)
        lookups.append(users.get)
    if settings.passwd:
        from twisted_mailhub.auth.passwd import PasswdFileChecker

        lookups.append(PasswdFileChecker(settings.passwd).lookup_stored)
    lookup = getattr(backend, "lookup_password", None)
    if lookup is not None:
        lookups.append(lookup)
    return UserDirectory(lookups)
