"""
URLAUTH (RFC 4467): the INTERNAL mechanism's tokens, who may use a URL,
and the validation of a URLAUTH-authorized URL (section 6) that gives the
store of the URL's owner to read from.

The token is ``01`` followed by the HMAC-SHA1 (RFC 2104) of the rump URL
under the mailbox access key, in lower-case hexadecimal: 42 digits, over
the 32 of section 3.  The leading ``01`` names the algorithm, as sections
2.4.1 and 10 ask, so that another can be added later while old tokens are
still told apart.

The keys are kept by the backend (L{IAccessKeys}); a server whose backend
has none does not offer URLAUTH.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timezone

from twisted_mailhub.imap.catenate import BadUrl
from twisted_mailhub.imap.url import ImapUrl
from twisted_mailhub.interfaces import IAccessKeys
from twisted_mailhub.model import ACCESS_KEY_BYTES

MECHANISM = "INTERNAL"
_ALGORITHM = "01"


def access_keys(session) -> IAccessKeys | None:
    """The key keeper of the session's backend (through its realm), if it has one."""
    realm = getattr(session.portal, "realm", None)
    return IAccessKeys(getattr(realm, "backend", None), None)


def token(key: bytes, rump: str) -> str:
    """The INTERNAL token of C{rump} (the URL through ``;URLAUTH=<access>``)."""
    return _ALGORITHM + hmac.new(key, rump.encode("ascii"), hashlib.sha1).hexdigest()


def authorized(url: ImapUrl, key: bytes) -> bool:
    """Whether the URL's token is the one C{key} gives its rump (section 6)."""
    assert url.rump is not None and url.token is not None
    return hmac.compare_digest(token(key, url.rump), url.token)


def access_allows(access: str, username: str | None, submitters: frozenset[str]) -> bool:
    """
    RFC 4467 section 3: whether a session logged in as C{username} may use
    a URL of C{access}.  This server has no anonymous login, so
    ``anonymous`` and ``authuser`` admit every logged-in user; ``submit+``
    admits the users the policy names as submission servers.
    """
    if username is None:
        return False
    if access in ("anonymous", "authuser"):
        return True
    if access.startswith("user+"):
        return access[len("user+"):] == username
    if access.startswith("submit+"):
        return username in submitters
    return False


async def owner_store(session, url: ImapUrl, raw: bytes):
    """
    Validate a URLAUTH-authorized C{url} for C{session} and return the
    store of its owner, to read the URL's data from with the owner's
    access.  Raises L{BadUrl} saying which check failed.
    """
    keys = access_keys(session)
    if keys is None:
        raise BadUrl(raw, "URLAUTH is not available")
    if url.access is None or url.token is None:
        raise BadUrl(raw, "URL carries no URLAUTH")
    if url.user is None:
        raise BadUrl(raw, "URLAUTH needs an absolute URL naming its owner")
    if url.mechanism != MECHANISM:
        raise BadUrl(raw, f"Unknown URLAUTH mechanism: {url.mechanism}")
    if url.expire is not None:
        now = datetime.fromtimestamp(session.clock.seconds(), timezone.utc)
        if now > url.expire:
            raise BadUrl(raw, "URL has expired")
    if not access_allows(url.access, session.username, session.policy.urlauth_submitters):
        raise BadUrl(raw, "URLAUTH access identifier does not admit this user")
    key = await keys.access_key(url.user, url.mailbox)
    if key is None:
        # Section 6: the same work with a plausible key, so that the time
        # taken does not tell whether the mailbox exists.
        authorized(url, secrets.token_bytes(ACCESS_KEY_BYTES))
        raise BadUrl(raw, "URLAUTH does not verify")
    if not authorized(url, key):
        raise BadUrl(raw, "URLAUTH does not verify")
    if url.user == session.username:
        return session.store
    # The key exists, so the user does: opening the store creates nothing.
    return await session.portal.realm.backend.open_store(url.user)
