"""
A conformance suite every backend runs.

Mix L{BackendConformanceMixin} into a L{twisted.trial.unittest.TestCase}
and provide L{BackendConformanceMixin.make_backend}::

    class MyBackendTests(BackendConformanceMixin, unittest.TestCase):
        persistent = True

        async def make_backend(self):
            return MyBackend(self.mktemp())

        async def restart_backend(self, backend):
            await backend.close()
            return MyBackend(backend.path)

The tests check the guarantees documented in L{twisted_mailhub.interfaces}
through the public interfaces only.  They make no assumption about timing:
events are awaited, never expected to have arrived already, so a backend
that notifies across processes or works in threads passes as well.  The
groups of tests are also available one by one (L{TreeConformance},
L{MessageConformance}, L{ChangeConformance}, L{MoveConformance},
L{RestartConformance}, L{RestoreConformance}, L{IdentityConformance}).
"""

from __future__ import annotations

from twisted_mailhub.testing.changes import ChangeConformance
from twisted_mailhub.testing.identity import IdentityConformance
from twisted_mailhub.testing.messages import MessageConformance
from twisted_mailhub.testing.moves import MoveConformance
from twisted_mailhub.testing.restart import RestartConformance
from twisted_mailhub.testing.restore import RestoreConformance
from twisted_mailhub.testing.support import (
    ConformanceBase,
    RecordingListener,
    added_uids,
    changed_uids,
    expunged_uids,
    make_message,
    make_multipart_message,
)
from twisted_mailhub.testing.tree import TreeConformance

__all__ = [
    "BackendConformanceMixin",
    "ChangeConformance",
    "ConformanceBase",
    "IdentityConformance",
    "MessageConformance",
    "MoveConformance",
    "RecordingListener",
    "RestartConformance",
    "RestoreConformance",
    "TreeConformance",
    "added_uids",
    "changed_uids",
    "expunged_uids",
    "make_message",
    "make_multipart_message",
]


class BackendConformanceMixin(
    TreeConformance, MessageConformance, ChangeConformance, MoveConformance, RestartConformance,
    RestoreConformance, IdentityConformance,
):
    """
    Every conformance test: the documented semantics of L{IBackend},
    L{IMailStore}, L{IMailbox}, L{ICopyableMailbox}, L{IMoveableMailbox},
    L{IRemovableMailbox}, L{IRestorableMailbox} (skipped without it) and
    L{IMessage}.

    Subclasses provide L{make_backend}; persistent backends set
    L{persistent} and provide L{restart_backend}.
    """
