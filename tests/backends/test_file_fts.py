"""
The full-text index of the stores kept in files (mbox, Maildir): filled at
APPEND, by the first search for messages stored without it, made again
when deleted or damaged, shared by copies, pruned of gone messages, and
agreeing with the generic evaluator on the corpus the SQL store's index is
tested with.
"""

from __future__ import annotations

import mailbox
import os
import sqlite3
from datetime import datetime, timedelta, timezone

from twisted.trial import unittest

from harness import IMAPServerTestCase
from test_sql import _GenericOnly
from test_sql_fts import _corpus_keys
from test_summaries import spy_content_reads
from tests_messages import CORPUS

from twisted_mailhub import criteria as sk
from twisted_mailhub.backends import textindex
from twisted_mailhub.backends.folders import compact_summaries
from twisted_mailhub.backends.maildir import MaildirBackend
from twisted_mailhub.backends.mbox import MboxBackend
from twisted_mailhub.imap.search import SearchContext, search
from twisted_mailhub.interfaces import ITextIndexedMailbox
from twisted_mailhub.model import AppendRequest

DATE = datetime(2024, 3, 1, 9, 0, tzinfo=timezone.utc)


def _requests(corpus=CORPUS):
    flags = [frozenset({"\\Seen"}) if i % 2 else frozenset() for i in range(len(corpus))]
    return [AppendRequest(data, flags[i], DATE + timedelta(hours=i))
            for i, data in enumerate(corpus)]


def _entries(path: str) -> set[str]:
    """The identities the index file at C{path} has entries for."""
    conn = sqlite3.connect(path)
    try:
        identities = {row[0] for row in conn.execute("SELECT identity FROM entries")}
        texts = conn.execute("SELECT count(*) FROM texts").fetchone()[0]
    finally:
        conn.close()
    assert texts == len(identities), (texts, identities)
    return identities


def _message(subject: str, body: str) -> bytes:
    return (f"From: Ann <ann@example.org>\r\nTo: alice@example.org\r\n"
            f"Subject: {subject}\r\nDate: Fri, 01 Mar 2024 09:00:00 +0000\r\n\r\n"
            f"{body}\r\n").encode()


