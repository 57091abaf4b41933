"""
The AUTHORIZATION state: USER/PASS (RFC 1939 section 7), AUTH (RFC 5034)
and STLS (RFC 2595 section 4).

The plaintext policy is IMAP's: USER/PASS and the SASL mechanisms that send
the password as is are refused on an unprotected connection unless the
policy allows it.  Each attempt runs inside the shared failure throttle's
turn for the client's address (L{FailureThrottle.attempt}: one at a time per
address, delayed after failures), and failures are logged in the
fail2ban-friendly form of L{log_auth_failure}.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from twisted.cred.credentials import UsernamePassword
from twisted.cred.error import UnauthorizedLogin

from twisted_mailhub.connection import ClientGone
from twisted_mailhub.interfaces import IMailStore
from twisted_mailhub.pop3 import wire
from twisted_mailhub.pop3.session import POP3Session, Reply

_PRIVACY = "Plaintext authentication needs TLS here: use STLS or the POP3S port"


async def stls(session: POP3Session, command: wire.Command) -> None:
    """RFC 2595 section 4: only before authentication, only once."""
    if session.io.secure:
        raise Reply("TLS is already active")
    if not session.io.tls_available:
        raise Reply("TLS is not configured on this server")
    # The +OK goes out in the clear, then the handshake starts; anything the
    # client pipelined behind STLS is thrown away, and so is a pending USER.
    session.io.write(wire.ok("Begin TLS negotiation"))
    session.pending_user = None
    session.io.start_tls()


async def user(session: POP3Session, command: wire.Command) -> None:
    if not session.plaintext_allowed:
        raise Reply(_PRIVACY, "AUTH")
    if not command.rest.strip():
        raise Reply("USER needs a user name", bad=True)
    session.pending_user = command.rest.strip()
    session.io.write(wire.ok("send PASS"))


async def pass_(session: POP3Session, command: wire.Command) -> None:
    if not session.plaintext_allowed:
        raise Reply(_PRIVACY, "AUTH")
    username, session.pending_user = session.pending_user, None
    if username is None:
        raise Reply("USER first", bad=True)
    async with _attempt(session):
        try:
            _, avatar, logout = await session.portal.login(
                UsernamePassword(username.encode("utf-8"), command.rest.encode("utf-8")),
                None, IMailStore)
        except UnauthorizedLogin:
            _failed(session, username, "USER")
        _succeeded(session, "USER")
    await session.enter_transaction(username, avatar, logout)


async def auth(session: POP3Session, command: wire.Command) -> None:
    """RFC 5034 section 4, through the SASL driver IMAP uses too."""
    from twisted_mailhub.auth.sasl import (
        SASLCancelled,
        SASLFailure,
        run_sasl,
        sasl_mechanisms,
        sends_plaintext,
    )

    offered = sasl_mechanisms(session.plaintext_allowed)
    if not command.args:
        # RFC 1734's listing form, which some clients still send first.
        lines = [m.encode("ascii") for m in offered]
        session.io.write(wire.multiline(wire.ok("Supported mechanisms follow"), lines))
        return
    if len(command.args) > 2:
        raise Reply("AUTH takes a mechanism and an optional initial response", bad=True)
    mechanism = command.args[0].upper()
    if mechanism not in offered:
        if sends_plaintext(mechanism):
            raise Reply(_PRIVACY, "AUTH")
        raise Reply(f"Unsupported mechanism: {mechanism[:20]}")
    initial = None
    if len(command.args) == 2:
        initial = b"" if command.args[1] == "=" else _decode(command.args[1])

    def send_challenge(data: bytes) -> None:
        # An empty challenge is "+ " exactly (RFC 5034 section 4).
        session.io.write(b"+ " + base64.b64encode(data) + wire.CRLF)

    async def receive_response() -> bytes:
        line = (await session.io.read_line()).strip()
        if line == b"*":
            raise SASLCancelled()
        return _decode(line.decode("ascii", "replace"))

    async with _attempt(session):
        try:
            avatar_id, avatar, logout = await run_sasl(
                mechanism, initial, session.portal, send_challenge, receive_response,
                IMailStore, allow_plaintext=session.plaintext_allowed)
        except SASLCancelled:
            raise Reply("Authentication cancelled")
        except SASLFailure as e:
            _failed(session, getattr(e, "username", None) or "", mechanism)
        except UnauthorizedLogin:
            _failed(session, "", mechanism)
        _succeeded(session, mechanism)
    if isinstance(avatar_id, bytes):
        avatar_id = avatar_id.decode("utf-8", "replace")
    await session.enter_transaction(str(avatar_id), avatar, logout)


def _decode(text: str) -> bytes:
    # RFC 5034 section 4: reject anything outside the base64 alphabet.
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise Reply("Invalid base64 data", bad=True)


@asynccontextmanager
async def _attempt(session: POP3Session) -> AsyncIterator[None]:
    if session.throttle is None:
        yield
        return
    async with session.throttle.attempt(session.io.peer_host):
        # A client that left while waiting for its turn costs no check.
        if session.io.closed:
            raise ClientGone()
        yield


def _failed(session: POP3Session, username: str, mechanism: str):
    if session.throttle is not None:
        session.throttle.record_failure(session.io.peer_host)
    session.io.report_login(mechanism, username, False)
    raise Reply("Invalid credentials", "AUTH")


def _succeeded(session: POP3Session, mechanism: str) -> None:
    if session.throttle is not None:
        session.throttle.record_success(session.io.peer_host)
    session.io.report_login(mechanism, None, True)
