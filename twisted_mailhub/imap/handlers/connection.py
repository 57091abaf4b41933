"""
Commands that change the connection rather than the mail: COMPRESS (RFC
4978) and UNAUTHENTICATE (RFC 8437).

Both take effect right after their tagged OK (L{Session.after_ok}): the OK
of COMPRESS is the last byte sent in the clear, that of UNAUTHENTICATE the
last one compressed.
"""

from __future__ import annotations

from twisted_mailhub.imap import commands as C
from twisted_mailhub.imap.session import CommandFailed, Session


async def compress(session: Session, cmd: C.Compress):
    if session.io.compressing:
        # RFC 4978 section 3: NO [COMPRESSIONACTIVE], saying which layer.
        raise CommandFailed("DEFLATE is already active via COMPRESS", "COMPRESSIONACTIVE")
    session.after_ok = session.io.start_compression
    return "DEFLATE active"


async def unauthenticate(session: Session, cmd: C.Unauthenticate):
    if not session.policy.unauthenticate:
        # RFC 8437 section 3: BAD when the server does not advertise it.
        raise CommandFailed("UNAUTHENTICATE is not enabled on this server", condition="BAD")
    session.unauthenticate()
    if session.io.compressing:
        # RFC 8437 section 4.1: compression ends after this OK.
        session.after_ok = session.io.stop_compression
    return "UNAUTHENTICATE completed"


HANDLERS = {
    C.Compress: compress,
    C.Unauthenticate: unauthenticate,
}
