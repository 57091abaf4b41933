"""
Credentials specific to this package, and the SCRAM key record.

Passwords arrive as the standard
L{twisted.cred.credentials.IUsernamePassword} (IMAP LOGIN, PLAIN, LOGIN,
POP3 USER/PASS).  SCRAM never reveals the password to the server, so once a
SCRAM mechanism has checked the client's proof it asks the portal with
L{ScramVerified}, which only says "this user proved knowledge of the keys";
checkers that can hand out SCRAM keys also accept it, which confirms that the
user still exists and lets the portal return the avatar.
"""

from __future__ import annotations

from dataclasses import dataclass

from twisted.cred.credentials import ICredentials
from zope.interface import Attribute, implementer


class IScramVerified(ICredentials):
    """A SCRAM exchange already verified the client proof for C{username}."""

    username = Attribute("The authenticated user name (str).")


@implementer(IScramVerified)
@dataclass(frozen=True, slots=True)
class ScramVerified:
    """See L{IScramVerified}.  Produced only by the SCRAM mechanism."""

    username: str


@dataclass(frozen=True, slots=True)
class ScramCredentials:
    """
    What a server stores for SCRAM-SHA-256 (RFC 5802 section 3): the salt,
    the iteration count, StoredKey = H(ClientKey) and ServerKey.
    """

    salt: bytes
    iterations: int
    stored_key: bytes
    server_key: bytes


def as_text(value: str | bytes) -> str:
    """
    A user name or password as str.  Twisted's own protocols pass bytes;
    those are decoded as UTF-8 (L{UnicodeDecodeError} for anything else).
    """
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return value