class _FileStoreIndex:
    backend_class: type

    def open(self, root: str | None = None):
        """A backend on C{root} (new when C{None}), as a new process would open it."""
        if root is None:
            root = os.path.abspath(self.mktemp())
            os.makedirs(root)
        backend = self.backend_class(root)
        self.addCleanup(backend.close)
        return backend

    async def filled(self):
        backend = self.open()
        store = await backend.open_store("alice")
        inbox = await store.get_mailbox("INBOX")
        metas = await inbox.append(_requests())
        return backend, store, inbox, metas

    async def assert_generic(self, mailbox, keys=None, reads_none: bool = False) -> None:
        """Every key finds what the generic evaluator finds."""
        context = SearchContext(await mailbox.uids(), set(), now=DATE)
        expected = {}
        for key in keys or _corpus_keys():
            expected[key] = await search(_GenericOnly(mailbox), key, context)
        reads = spy_content_reads(self, mailbox._store.backend)
        for key, found in expected.items():
            self.assertEqual(await search(mailbox, key, context), found, key)
        if reads_none:
            self.assertEqual(reads, [])

    async def test_corpus_matches_generic_evaluator(self) -> None:
        backend, store, inbox, metas = await self.filled()
        await inbox.store_flags([metas[3].uid], "add", {"\\Flagged"})
        self.assertTrue(ITextIndexedMailbox.providedBy(inbox))
        # Keys of BODY and TEXT alone are answered without reading a message.
        texts = [k for k in _corpus_keys() if isinstance(k, (sk.Body, sk.Text))]
        await self.assert_generic(inbox, texts, reads_none=True)
        await self.assert_generic(inbox)

    async def test_filled_at_append(self) -> None:
        backend, store, inbox, metas = await self.filled()
        self.assertEqual(_entries(store.text_index_path), {m.identity for m in metas})
        # It holds the mail's text: only the owner reads it.
        self.assertEqual(os.stat(store.text_index_path).st_mode & 0o777, 0o600)
        # A restart searches without reading a message.
        again = await (await self.open(backend.root).open_store("alice")).get_mailbox("INBOX")
        await self.assert_generic(again, [sk.Text("résumé"), sk.Body("привет"),
                                          sk.Not(sk.Body("ab"))], reads_none=True)

    async def test_messages_without_entries_are_indexed_by_the_first_search(self) -> None:
        backend, store, inbox, metas = await self.filled()
        others = [_message(f"delivered {i}", f"zanzibar number {i}") for i in range(3)]
        self.deliver_elsewhere(store, others)
        self.assertEqual(len(await inbox.uids()), len(CORPUS) + len(others))
        context = SearchContext(await inbox.uids(), set())
        found = await search(inbox, sk.Text("ZANZIBAR"), context)
        self.assertEqual(found, (await inbox.uids())[len(CORPUS):])
        self.assertEqual(len(_entries(store.text_index_path)), len(CORPUS) + len(others))
        # Indexed now: the next search reads nothing.
        await self.assert_generic(inbox, [sk.Text("zanzibar"), sk.Body("number 1")],
                                  reads_none=True)

    async def test_batches_of_messages_without_entries(self) -> None:
        self.patch(textindex, "FILL_BATCH", 2)
        self.patch(__import__("twisted_mailhub.backends.folders", fromlist=["x"]),
                   "FILL_BATCH", 2)
        backend = self.open()
        store = await backend.open_store("alice")
        inbox = await store.get_mailbox("INBOX")
        self.deliver_elsewhere(store, CORPUS)
        await self.assert_generic(inbox)
        self.assertEqual(len(_entries(store.text_index_path)), len(CORPUS))

    async def test_deleted_index_is_made_again(self) -> None:
        backend, store, inbox, metas = await self.filled()
        await self.assert_generic(inbox, [sk.Text("résumé")])
        os.unlink(store.text_index_path)
        await self.assert_generic(inbox)
        self.assertEqual(_entries(store.text_index_path), {m.identity for m in metas})

    async def test_damaged_index_is_made_again(self) -> None:
        backend, store, inbox, metas = await self.filled()
        with open(store.text_index_path, "r+b") as f:
            f.seek(0)
            f.write(b"this is no SQLite database" * 100)
        await self.assert_generic(inbox)
        # In a process that had not opened it yet, too.
        with open(store.text_index_path, "wb") as f:
            f.write(os.urandom(8192))
        again = await (await self.open(backend.root).open_store("alice")).get_mailbox("INBOX")
        await self.assert_generic(again)
        self.assertEqual(_entries(store.text_index_path), {m.identity for m in metas})

    async def test_unusable_index_leaves_search_to_the_generic_evaluator(self) -> None:
        self.patch(textindex, "_SCHEMA", tuple(
            ddl.replace("fts5(", "no_such_module(") for ddl in textindex._SCHEMA))
        backend, store, inbox, metas = await self.filled()
        self.assertIsNone(await inbox.text_matches([("text", "résumé")]))
        await self.assert_generic(inbox)

    async def test_a_copy_shares_the_entry(self) -> None:
        from twisted_mailhub.backends.base import copy_messages

        backend, store, inbox, metas = await self.filled()
        await store.create_mailbox("Archive")
        archive = await store.get_mailbox("Archive")
        pairs = await copy_messages(inbox, archive, [m.uid for m in metas[:4]])
        self.assertEqual(len(pairs), 4)
        self.assertEqual(_entries(store.text_index_path), {m.identity for m in metas})
        await self.assert_generic(archive, [sk.Text("привет"), sk.Body("résumé"),
                                            sk.Body("a")], reads_none=True)

    async def test_entries_of_gone_messages_go_at_compaction(self) -> None:
        backend, store, inbox, metas = await self.filled()
        await store.create_mailbox("Archive")
        archive = await store.get_mailbox("Archive")
        from twisted_mailhub.backends.base import copy_messages

        await copy_messages(inbox, archive, [metas[0].uid])
        gone = [m.uid for m in metas[:3]]
        await inbox.store_flags(gone, "add", {"\\Deleted"})
        await inbox.expunge()
        await compact_summaries(store)
        # The copy in Archive keeps the first message's entry.
        self.assertEqual(_entries(store.text_index_path),
                         {m.identity for m in metas[3:]} | {metas[0].identity})
        await self.assert_generic(inbox)
        await self.assert_generic(archive)

    async def test_another_process_sees_pruned_entries_indexed_again(self) -> None:
        backend, store, inbox, metas = await self.filled()
        # Another process knows every entry...
        other = await (await self.open(backend.root).open_store("alice")).get_mailbox("INBOX")
        await self.assert_generic(other, [sk.Text("résumé")])
        # ... then this one removes all of them, as if gone.
        index = backend.text_indexes.at(store.text_index_path)
        await backend.run(index.prune, frozenset())
        self.assertEqual(_entries(store.text_index_path), set())
        await self.assert_generic(other)
        self.assertEqual(_entries(store.text_index_path), {m.identity for m in metas})


