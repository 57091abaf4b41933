"""
The plaintext-password SASL mechanisms: PLAIN (RFC 4616) and LOGIN.

Both end in L{Verify} with a L{twisted.cred.credentials.UsernamePassword}
holding str values.  Neither may be offered on an unprotected connection
(RFC 9051 section 6.2.2), hence C{sends_plaintext = True}.
"""

from __future__ import annotations

from typing import Any

from twisted.cred.credentials import UsernamePassword

from twisted_mailhub.auth.steps import (
    Challenge,
    Failure,
    MechanismStateError,
    Step,
    Success,
    Verify,
)


class _PasswordMechanism:
    sends_plaintext = True
    name = ""

    def __init__(self) -> None:
        self._state = "new"
        self.username: str | None = None

    def verified(self, avatar_id: Any) -> Step:
        if self._state != "verify":
            raise MechanismStateError(f"{self.name}: verified() in state {self._state}")
        self._state = "done"
        if avatar_id is None:
            return Failure(f"{self.name}: invalid credentials")
        return Success(None, avatar_id)

    def _fail(self, reason: str) -> Failure:
        self._state = "done"
        return Failure(reason)


class PlainMechanism(_PasswordMechanism):
    """
    PLAIN: one message ``[authzid] NUL authcid NUL passwd`` in UTF-8.

    Proxy authentication is not supported: the authzid must be empty or
    equal to the authcid (RFC 4616 section 2 lets the server refuse it).
    """

    name = "PLAIN"

    def start(self, initial: bytes | None) -> Step:
        if self._state != "new":
            raise MechanismStateError("PLAIN: start() called twice")
        if initial is None:
            # RFC 4422 section 5 (2a): no initial response, so an empty challenge.
            self._state = "message"
            return Challenge(b"")
        self._state = "message"
        return self.step(initial)

    def step(self, response: bytes) -> Step:
        if self._state != "message":
            raise MechanismStateError(f"PLAIN: step() in state {self._state}")
        parts = response.split(b"\0")
        if len(parts) != 3:
            return self._fail("PLAIN: message does not have exactly three fields")
        try:
            authzid, authcid, passwd = (p.decode("utf-8") for p in parts)
        except UnicodeDecodeError:
            return self._fail("PLAIN: message is not UTF-8")
        self.username = authcid or None
        if not authcid or not passwd:
            return self._fail("PLAIN: empty user name or password")
        if authzid and authzid != authcid:
            return self._fail("PLAIN: authorization identity differs from user (no proxy)")
        self._state = "verify"
        return Verify(UsernamePassword(authcid, passwd))


class LoginMechanism(_PasswordMechanism):
    """
    LOGIN (an old, widely deployed mechanism with no RFC): the server asks
    ``Username:`` then ``Password:``.  Clients that send the user name as an
    initial response skip the first prompt.
    """

    name = "LOGIN"

    def start(self, initial: bytes | None) -> Step:
        if self._state != "new":
            raise MechanismStateError("LOGIN: start() called twice")
        self._state = "username"
        if initial is None:
            return Challenge(b"Username:")
        return self.step(initial)

    def step(self, response: bytes) -> Step:
        if self._state not in ("username", "password"):
            raise MechanismStateError(f"LOGIN: step() in state {self._state}")
        try:
            text = response.decode("utf-8")
        except UnicodeDecodeError:
            return self._fail("LOGIN: response is not UTF-8")
        if self._state == "username":
            if not text or "\0" in text:
                return self._fail("LOGIN: empty or invalid user name")
            self.username = text
            self._state = "password"
            return Challenge(b"Password:")
        if not text or "\0" in text:
            return self._fail("LOGIN: empty or invalid password")
        self._state = "verify"
        return Verify(UsernamePassword(self.username, text))
