"""
The values a SASL server mechanism returns, and the shape of a mechanism.

Mechanisms are sans-IO state machines: no sockets, no reactor, no portal.
The caller (L{twisted_mailhub.auth.sasl.run_sasl}) drives one like this::

    step = mechanism.start(initial_response_or_None)
    loop:
        Challenge(data)          -> send data, step = mechanism.step(response)
        Verify(credentials)      -> ask the portal; step = mechanism.verified(
                                        avatar_id or None)
        NeedScramCredentials(u)  -> look up u; step = mechanism.scram_credentials(
                                        ScramCredentials or None)
        Success(final, avatar_id) -> done (send ``final`` first if not None)
        Failure(reason)          -> done, authentication failed

Calling a mechanism method that does not fit its current state raises
L{MechanismStateError}: a bug in the caller, not a client error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, Union


@dataclass(frozen=True, slots=True)
class Challenge:
    """Send C{data} to the client and feed its response to C{step()}."""

    data: bytes


@dataclass(frozen=True, slots=True)
class Verify:
    """
    Check these twisted.cred credentials with the portal, then call
    C{verified(avatar_id)} (C{None} when the portal refused them).
    """

    credentials: Any


@dataclass(frozen=True, slots=True)
class NeedScramCredentials:
    """
    Find the stored SCRAM keys of C{username} (str) and call
    C{scram_credentials(found_or_None)}.
    """

    username: str


@dataclass(frozen=True, slots=True)
class Success:
    """
    Authenticated as C{avatar_id}.  C{server_final} is additional data to
    give the client with the outcome (IMAP and POP3 send it as one more
    challenge and expect an empty response), or C{None}.
    """

    server_final: bytes | None
    avatar_id: Any


@dataclass(frozen=True, slots=True)
class Failure:
    """
    Authentication failed.  C{reason} is for the server log; it may say
    more than a client should learn.
    """

    reason: str


Step = Union[Challenge, Verify, NeedScramCredentials, Success, Failure]


class MechanismStateError(RuntimeError):
    """A mechanism method was called in a state where it makes no sense."""


class Mechanism(Protocol):
    """What every server mechanism provides (one instance per exchange)."""

    name: str
    sends_plaintext: bool
    username: str | None  # the user name the client gave, once known (for logs)

    def start(self, initial: bytes | None) -> Step:
        """Begin, with the client's initial response if it sent one."""

    def step(self, response: bytes) -> Step:
        """The client's (base64-decoded) response to the last challenge."""

    def verified(self, avatar_id: Any) -> Step:
        """The portal's answer to the last L{Verify}: an avatar id or None."""
