"""
twisted.cred checkers for user names and passwords.

Every checker here accepts two kinds of credentials:

  - L{IUsernamePassword} (IMAP LOGIN, SASL PLAIN and LOGIN, POP3 USER/PASS),
    checked against a stored ``{SCHEME}hash`` by a L{PasswordVerifier}:
    good schemes are slow and big on purpose, so slow checks run in the
    verifier's own threads, a bounded number at a time.  A user that does
    not exist costs a check against a dummy hash of the same scheme and work
    factor as the users' (L{StoredPasswordChecker.typical_stored}), through
    the same verifier, so response time does not reveal whether a name
    exists.
  - L{IScramVerified}, which SCRAM produces after checking the client's
    proof itself; it is accepted for any user the checker knows.

and offers C{scram_credentials(username)}, the SCRAM-SHA-256 keys of a user
(derived from a plaintext entry, parsed from a ``{SCRAM-SHA-256}`` one,
C{None} for bcrypt/argon2/... entries, which cannot yield them).

Avatar ids are the user name as str.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import IUsernamePassword
from twisted.cred.error import UnauthorizedLogin, UnhandledCredentials
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.logger import Logger
from zope.interface import implementer

from twisted_mailhub.auth.credentials import IScramVerified, ScramCredentials, as_text
from twisted_mailhub.auth.schemes import (
    DEFAULT_SCHEME,
    scheme_of,
    scram_credentials_from_stored,
)
from twisted_mailhub.auth.verifier import PasswordVerifier, default_verifier

_log = Logger()


@implementer(ICredentialsChecker)
class StoredPasswordChecker:
    """
    Base class: subclasses provide C{lookup_stored(username)}, an
    asynchronous method returning the stored ``{SCHEME}hash`` or C{None}.
    """

    credentialInterfaces = (IUsernamePassword, IScramVerified)

    def __init__(self, verifier: PasswordVerifier | None = None) -> None:
        self._typical_scheme = DEFAULT_SCHEME
        self._typical_stored: str | None = None
        self._verifier = verifier

    @property
    def verifier(self) -> PasswordVerifier:
        """The verifier that checks passwords: the process's shared one by default."""
        return self._verifier if self._verifier is not None else default_verifier()

    async def lookup_stored(self, username: str) -> str | None:
        """The stored password of C{username}, or C{None} if unknown."""
        raise NotImplementedError

    def typical_scheme(self) -> str:
        """The scheme hashed for unknown users: the one most users have."""
        return self._typical_scheme

    def typical_stored(self) -> str:
        """
        What an unknown user's password is checked like: a stored value of
        a real user (whose scheme and work factor the dummy copies), or the
        bare ``{SCHEME}`` of L{typical_scheme} (that scheme's defaults, which
        is what C{mailhub adduser} hashes with).
        """
        stored = self._typical_stored
        if stored is not None and scheme_of(stored) == self.typical_scheme():
            return stored
        return "{%s}" % self.typical_scheme()

    def requestAvatarId(self, credentials: Any) -> Deferred:
        """Deferred firing the user name (str) or failing L{UnauthorizedLogin}."""
        return Deferred.fromCoroutine(self._check(credentials))

    async def _check(self, credentials: Any) -> str:
        if IScramVerified.providedBy(credentials):
            if await self.lookup_stored(credentials.username) is None:
                raise UnauthorizedLogin()
            return credentials.username
        if not IUsernamePassword.providedBy(credentials):
            raise UnhandledCredentials()
        try:
            username = as_text(credentials.username)
            password = as_text(credentials.password)
        except UnicodeDecodeError:
            raise UnauthorizedLogin() from None
        stored = await self.lookup_stored(username)
        if stored is None:
            await self.verifier.verify_unknown(password, self.typical_stored())
            raise UnauthorizedLogin()
        if not await self.verifier.verify(password, stored):
            raise UnauthorizedLogin()
        return username

    async def scram_credentials(self, username: str) -> ScramCredentials | None:
        """
        The SCRAM-SHA-256 keys of C{username}, or C{None} if the user is
        unknown or stored with a scheme SCRAM cannot use.  Deriving them is
        as costly as a password check, and is bounded by the same verifier.
        """
        stored = await self.lookup_stored(username)
        if stored is None:
            return None
        return await self.verifier.run(scram_credentials_from_stored, stored, username)


class InMemoryChecker(StoredPasswordChecker):
    """
    Plaintext passwords in a dict, for trials and tests:
    C{InMemoryChecker({"alice": "secret"})}.
    """

    def __init__(self, users: dict[str, str], verifier: PasswordVerifier | None = None) -> None:
        super().__init__(verifier)
        self._users = dict(users)
        self._typical_scheme = "PLAIN"

    async def lookup_stored(self, username: str) -> str | None:
        password = self._users.get(username)
        return None if password is None else "{PLAIN}" + password


class HashedPasswordChecker(StoredPasswordChecker):
    """
    Passwords looked up by C{lookup(username)}: an async callable (or one
    returning a Deferred or a plain value) giving the stored
    ``"{SCHEME}hash"`` or C{None}.  The SQL backend's users table is one
    such source.
    """

    def __init__(self, lookup: Callable[[str], Awaitable[str | None] | str | None],
                 verifier: PasswordVerifier | None = None) -> None:
        super().__init__(verifier)
        self._lookup = lookup

    async def lookup_stored(self, username: str) -> str | None:
        result = self._lookup(username)
        if inspect.isawaitable(result):
            result = await result
        if result is not None:
            scheme = scheme_of(result)
            if scheme is not None:
                # The users' own hashing, parameters and all, is what an
                # unknown user's check must cost.
                self._typical_scheme = scheme
                self._typical_stored = result
        return result


@implementer(ICredentialsChecker)
class ChainedChecker:
    """
    Several checkers tried in turn.  A portal keeps one checker per
    credentials interface, so a server with users in several places
    registers one chain.  The first checker that accepts wins; errors other
    than a refusal (a database being down) propagate at once.
    """

    def __init__(self, checkers: Iterable[Any]) -> None:
        self.checkers = list(checkers)
        interfaces: list[Any] = []
        for checker in self.checkers:
            for iface in checker.credentialInterfaces:
                if iface not in interfaces:
                    interfaces.append(iface)
        self.credentialInterfaces = tuple(interfaces)

    def requestAvatarId(self, credentials: Any) -> Deferred:
        """Deferred firing the first accepting checker's avatar id."""
        return Deferred.fromCoroutine(self._check(credentials))

    async def _check(self, credentials: Any) -> Any:
        for checker in self.checkers:
            if not any(i.providedBy(credentials) for i in checker.credentialInterfaces):
                continue
            try:
                return await maybeDeferred(checker.requestAvatarId, credentials)
            except (UnauthorizedLogin, UnhandledCredentials):
                continue
        raise UnauthorizedLogin()

    async def scram_credentials(self, username: str) -> ScramCredentials | None:
        """The SCRAM keys from the first checker that has them for C{username}."""
        for checker in self.checkers:
            source = getattr(checker, "scram_credentials", None)
            if source is None:
                continue
            found = await source(username)
            if found is not None:
                return found
        return None
