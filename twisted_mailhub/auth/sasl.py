"""
SASL (RFC 4422) for the IMAP AUTHENTICATE and POP3 AUTH commands.

The mechanisms themselves are sans-IO (L{twisted_mailhub.auth.steps});
L{run_sasl} is the one driver both protocols use.  A protocol:

  1. advertises L{sasl_mechanisms}C{(secure)};
  2. on AUTHENTICATE/AUTH, calls L{run_sasl} with callables that send a
     challenge (the protocol base64-encodes it and writes ``+ ...``) and
     that return the next client line base64-decoded (raising
     L{SASLCancelled} for ``*``);
  3. maps L{SASLFailure} to ``NO``/``-ERR`` and L{SASLCancelled} to
     ``BAD``/``-ERR``; on success it has the avatar from the portal.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from twisted.cred.error import UnauthorizedLogin, UnhandledCredentials
from twisted.cred.portal import Portal
from twisted.internet.defer import maybeDeferred

from twisted_mailhub.auth.credentials import IScramVerified
from twisted_mailhub.auth.plain import LoginMechanism, PlainMechanism
from twisted_mailhub.auth.scram import ScramSha256Mechanism
from twisted_mailhub.auth.steps import (
    Challenge,
    Failure,
    NeedScramCredentials,
    Success,
    Verify,
)

# In order of preference when advertised.
MECHANISMS: dict[str, Callable[[], Any]] = {
    "SCRAM-SHA-256": ScramSha256Mechanism,
    "PLAIN": PlainMechanism,
    "LOGIN": LoginMechanism,
}

# An exchange needs at most a few round trips; this stops a client looping.
MAX_ROUND_TRIPS = 10


class SASLFailure(Exception):
    """
    Authentication failed.  C{reason} is for the server log only: clients
    get a generic message (e.g. ``NO [AUTHENTICATIONFAILED]``).
    """

    def __init__(self, reason: str, username: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        # The user name the client gave, if it got that far (for the log).
        self.username = username


class UnknownMechanism(SASLFailure):
    """The client asked for a mechanism this server does not offer."""


class SASLCancelled(Exception):
    """The client cancelled the exchange (sent ``*``)."""


def sasl_mechanisms(secure: bool) -> list[str]:
    """
    Mechanism names to advertise.  PLAIN and LOGIN send the password as is,
    so they are offered only when C{secure} (TLS, or a loopback connection
    the admin's policy trusts); RFC 9051 section 6.2.2.
    """
    return [
        name for name, factory in MECHANISMS.items()
        if secure or not factory.sends_plaintext
    ]


def sends_plaintext(mechanism_name: str) -> bool:
    """True if the named mechanism sends the password itself."""
    factory = MECHANISMS.get(mechanism_name.upper())
    return bool(factory and factory.sends_plaintext)


def create_mechanism(mechanism_name: str) -> Any:
    """A fresh mechanism object for C{mechanism_name}; L{UnknownMechanism}."""
    factory = MECHANISMS.get(mechanism_name.upper())
    if factory is None:
        raise UnknownMechanism(f"unsupported SASL mechanism {mechanism_name!r}")
    return factory()


async def _portal_login(portal: Portal, credentials: Any, interfaces: tuple) -> tuple | None:
    """
    What C{Portal.login} does, keeping the avatar id it does not return:
    C{(avatar_id, avatar, logout)}, or C{None} if the credentials are refused.
    """
    for iface, checker in portal.checkers.items():
        if iface.providedBy(credentials):
            try:
                avatar_id = await maybeDeferred(checker.requestAvatarId, credentials)
            except (UnauthorizedLogin, UnhandledCredentials):
                return None
            _, avatar, logout = await maybeDeferred(
                portal.realm.requestAvatar, avatar_id, None, *interfaces
            )
            return avatar_id, avatar, logout
    return None


async def run_sasl(
    mechanism_name: str,
    initial: bytes | None,
    portal: Portal,
    send_challenge: Callable[[bytes], Any],
    receive_response: Callable[[], Awaitable[bytes]],
    *interfaces: Any,
    allow_plaintext: bool = True,
) -> tuple[Any, Any, Callable[[], None]]:
    """
    Run one SASL exchange and log in through C{portal}.

    C{initial} is the decoded initial response (C{None} if the client sent
    none; ``b""`` for IMAP's ``=``).  C{send_challenge(data)} may return an
    awaitable.  Returns C{(avatar_id, avatar, logout)}.  Raises
    L{SASLFailure} (L{UnknownMechanism} included), L{SASLCancelled} from
    C{receive_response}, and lets other errors (a store that is down)
    propagate.  With C{allow_plaintext} false, PLAIN and LOGIN fail.

    SCRAM asks for the user's keys from the checker the portal holds for
    L{IScramVerified}, via its C{scram_credentials(username)} method.
    """
    mechanism = create_mechanism(mechanism_name)
    if mechanism.sends_plaintext and not allow_plaintext:
        raise SASLFailure(f"{mechanism.name} refused on an unprotected connection")
    step = mechanism.start(initial)
    login: tuple | None = None
    round_trips = 0
    try:
        while True:
            if isinstance(step, Challenge):
                round_trips += 1
                if round_trips > MAX_ROUND_TRIPS:
                    raise SASLFailure(f"{mechanism.name}: too many round trips")
                await _maybe_await(send_challenge(step.data))
                step = mechanism.step(await receive_response())
            elif isinstance(step, NeedScramCredentials):
                source = getattr(portal.checkers.get(IScramVerified), "scram_credentials", None)
                found = await source(step.username) if source is not None else None
                step = mechanism.scram_credentials(found)
            elif isinstance(step, Verify):
                login = await _portal_login(portal, step.credentials, interfaces)
                step = mechanism.verified(login[0] if login else None)
            elif isinstance(step, Success):
                if login is None:
                    raise SASLFailure(f"{mechanism.name}: success without a login")
                if step.server_final is not None:
                    # Neither IMAP nor POP3 can carry data with the final OK: send
                    # it as a challenge; the client answers with an empty line
                    # (RFC 4422 section 5, item 3; RFC 5034 section 4).
                    await _maybe_await(send_challenge(step.server_final))
                    if await receive_response() != b"":
                        raise SASLFailure(f"{mechanism.name}: unexpected data after success")
                _, avatar, logout = login
                return step.avatar_id, avatar, logout
            elif isinstance(step, Failure):
                raise SASLFailure(step.reason, getattr(mechanism, "username", None))
            else:  # pragma: no cover - a mechanism bug
                raise TypeError(f"unexpected SASL step {step!r}")
    except BaseException:
        if login is not None:
            login[2]()
        raise


async def _maybe_await(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value
