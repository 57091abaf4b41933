"""
The server mail is migrated from, read with Python's C{imaplib}.

Every method blocks; L{twisted_mailhub.sync.migrate} calls them in a
thread.  Folders are only ever opened with EXAMINE and bodies read with
C{BODY.PEEK[]}, so the source's flags (\\Seen included) are left as they
were (RFC 3501 sections 6.3.2 and 6.4.5).
"""

from __future__ import annotations

import functools
import imaplib
import ipaddress
import socket
import ssl
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, TypeVar
from urllib.parse import unquote, urlsplit

from twisted_mailhub.imap import mutf7
from twisted_mailhub.model import RECENT, canonical_flag
from twisted_mailhub.sync.wire import (
    ListEntry,
    WireError,
    fetch_items,
    internaldate,
    list_entries,
    message_id,
    quote,
)

T = TypeVar("T")

#: Seconds a connection or a read may take before the sync gives up.
TIMEOUT = 120.0

#: Messages whose listing one FETCH asks for.
LISTING_CHUNK = 2000


class SourceError(Exception):
    """The source server refused or broke off; the text says why."""


class ConnectionLost(SourceError):
    """The connection to the source broke: nothing more can be read in this run."""


def _guarded(what: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Report C{imaplib}'s and the socket's failures of C{what} as L{SourceError}s."""

    def decorate(method: Callable[..., T]) -> Callable[..., T]:
        @functools.wraps(method)
        def guarded(self: SourceServer, *args: Any) -> T:
            try:
                return method(self, *args)
            except (imaplib.IMAP4.abort, OSError, ssl.SSLError) as e:
                raise ConnectionLost(f"connection to {self.url} lost ({what}): "
                                     f"{_reason(e)}") from None
            except imaplib.IMAP4.error as e:
                raise SourceError(f"{what} refused: {_reason(e)}") from None

        return guarded

    return decorate


@dataclass(frozen=True, slots=True)
class SourceURL:
    """Where the source is: C{imap://user@host:port} or C{imaps://...}."""

    tls: bool
    user: str
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> SourceURL:
        """Raise C{ValueError} with a readable reason for anything else."""
        parts = urlsplit(text)
        if parts.scheme not in ("imap", "imaps"):
            raise ValueError(f"expected imap://USER@HOST[:PORT] or imaps://..., got {text!r}")
        if parts.password is not None:
            raise ValueError("put the password in --password-file or MAILHUB_SYNC_PASSWORD, "
                             "not in the URL")
        if not parts.username or not parts.hostname:
            raise ValueError(f"the URL must name a user and a host: {text!r}")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError(f"the URL must not name a mailbox: {text!r} (use --folder)")
        try:
            port = parts.port
        except ValueError:
            raise ValueError(f"bad port in {text!r}") from None
        tls = parts.scheme == "imaps"
        return cls(tls, unquote(parts.username), parts.hostname,
                   port or (993 if tls else 143))

    @property
    def loopback(self) -> bool:
        """True for localhost and loopback addresses."""
        if self.host.lower() == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'imaps' if self.tls else 'imap'}://{self.user}@{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class SourceFolder:
    """One folder of the source, its name decoded and split into levels."""

    name: str
    levels: tuple[str, ...]
    selectable: bool
    special_use: frozenset[str]


@dataclass(frozen=True, slots=True)
class FolderState:
    """What EXAMINE said about a folder."""

    uidvalidity: int
    uidnext: int | None
    exists: int


@dataclass(frozen=True, slots=True)
class SourceMessage:
    """One message as listed: no content, enough to recognise and place it."""

    uid: int
    flags: frozenset[str]
    internaldate: datetime
    size: int
    message_id: str | None


#: RFC 6154 attributes kept on the target.
SPECIAL_USE = frozenset({"\\All", "\\Archive", "\\Drafts", "\\Flagged", "\\Junk", "\\Sent",
                         "\\Trash"})


class SourceServer:
    """One logged-in connection to the source."""

    def __init__(self, url: SourceURL, password: str, context: ssl.SSLContext,
                 insecure: bool = False) -> None:
        self.url = url
        self.encrypted = url.tls
        try:
            if url.tls:
                self.client: imaplib.IMAP4 = imaplib.IMAP4_SSL(
                    url.host, url.port, ssl_context=context, timeout=TIMEOUT)
            else:
                self.client = imaplib.IMAP4(url.host, url.port, timeout=TIMEOUT)
                if "STARTTLS" in self.client.capabilities:
                    self.client.starttls(context)
                    self.encrypted = True
                elif not (insecure or url.loopback):
                    self.client.shutdown()
                    raise SourceError(
                        f"{url.host} does not offer STARTTLS; refusing to send the password "
                        "unencrypted (use imaps://, or --insecure to allow it)")
            self._login(password)
        except (OSError, imaplib.IMAP4.error, ssl.SSLError) as e:
            raise SourceError(f"cannot log in to {url}: {_reason(e)}") from None

    def _login(self, password: str) -> None:
        client = self.client
        if "AUTH=PLAIN" in client.capabilities and "LOGINDISABLED" in client.capabilities:
            user = self.url.user
            client.authenticate("PLAIN", lambda _: f"\0{user}\0{password}".encode())
        else:
            client.login(self.url.user, password)
        typ, data = client.capability()
        if typ == "OK" and data and data[-1]:
            client.capabilities = tuple(data[-1].decode("ascii", "replace").upper().split())

    def close(self) -> None:
        """Log out, ignoring a connection already gone."""
        try:
            self.client.logout()
        except (OSError, imaplib.IMAP4.error, ssl.SSLError):
            pass

    def _ok(self, what: str, result: tuple[str, list]) -> list:
        typ, data = result
        if typ != "OK":
            detail = b" ".join(d for d in data if isinstance(d, bytes)).decode("utf-8", "replace")
            raise SourceError(f"{what} failed: {detail or typ}")
        return data

    # -- folders -------------------------------------------------------------

    @_guarded("LIST")
    def folders(self) -> list[SourceFolder]:
        """Every folder, with special-use attributes where the server has them."""
        client = self.client
        if "SPECIAL-USE" in client.capabilities:
            # RFC 6154 section 2: with LIST-EXTENDED the attributes need the return option.
            data = self._ok("LIST", client.list('""', '"*" RETURN (SPECIAL-USE)'))
        else:
            data = self._ok("LIST", client.list('""', '"*"'))
        return [self._folder(entry) for entry in list_entries(data)]

    @_guarded("LSUB")
    def subscriptions(self) -> list[SourceFolder]:
        """The subscribed folders (which need not exist)."""
        return [self._folder(entry)
                for entry in list_entries(self._ok("LSUB", self.client.lsub('""', '"*"')))]

    def _folder(self, entry: ListEntry) -> SourceFolder:
        try:
            name = mutf7.decode(entry.name)
        except ValueError:
            name = entry.name.decode("utf-8", "replace")
        if name.upper() == "INBOX":
            name = "INBOX"
        levels = tuple(name.split(entry.delimiter)) if entry.delimiter else (name,)
        if levels[0].upper() == "INBOX":
            levels = ("INBOX",) + levels[1:]
        attributes = {a.lower() for a in entry.attributes}
        selectable = not attributes & {"\\noselect", "\\nonexistent"}
        special = frozenset(a for a in SPECIAL_USE if a.lower() in attributes)
        return SourceFolder(name, levels, selectable, special)

    @_guarded("EXAMINE")
    def examine(self, folder: SourceFolder) -> FolderState:
        """Open C{folder} read-only; its UIDVALIDITY, UIDNEXT and size."""
        client = self.client
        encoded = quote(mutf7.encode(folder.name).decode("ascii"))
        data = self._ok(f"EXAMINE {folder.name}", client.select(encoded, readonly=True))
        exists = int(data[-1]) if data and data[-1] else 0
        validity = client.response("UIDVALIDITY")[1]
        if not validity or not validity[-1]:
            raise SourceError(f"{folder.name}: the server gave no UIDVALIDITY")
        uidnext = client.response("UIDNEXT")[1]
        return FolderState(int(validity[-1]),
                           int(uidnext[-1]) if uidnext and uidnext[-1] else None, exists)

    # -- messages ------------------------------------------------------------

    @_guarded("FETCH")
    def listing(self, exists: int) -> list[SourceMessage]:
        """
        Every message of the examined folder without its content, asked
        for by sequence ranges so that no single response holds them all.
        """
        found: dict[int, SourceMessage] = {}
        items = "(UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])"
        for first in range(1, exists + 1, LISTING_CHUNK):
            last = min(exists, first + LISTING_CHUNK - 1)
            data = self._ok("FETCH", self.client.fetch(f"{first}:{last}", items))
            for item in fetch_items(data):
                message = _listed(item)
                if message is not None:
                    found[message.uid] = message
        return [found[uid] for uid in sorted(found)]

    @_guarded("UID FETCH")
    def bodies(self, uids: list[int]) -> dict[int, bytes]:
        """The content of each of C{uids} that still exists (BODY.PEEK[])."""
        if not uids:
            return {}
        data = self._ok("UID FETCH", self.client.uid(
            "FETCH", ",".join(map(str, uids)), "(UID BODY.PEEK[])"))
        out: dict[int, bytes] = {}
        for item in fetch_items(data):
            uid, body = item.get(b"UID"), item.get(b"BODY[]")
            if isinstance(uid, bytes) and isinstance(body, bytes):
                out[int(uid)] = body
        return out


def _listed(item: dict) -> SourceMessage | None:
    """A L{SourceMessage} from FETCH items; C{None} for an unsolicited flags update."""
    uid, flags = item.get(b"UID"), item.get(b"FLAGS")
    date, size = item.get(b"INTERNALDATE"), item.get(b"RFC822.SIZE")
    if not isinstance(uid, bytes) or not isinstance(flags, list) or date is None or size is None:
        return None
    header = next((value for key, value in item.items()
                   if key.startswith(b"BODY[HEADER.FIELDS") and isinstance(value, bytes)), b"")
    try:
        return SourceMessage(
            uid=int(uid),
            flags=frozenset(canonical_flag(f.decode("utf-8", "replace")) for f in flags
                            if isinstance(f, bytes) and f.lower() != RECENT.lower().encode()),
            internaldate=internaldate(bytes(date)),
            size=int(size),
            message_id=message_id(header),
        )
    except (ValueError, TypeError) as e:
        raise WireError(f"bad FETCH response for UID {uid!r}: {e}") from None


def _reason(error: BaseException) -> str:
    if isinstance(error, socket.timeout):
        return "timed out"
    text = str(error)
    if isinstance(error, imaplib.IMAP4.error) and text.startswith("b'"):
        text = text[2:-1]
    return text or type(error).__name__


def tls_context(cafile: str | None, insecure: bool) -> ssl.SSLContext:
    """The context checking the source's certificate (or, with C{insecure}, not)."""
    context = ssl.create_default_context(cafile=cafile)
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context
