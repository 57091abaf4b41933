"""
How the stores' identities go out on the wire (RFC 8474 OBJECTID).

A store gives each message and each mailbox an identity
(L{twisted_mailhub.model.MessageMeta.identity},
L{twisted_mailhub.model.MailboxStatus.identity}).  The protocol sends it
behind a letter of its kind: C{M} for an EMAILID, C{F} for a MAILBOXID.
Section 5.2 wants EMAILID and THREADID values never to be the same, and
section 8.1 advises against ids that start with a digit or a dash or read
as NIL; one letter in front does all of that whatever the store chose.
"""

from __future__ import annotations

from twisted_mailhub.model import MessageMeta

EMAILID_PREFIX = "M"
MAILBOXID_PREFIX = "F"


def email_id(meta: MessageMeta) -> str:
    """
    The EMAILID of a message.  A store that keeps no identity (outside
    the contract) gets one made of the UID, which is not kept by a COPY.
    """
    if meta.identity is None:
        return f"U{meta.uid}"
    return EMAILID_PREFIX + meta.identity


def mailbox_id(identity: str | None) -> str | None:
    """The MAILBOXID of a mailbox identity; C{None} for a store without one."""
    return None if identity is None else MAILBOXID_PREFIX + identity


def identity_of_email_id(value: str) -> str | None:
    """The store identity an EMAILID names, or C{None} if none could."""
    if len(value) <= len(EMAILID_PREFIX) or not value.startswith(EMAILID_PREFIX):
        return None
    return value[len(EMAILID_PREFIX):]