class MboxIndexTests(_FileStoreIndex, unittest.TestCase):
    backend_class = MboxBackend

    def deliver_elsewhere(self, store, messages) -> None:
        """Add C{messages} to INBOX as another mail program would."""
        spool = mailbox.mbox(os.path.join(store.directory, "INBOX"), create=False)
        spool.lock()
        try:
            for data in messages:
                spool.add(data)
            spool.flush()
        finally:
            spool.unlock()
            spool.close()

    async def test_check_repair_prunes(self) -> None:
        backend, store, inbox, metas = await self.filled()
        await inbox.store_flags([metas[0].uid], "add", {"\\Deleted"})
        await inbox.expunge()
        await backend.check(["alice"], repair=False)
        self.assertEqual(len(_entries(store.text_index_path)), len(metas))
        await backend.check(["alice"], repair=True)
        self.assertEqual(_entries(store.text_index_path), {m.identity for m in metas[1:]})


class MaildirIndexTests(_FileStoreIndex, unittest.TestCase):
    backend_class = MaildirBackend

    def deliver_elsewhere(self, store, messages) -> None:
        """Deliver C{messages} into INBOX's C{new/} as procmail would."""
        spool = mailbox.Maildir(store.directory, create=False)
        for data in messages:
            spool.add(mailbox.MaildirMessage(data))
        spool.close()


# -- end to end -------------------------------------------------------------------------


class _SearchOverIMAP:
    """SEARCH TEXT and BODY from imaplib, on a file store, use its index."""

    async def test_search_text_and_body(self) -> None:
        store = await self.backend.open_store("alice")
        inbox = await store.get_mailbox("INBOX")
        await inbox.append(_requests())
        criteria = {"BODY extraordinary": sk.Body("extraordinary"),
                    "TEXT quarterly": sk.Text("quarterly"), "BODY ab": sk.Body("ab"),
                    'TEXT "subject: ok"': sk.Text("subject: ok"),
                    "BODY minutes": sk.Body("minutes"), "NOT BODY a": sk.Not(sk.Body("a")),
                    "TEXT résumé": sk.Text("RÉSUMÉ"), "SEEN TEXT ab": sk.And(
                        (sk.Flag("\\Seen"), sk.Text("ab")))}
        context = SearchContext(await inbox.uids(), set())
        expected = {name: await search(_GenericOnly(inbox), key, context)
                    for name, key in criteria.items()}
        self.assertTrue(any(expected.values()))

        def client():
            c = self.imaplib_client()
            try:
                c.select("INBOX")
                found = {}
                for name in criteria:
                    if name.isascii():
                        typ, data = c.uid("SEARCH", name)
                    else:
                        c.literal = "RÉSUMÉ".encode("utf-8")
                        typ, data = c.uid("SEARCH", "CHARSET", "UTF-8", "TEXT")
                    assert typ == "OK", (name, data)
                    found[name] = [int(n) for n in data[0].split()]
                return found
            finally:
                c.logout()

        reads = spy_content_reads(self, self.backend)
        self.assertEqual(await self.in_thread(client), expected)
        self.assertEqual(reads, [])


class MboxSearchOverIMAPTests(_SearchOverIMAP, IMAPServerTestCase):
    store = "mbox"


class MaildirSearchOverIMAPTests(_SearchOverIMAP, IMAPServerTestCase):
    store = "maildir"
