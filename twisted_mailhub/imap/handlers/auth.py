"""
STARTTLS, LOGIN and AUTHENTICATE (RFC 3501 6.2, RFC 9051 6.2, RFC 4959).

Each login attempt runs inside the failure throttle's turn for the client's
address (L{FailureThrottle.attempt}): attempts from one address are checked
one at a time, each after the delay earned by the failures before it.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from twisted.cred.credentials import UsernamePassword
from twisted.cred.error import UnauthorizedLogin

from twisted_mailhub.connection import ClientGone
from twisted_mailhub.imap import commands as C
from twisted_mailhub.imap import responses
from twisted_mailhub.imap.session import SILENT, CommandFailed, Session
from twisted_mailhub.interfaces import IMailStore


def mechanisms(session: Session) -> list[str]:
    """SASL mechanisms to offer now: none that send passwords in the clear."""
    from twisted_mailhub.auth.sasl import sasl_mechanisms

    return sasl_mechanisms(session.plaintext_allowed)


async def starttls(session: Session, cmd: C.StartTLS):
    if not session.io.tls_available:
        raise CommandFailed("TLS is not configured on this server")
    if session.io.secure:
        raise CommandFailed("TLS is already active", condition="BAD")
    # The tagged OK must go out in the clear, then the handshake starts;
    # anything the client pipelined behind STARTTLS is thrown away.
    session.io.write(responses.status(cmd.tag, "OK", "Begin TLS negotiation now"))
    session.io.start_tls()
    return SILENT


async def login(session: Session, cmd: C.Login):
    if not session.plaintext_allowed:
        raise CommandFailed("Use STARTTLS or a TLS port before logging in", "PRIVACYREQUIRED")
    username = cmd.username.decode("utf-8", "replace")
    async with _attempt(session):
        try:
            iface, avatar, logout = await session.portal.login(
                UsernamePassword(cmd.username, cmd.password), None, IMailStore)
        except UnauthorizedLogin:
            await _failed(session, username, "LOGIN")
        _succeeded(session, "LOGIN")
    session.authenticated(username, avatar, logout)
    return ("LOGIN completed", responses.capability_code(session.capabilities()))


async def authenticate(session: Session, cmd: C.Authenticate):
    from twisted_mailhub.auth.sasl import SASLCancelled, SASLFailure, run_sasl

    mechanism = cmd.mechanism.upper()
    if mechanism not in mechanisms(session):
        if not session.plaintext_allowed:
            raise CommandFailed(
                f"Mechanism {mechanism} is not available without TLS", "PRIVACYREQUIRED")
        raise CommandFailed(f"Unsupported authentication mechanism: {mechanism}",
                            "CANNOT")

    def send_challenge(data: bytes) -> None:
        session.io.write(responses.continuation_data(base64.b64encode(data)))

    async def receive_response() -> bytes:
        line = (await session.io.read_line()).strip()
        if line == b"*":
            raise SASLCancelled()
        try:
            return base64.b64decode(line, validate=True)
        except (binascii.Error, ValueError):
            raise CommandFailed("Invalid base64 in authentication response", condition="BAD")

    async with _attempt(session):
        try:
            avatar_id, avatar, logout = await run_sasl(
                mechanism, cmd.initial, session.portal, send_challenge, receive_response,
                IMailStore)
        except SASLCancelled:
            raise CommandFailed("Authentication cancelled", condition="BAD")
        except SASLFailure as e:
            await _failed(session, getattr(e, "username", None) or "", mechanism)
        except UnauthorizedLogin:
            await _failed(session, "", mechanism)
        _succeeded(session, mechanism)
    if isinstance(avatar_id, bytes):
        avatar_id = avatar_id.decode("utf-8", "replace")
    session.authenticated(avatar_id, avatar, logout)
    return ("AUTHENTICATE completed", responses.capability_code(session.capabilities()))


@asynccontextmanager
async def _attempt(session: Session) -> AsyncIterator[None]:
    if session.throttle is None:
        yield
        return
    async with session.throttle.attempt(session.io.peer_host):
        # A client that left while waiting for its turn costs no check.
        if session.io.closed:
            raise ClientGone()
        yield


async def _failed(session: Session, username: str, mechanism: str):
    if session.throttle is not None:
        session.throttle.record_failure(session.io.peer_host)
    session.io.report_login(mechanism, username, False)
    raise CommandFailed("Invalid credentials", "AUTHENTICATIONFAILED")


def _succeeded(session: Session, mechanism: str) -> None:
    if session.throttle is not None:
        session.throttle.record_success(session.io.peer_host)
    session.io.report_login(mechanism, None, True)


HANDLERS = {
    C.StartTLS: starttls,
    C.Login: login,
    C.Authenticate: authenticate,
}
