"""The session's view of a selected mailbox: UID to sequence number mapping."""

from __future__ import annotations

from array import array

from twisted.trial import unittest

from twisted_mailhub.backends.memory import MemoryBackend
from twisted_mailhub.imap.selected import SelectedMailbox


class SequenceNumberTests(unittest.TestCase):
    async def view(self, uids: list[int]) -> SelectedMailbox:
        store = await MemoryBackend().open_store("alice")
        selected = SelectedMailbox(await store.get_mailbox("INBOX"), object())
        self.addCleanup(selected.close)
        selected.uids = array("I", uids)
        return selected

    async def test_contiguous_view(self) -> None:
        selected = await self.view(list(range(40, 60)))
        found = [40, 41, 45, 59]
        self.assertEqual(selected.seqs_of(found), [1, 2, 6, 20])
        self.assertEqual(selected.seqs_of(found), [selected.seq_of(u) for u in found])

    async def test_view_with_gaps(self) -> None:
        uids = [3, 4, 9, 10, 11, 200, 201, 5000]
        selected = await self.view(uids)
        self.assertEqual(selected.seqs_of(uids), list(range(1, 9)))
        self.assertEqual(selected.seqs_of([4, 11, 5000]), [2, 5, 8])

    async def test_nothing_found(self) -> None:
        selected = await self.view([1, 2, 3])
        self.assertEqual(selected.seqs_of([]), [])
