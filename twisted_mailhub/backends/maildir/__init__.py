"""
The Maildir backend: each user's mail as a Maildir++ tree that mutt,
procmail, Dovecot and Courier's tools can share with the server.

See C{docs/backends-maildir.md} for the layout, what is shared with other
programs, and the locking.
"""

from twisted_mailhub.backends.maildir.mailbox import MaildirMailbox, MaildirMessage
from twisted_mailhub.backends.maildir.store import MaildirBackend, MaildirMailStore

__all__ = ["MaildirBackend", "MaildirMailStore", "MaildirMailbox", "MaildirMessage"]
