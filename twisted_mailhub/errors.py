"""
The error taxonomy shared by stores, authenticators and protocols.

Backends raise these; the IMAP and POP3 layers map each to a tagged ``NO``
(or ``BAD``) with the response code of RFC 5530 / RFC 9051 section 7.1 named
in ``code``.  Anything else raised by a backend is logged with its traceback
and answered with ``NO [SERVERBUG]``: Python exception text never reaches a
client.
"""


class MailhubError(Exception):
    """Base class.  ``code`` is the IMAP response code, or ``None``."""

    code: str | None = None

    def __init__(self, message: str = "") -> None:
        super().__init__(message or self.__class__.__doc__ or self.__class__.__name__)

    @property
    def message(self) -> str:
        return str(self.args[0])


class MailboxNotFound(MailhubError):
    """No such mailbox."""

    code = "NONEXISTENT"


class MailboxExists(MailhubError):
    """Mailbox already exists."""

    code = "ALREADYEXISTS"


class MailboxHasChildren(MailhubError):
    """Mailbox has inferior hierarchical names."""

    code = "HASCHILDREN"


class NotSelectable(MailhubError):
    """Mailbox cannot be selected (\\Noselect)."""

    code = "CANNOT"


class InvalidMailboxName(MailhubError):
    """Invalid mailbox name."""

    code = "CANNOT"


class ReadOnlyMailbox(MailhubError):
    """Mailbox is read-only."""

    code = "READ-ONLY"


class PermissionDenied(MailhubError):
    """Permission denied."""

    code = "NOPERM"


class OverQuota(MailhubError):
    """Quota exceeded."""

    code = "OVERQUOTA"


class MessageTooBig(MailhubError):
    """Message too big."""

    code = "TOOBIG"


class MessageExpunged(MailhubError):
    """Message has been expunged."""

    code = "EXPUNGEISSUED"


class IdentityConflict(MailhubError):
    """The mailbox cannot take the UIDVALIDITY or UID asked for."""

    code = "CANNOT"


class StoreUnavailable(MailhubError):
    """The mail store is temporarily unavailable."""

    code = "UNAVAILABLE"


class ModifiedSince(MailhubError):
    """A conditional store failed because the message changed (CONDSTORE)."""

    code = "MODIFIED"
