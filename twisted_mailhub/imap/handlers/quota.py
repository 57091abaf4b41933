"""
QUOTA (RFC 9208): GETQUOTA, GETQUOTAROOT and SETQUOTA, the capabilities a
user with limits is offered, and the DELETED-STORAGE STATUS item.

A user with limits has one quota root, C{""}, holding the whole tree
(L{twisted_mailhub.quota}); the QUOTA response names only the resources
that are limited (section 4.2.1).  Limits are the administrator's to set
(``mailhub quota``, the configuration file): SETQUOTA is refused with
C{NOPERM} and QUOTASET is not advertised.
"""

from __future__ import annotations

from twisted_mailhub.criteria import Flag
from twisted_mailhub.imap import commands as C
from twisted_mailhub.imap import responses, wire
from twisted_mailhub.imap.session import CommandFailed, Session
from twisted_mailhub.model import MailboxStatus
from twisted_mailhub.quota import IQuotaRoot, QuotaReport
from twisted_mailhub.quota.limits import STORAGE_UNIT, storage_units

#: What a session of a user with limits advertises (RFC 9208 sections 3.1
#: and 5): both resources are handled, so DELETED and DELETED-STORAGE are
#: answered as sections 5.1 and 5.2 require.
CAPABILITIES = ("QUOTA", "QUOTA=RES-STORAGE", "QUOTA=RES-MESSAGE")


def capabilities(session: Session) -> list[str]:
    """The QUOTA capabilities, when the session's user has limits."""
    return list(CAPABILITIES) if IQuotaRoot.providedBy(session.store) else []


def quota_response(report: QuotaReport) -> bytes:
    """``* QUOTA "" (STORAGE used limit MESSAGE used limit)``, STORAGE in KiB."""
    items = []
    if report.limits.storage is not None:
        items.append(b"STORAGE %d %d" % (storage_units(report.usage.storage),
                                         report.limits.storage // STORAGE_UNIT))
    if report.limits.messages is not None:
        items.append(b"MESSAGE %d %d" % (report.usage.messages, report.limits.messages))
    return responses.untagged(b"QUOTA " + wire.string(report.root) + b" " + wire.plist(items))


async def getquota(session: Session, cmd: C.GetQuota):
    root = IQuotaRoot(session.store, None)
    if root is None or cmd.root != root.quota_root:
        raise CommandFailed(f"No such quota root: {cmd.root!r}", "NONEXISTENT")
    session.io.write(quota_response(await root.quota()))
    return "GETQUOTA completed"


async def getquotaroot(session: Session, cmd: C.GetQuotaRoot):
    from twisted_mailhub.imap.handlers.mailboxes import encode_name

    # Section 4.1.2: the mailbox need not exist; every name of the user's
    # tree is in the user's one root.
    line = b"QUOTAROOT " + encode_name(session, cmd.mailbox)
    root = IQuotaRoot(session.store, None)
    if root is None:
        # Section 4.2.2: a mailbox with no quota root.
        session.io.write(responses.untagged(line))
        return "GETQUOTAROOT completed"
    report = await root.quota()
    session.io.write(responses.untagged(line + b" " + wire.string(root.quota_root)))
    session.io.write(quota_response(report))
    return "GETQUOTAROOT completed"


async def setquota(session: Session, cmd: C.SetQuota):
    raise CommandFailed("Quotas are set by the server's administrator", "NOPERM")


async def deleted_storage(store, name: str, status: MailboxStatus, mailbox=None) -> int:
    """
    DELETED-STORAGE (RFC 9208 section 4.1.4) of the mailbox C{name} of
    C{store} (C{mailbox} when already open): the octets an EXPUNGE would
    free, as the sum of the RFC822.SIZE of the messages flagged \\Deleted
    (which the section allows).  Nothing is read when none is flagged.
    """
    if not status.deleted:
        return 0
    from twisted_mailhub.imap.search import SearchContext, search

    if mailbox is None:
        mailbox = await store.get_mailbox(name, read_only=True)
    uids = await mailbox.uids()
    found = await search(mailbox, Flag("\\Deleted"), SearchContext(uids, set()))
    return sum(meta.size for meta in await mailbox.metadata(found))


HANDLERS = {
    C.GetQuota: getquota,
    C.GetQuotaRoot: getquotaroot,
    C.SetQuota: setquota,
}
