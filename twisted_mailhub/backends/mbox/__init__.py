"""
The mbox backend: each user's mail as standard mbox files that mutt,
procmail and Postfix local delivery can share with the server.

See C{docs/backends-mbox.md} for the layout, the index and the locking.
"""

from twisted_mailhub.backends.mbox.mailbox import MboxMailbox, MboxMessage
from twisted_mailhub.backends.mbox.store import MboxBackend, MboxMailStore

__all__ = ["MboxBackend", "MboxMailStore", "MboxMailbox", "MboxMessage"]
