"""
Quotas (RFC 9208): per-user limits on the number of messages and on their
total size, enforced on everything that adds mail.

  - L{limits}: the limits, how settings spell them, and how a user's are
    found (server default, configuration file, the store's own);
  - L{usage}: measuring what a user's tree holds, one step per mailbox;
  - L{account}: a user's quota root and the check against it;
  - L{proxy}: the backend, store and mailbox wrappers that enforce it,
    put around the store by L{twisted_mailhub.service.open_configured_backend};
  - L{command}: ``mailhub quota``, to show and set a user's limits.

The IMAP commands (GETQUOTA, GETQUOTAROOT, SETQUOTA) are in
L{twisted_mailhub.imap.handlers.quota}; nothing here knows a protocol.
"""

from twisted_mailhub.quota.account import ROOT, IQuotaRoot, QuotaAccount, QuotaReport
from twisted_mailhub.quota.limits import QuotaLimits, QuotaSettings
from twisted_mailhub.quota.proxy import QuotaBackend, QuotaMailbox, QuotaMailStore, quota_backend
from twisted_mailhub.quota.usage import QuotaUsage, measure

__all__ = [
    "ROOT", "IQuotaRoot", "QuotaAccount", "QuotaReport", "QuotaLimits", "QuotaSettings",
    "QuotaBackend", "QuotaMailbox", "QuotaMailStore", "quota_backend", "QuotaUsage", "measure",
]
