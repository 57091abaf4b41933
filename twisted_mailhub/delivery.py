"""
Final delivery: what LMTP and ``mailhub deliver`` share.

L{LocalDelivery} finds the user an address names (and the folder of a
``user+folder`` address), adds the trace fields of RFC 5321 section 4.4
(``Return-Path`` and ``Received``) and appends the message through the
store API.  Its answer is an L{Outcome} that each front end turns into its
own words: a per-recipient LMTP reply, a sysexits status.

A message is delivered once the store's C{append} fired: the store has
made it durable then (an SQL commit, an fsynced mbox write), so a front end
acknowledges only what a crash would not lose.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime
from twisted.logger import Logger

from twisted_mailhub.auth.directory import IUserDirectory
from twisted_mailhub.errors import MailhubError, MessageTooBig, OverQuota
from twisted_mailhub.interfaces import IBackend
from twisted_mailhub.model import AppendRequest

log = Logger()

DEFAULT_DETAIL_SEPARATORS = "+"


class Outcome(enum.Enum):
    """What became of one delivery."""

    DELIVERED = "delivered"
    NO_SUCH_USER = "no such user"
    OVER_QUOTA = "over quota"
    TOO_BIG = "too big for the mailbox"
    TRY_LATER = "store failure"


@dataclass(frozen=True, slots=True)
class Destination:
    """
    Where an address leads: C{username}, and C{folder}, the mailbox asked
    for (the detail of ``user+detail``, or ``deliver -m``), or C{None} for
    the INBOX.
    """

    username: str
    folder: str | None = None


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """
    The L{Outcome}, the mailbox the message went into and its UID there,
    or for a failure, C{reason}: the store's word on it, for logs.
    """

    outcome: Outcome
    mailbox: str | None = None
    uid: int | None = None
    reason: str = ""

    @property
    def delivered(self) -> bool:
        return self.outcome is Outcome.DELIVERED


class LocalDelivery:
    """
    Delivers into the stores of C{backend} for the users of C{users} (an
    L{IUserDirectory}).

    C{detail_separators} are the characters that split ``user+detail``
    addresses (Postfix's ``recipient_delimiter``; any one of them splits at
    its first occurrence); C{""} turns detail handling off.
    """

    def __init__(self, backend: IBackend, users: IUserDirectory, *,
                 detail_separators: str = DEFAULT_DETAIL_SEPARATORS) -> None:
        self.backend = backend
        self.users = users
        self.detail_separators = detail_separators

    def split_detail(self, local: str) -> tuple[str, str | None]:
        """C{("user", "detail")} of C{"user+detail"}; C{(local, None)} without a separator."""
        positions = [local.find(c) for c in self.detail_separators if c in local]
        if not positions:
            return local, None
        at = min(positions)
        if at == 0:
            return local, None
        return local[:at], local[at + 1:] or None

    async def find(self, local: str, domain: str | None = None) -> Destination | None:
        """
        The L{Destination} of the address C{local@domain}, or C{None} if no
        user has it.  The user names tried, in order: the whole address,
        then without its detail, then the local part alone and without its
        detail (so both ``alice`` and ``alice@example.org`` may be users).
        """
        candidates: list[tuple[str, str | None]] = []
        parts = [local] if domain is None else [f"{local}@{domain}", local]
        for whole in parts:
            candidates.append((whole, None))
            user, detail = self.split_detail(local)
            if detail is not None:
                stripped = user if whole == local else f"{user}@{domain}"
                candidates.append((stripped, detail))
        for username, folder in candidates:
            if await self.users.exists(username):
                return Destination(username, folder)
        return None

    async def deliver(self, destination: Destination, content: bytes, *,
                      sender: str | None = None, received: bytes | None = None,
                      ) -> DeliveryResult:
        """
        Append C{content} to C{destination.folder} if that mailbox exists
        and to the INBOX otherwise (as Dovecot does).  With C{sender} (the
        envelope's reverse-path, C{""} for the null one), a Return-Path
        field replaces any the message had; C{received} (from
        L{received_field}) is put after it.  Bare LFs become CRLF.
        Errors become the L{DeliveryResult}; unexpected ones are logged.
        """
        message = to_crlf(content)
        if received is not None:
            message = received + message
        if sender is not None:
            message = return_path_field(sender) + without_return_path(message)
        try:
            store = await self.backend.open_store(destination.username)
            mailbox = None
            if destination.folder is not None:
                try:
                    mailbox = await store.get_mailbox(destination.folder)
                except MailhubError:
                    mailbox = None
            if mailbox is None:
                mailbox = await store.get_mailbox("INBOX")
            metas = await mailbox.append([AppendRequest(message)])
        except OverQuota as e:
            return DeliveryResult(Outcome.OVER_QUOTA, reason=e.message)
        except MessageTooBig as e:
            return DeliveryResult(Outcome.TOO_BIG, reason=e.message)
        except MailhubError as e:
            log.warn("Delivery to {user} failed: {error}", user=destination.username,
                     error=e.message)
            return DeliveryResult(Outcome.TRY_LATER, reason=e.message)
        except Exception as e:
            log.failure("Delivery to {user} failed", user=destination.username)
            return DeliveryResult(Outcome.TRY_LATER, reason=_first_line(e))
        return DeliveryResult(Outcome.DELIVERED, mailbox.name, metas[0].uid)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


# -- the message -------------------------------------------------------------------

_BARE_LF = re.compile(rb"(?<!\r)\n")
# Characters a name from the client may keep inside a Received field.
_UNSAFE = re.compile(r"[^A-Za-z0-9.:_\-\[\]\u0080-\U0010ffff]")


def to_crlf(content: bytes) -> bytes:
    """C{content} with every bare LF made CRLF (IMAP serves messages with CRLF)."""
    return _BARE_LF.sub(b"\r\n", content) if b"\n" in content else content


def return_path_field(sender: str) -> bytes:
    """
    ``Return-Path: <sender>`` (RFC 5321 section 4.4), C{""} for the null
    reverse-path.  Any Return-Path the message carried is removed by
    L{without_return_path}: the envelope's is the one that counts.
    """
    return f"Return-Path: <{sender}>\r\n".encode("utf-8")


def without_return_path(content: bytes) -> bytes:
    """C{content} without the Return-Path fields of its header."""
    lines = content.split(b"\n")
    kept: list[bytes] = []
    dropping = False
    for i, line in enumerate(lines):
        if line in (b"", b"\r"):
            # The end of the header: the body is kept as it is.
            kept.extend(lines[i:])
            break
        if dropping and line[:1] in (b" ", b"\t"):
            continue
        dropping = line[:12].lower() == b"return-path:"
        if not dropping:
            kept.append(line)
    if len(kept) == len(lines):
        return content
    return b"\n".join(kept)


def received_field(*, by: str, when: datetime, from_name: str | None = None,
                   from_info: str | None = None, protocol: str | None = None,
                   id: str | None = None, recipient: str | None = None,
                   comment: str | None = None) -> bytes:
    """
    A ``Received`` field (RFC 5321 section 4.4), folded onto a few lines::

        Received: from FROM_NAME (FROM_INFO)
                by BY (COMMENT) with PROTOCOL id ID
                for <RECIPIENT>; DATE

    Parts given as C{None} are left out.  Names from the client are cut
    down to characters that cannot break the field.
    """
    first = ["Received:"]
    if from_name is not None:
        first.append("from " + (_UNSAFE.sub("?", from_name)[:255] or "unknown"))
        if from_info:
            first.append(f"({_UNSAFE.sub('?', from_info)[:300]})")
    second = [f"by {by}"]
    if comment:
        second.append(f"({comment})")
    if protocol:
        second.append(f"with {protocol}")
    if id:
        second.append(f"id {id}")
    date = format_datetime(when)
    lines = [" ".join(first + second)] if from_name is None else [" ".join(first),
                                                                  " ".join(second)]
    if recipient is not None:
        lines.append(f"for <{recipient}>; {date}")
    else:
        lines[-1] += ";"
        lines.append(date)
    return ("\r\n\t".join(lines) + "\r\n").encode("utf-8")
