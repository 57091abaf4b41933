"""
What two snapshots of a user's tree differ by (L{twisted_mailhub.trees}),
told as the tree events a change made in this process publishes; and which
of them this process's own events explain.
"""

from __future__ import annotations

from twisted.trial import unittest

from twisted_mailhub.model import (
    MailboxCreated,
    MailboxDeleted,
    MailboxRenamed,
    SubscriptionChanged,
)
from twisted_mailhub.trees import TreeSnapshot, explained, tree_changes


class TreeChangesTests(unittest.TestCase):
    """What two snapshots of a tree differ by, told as the local events are."""

    def snapshot(self, mailboxes, subscriptions=()):
        return TreeSnapshot(dict(mailboxes), frozenset(subscriptions), "/")

    def test_changes(self):
        old = self.snapshot({"INBOX": (1, True), "a": (2, True), "a/b": (3, True),
                             "gone": (4, True), "node": (5, True), "x": (6, False)},
                            {"a/b", "gone"})
        new = self.snapshot({"INBOX": (1, True), "c": (2, True), "c/b": (3, True),
                             "node": (5, False), "x": (6, True),
                             "n1": (7, True), "n1/n2": (8, True), "n1/n2/n3": (9, True)},
                            {"a/b", "c/b"})
        self.assertEqual(tree_changes(old, new), [
            # The inferior moved with its superior: one rename.
            MailboxRenamed("a", "c"),
            # Gone, and become a hierarchy node.
            MailboxDeleted("gone"), MailboxDeleted("node"),
            # Superiors made with an inferior are told with it; a node
            # made selectable is created.
            MailboxCreated("n1/n2/n3"), MailboxCreated("x"),
            SubscriptionChanged("c/b", True), SubscriptionChanged("gone", False),
        ])

    def test_without_identities(self):
        old = self.snapshot({"INBOX": (None, True), "a": (None, True)})
        new = self.snapshot({"INBOX": (None, True), "b": (None, True)})
        self.assertEqual(tree_changes(old, new), [MailboxDeleted("a"), MailboxCreated("b")])
        self.assertEqual(tree_changes(new, new), [])

    def test_explained_by_local_events(self):
        local = [MailboxCreated("a/b/c"), MailboxRenamed("x", "y"),
                 SubscriptionChanged("s", True)]
        # The superiors a CREATE made, the inferiors a RENAME moved.
        for event in (MailboxCreated("a"), MailboxCreated("a/b/c"), MailboxDeleted("x/1"),
                      MailboxCreated("y/1"), SubscriptionChanged("s", True)):
            self.assertTrue(explained(event, local, "/"), event)
        # Other names, and a subscription is not explained by a creation.
        for event in (MailboxCreated("ab"), MailboxDeleted("z"), SubscriptionChanged("a", True),
                      MailboxCreated("s")):
            self.assertFalse(explained(event, local, "/"), event)
