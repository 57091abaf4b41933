"""
URLAUTH commands (RFC 4467 section 7): RESETKEY, GENURLAUTH, URLFETCH.
"""

from __future__ import annotations

from twisted_mailhub.errors import MailhubError
from twisted_mailhub.imap import catenate, responses, urlauth, wire
from twisted_mailhub.imap import commands as C
from twisted_mailhub.imap import url as imapurl
from twisted_mailhub.imap.session import CommandFailed, Session


def _keys(session: Session):
    keys = urlauth.access_keys(session)
    if keys is None:
        # Not advertised; the command is as unknown as any other.
        raise CommandFailed("URLAUTH is not available on this server", condition="BAD")
    return keys


def _check_mechanisms(mechanisms) -> None:
    for mechanism in mechanisms:
        if mechanism != urlauth.MECHANISM:
            raise CommandFailed(f"Unknown URLAUTH mechanism: {mechanism}", condition="BAD")


async def resetkey(session: Session, cmd: C.ResetKey):
    keys = _keys(session)
    if cmd.mailbox is None:
        # The second form: every key of the user goes, and every URL with it.
        await keys.remove_access_keys(session.username)
        return "All keys removed"
    _check_mechanisms(cmd.mechanisms)
    await keys.reset_access_key(session.username, cmd.mailbox, origin=session)
    # BASE.7.1: the URLMECH code may be in the tagged OK of RESETKEY.
    return ("RESETKEY completed", f"URLMECH {urlauth.MECHANISM}")


async def genurlauth(session: Session, cmd: C.GenUrlAuth):
    keys = _keys(session)
    out = []
    for raw, mechanism in cmd.pairs:
        _check_mechanisms([mechanism])
        url = _rump(session, raw)
        key = await keys.access_key(session.username, url.mailbox, create=True)
        if key is None:
            raise CommandFailed(f"Mailbox does not exist: {url.mailbox}", condition="BAD")
        assert url.rump is not None
        full = f"{url.rump}:{mechanism.lower()}:{urlauth.token(key, url.rump)}"
        out.append(wire.string(full))
    session.io.write(responses.untagged(b"GENURLAUTH " + b" ".join(out)))
    return "GENURLAUTH completed"


def _rump(session: Session, raw: bytes) -> imapurl.ImapUrl:
    """BASE.6.3.GENURLAUTH's checks of a url-rump; each failure is BAD."""
    try:
        url = imapurl.parse(raw)
    except imapurl.UrlError as e:
        raise CommandFailed(f"Invalid URL: {e}", condition="BAD") from None
    if url.user is None:
        raise CommandFailed("Missing owner username in supplied URL", condition="BAD")
    if url.access is None:
        raise CommandFailed("Missing access identifier in supplied URL", condition="BAD")
    if url.token is not None:
        raise CommandFailed("Supplied URL already carries a URLAUTH token", condition="BAD")
    if url.user != session.username:
        # Section 10: only the owner of a key table generates with it.
        raise CommandFailed("Supplied URL names another user than the one logged in",
                            condition="BAD")
    return url


async def urlfetch(session: Session, cmd: C.UrlFetch):
    _keys(session)
    io = session.io
    # BASE.6.3.URLFETCH: a syntactically valid URLFETCH gets its untagged
    # response and OK, with NIL for each URL that does not validate.  The
    # response is written one URL at a time, waiting while the client is
    # slow to read: a line of URLs naming a large message many times must
    # not all be held in memory at once.
    for i, raw in enumerate(cmd.urls):
        data = await _fetch(session, raw)
        piece = wire.string(raw) + b" " + (wire.NIL if data is None else wire.literal(data))
        if i == 0:
            io.write(b"* URLFETCH " + piece)
        else:
            io.write_part(b" " + piece)
        del data, piece
        await io.drain()
    io.write_part(responses.CRLF)
    return "URLFETCH completed"


async def _fetch(session: Session, raw: bytes) -> bytes | None:
    try:
        url = imapurl.parse(raw)
        if url.access is None and url.user is not None and url.user == session.username:
            # A plain URL of the user's own mail (RFC 5092 asks only that
            # the session be that user's).
            store = session.store
        else:
            store = await urlauth.owner_store(session, url, raw)
        return await catenate.read_part(store, url, raw, limit=session.policy.max_literal_size)
    except (imapurl.UrlError, catenate.BadUrl, catenate.TooBig, MailhubError):
        # A store's refusal (an invalid mailbox name...) is one more URL
        # that does not validate, not the end of the response.
        return None


HANDLERS = {
    C.ResetKey: resetkey,
    C.GenUrlAuth: genurlauth,
    C.UrlFetch: urlfetch,
}
