"""
IMAP and POP3 sessions over a timed store, on every store: the answers are
those of the store itself (its own COPY and MOVE included), and every call
the sessions made is observed, none of them failed.
"""

from __future__ import annotations

import poplib

from harness import IMAPServerTestCase, on_every_store
from tests_messages import simple_message
from twisted.internet import reactor

from twisted_mailhub.interfaces import ICopyableMailbox, IMoveableMailbox
from twisted_mailhub.metrics.timing import TimedBackend, unwrap
from twisted_mailhub.model import AppendRequest
from twisted_mailhub.pop3 import POP3ServerFactory

@on_every_store
class TimedSessionTests(IMAPServerTestCase):
    async def make_backend(self):
        self.timings: list[tuple[str, bool]] = []
        backend = await super().make_backend()
        return TimedBackend(backend, lambda op, seconds, failed: self.timings.append((op, failed)))

    async def test_imap_commands_over_a_timed_store(self) -> None:
        store = await self.backend.open_store("alice")
        await store.create_mailbox("Archive")
        inbox = await store.get_mailbox("INBOX")
        await inbox.append([AppendRequest(simple_message(f"message {n}")) for n in range(4)])

        def run():
            client = self.imaplib_client()
            results = {
                "select": client.select("INBOX"),
                "fetch": client.fetch("1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])"),
                "search": client.search(None, "SUBJECT", '"message 2"'),
                "store": client.store("1", "+FLAGS", "\\Deleted"),
                "copy": client.copy("2", "Archive"),
                "move": client.uid("MOVE", "3", "Archive"),
                "expunge": client.expunge(),
                "status": client.status("Archive", "(MESSAGES)"),
                "list": client.list(),
            }
            client.logout()
            return results

        r = await self.in_thread(run)
        self.assertEqual(r["select"], ("OK", [b"4"]))
        self.assertEqual(len([x for x in r["fetch"][1] if isinstance(x, tuple)]), 4)
        self.assertEqual(r["search"], ("OK", [b"3"]))
        self.assertEqual(r["copy"][0], "OK")
        self.assertEqual(r["move"][0], "OK")
        self.assertEqual(r["expunge"][0], "OK")
        self.assertEqual(r["status"][1], [b"Archive (MESSAGES 2)"])
        self.assertIn(b'"/" Archive', b" ".join(r["list"][1]))
        archive = await store.get_mailbox("Archive")
        self.assertEqual(len(await archive.uids()), 2)
        # Message 1 expunged, message 3 moved: 2 and 4 are left.
        self.assertEqual(len(await inbox.uids()), 2)

        operations = [op for op, _ in self.timings]
        self.assertGreaterEqual(set(operations), {
            "open_store", "get_mailbox", "append", "store_flags", "expunge", "list_mailboxes"})
        if ICopyableMailbox.providedBy(unwrap(inbox)):
            # The store's own COPY (and MOVE, or COPY and remove, for MOVE)
            # ran: it knew its mailbox behind the proxy, and nothing was
            # appended but the four messages.
            self.assertIn("copy_to", operations)
            if IMoveableMailbox.providedBy(unwrap(inbox)):
                self.assertIn("move_to", operations)
            self.assertEqual(operations.count("append"), 1)
        else:
            # Copied by reading and appending, once for COPY, once for MOVE.
            self.assertEqual(operations.count("append"), 3)
        self.assertFalse([op for op, failed in self.timings if failed])

    async def test_pop3_over_a_timed_store(self) -> None:
        store = await self.backend.open_store("alice")
        inbox = await store.get_mailbox("INBOX")
        await inbox.append([AppendRequest(simple_message(f"message {n}")) for n in range(3)])
        factory = POP3ServerFactory(self.factory.portal, policy=self.policy)
        listening = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(listening.stopListening)

        def run():
            pop = poplib.POP3("127.0.0.1", listening.getHost().port, timeout=20)
            pop.user("alice")
            pop.pass_("wonderland")
            count = pop.stat()[0]
            body = b"\r\n".join(pop.retr(2)[1])
            pop.dele(1)
            pop.quit()
            return count, body

        count, body = await self.in_thread(run)
        self.assertEqual(count, 3)
        self.assertIn(b"message 1", body)
        self.assertEqual(len(await inbox.uids()), 2)
        operations = {op for op, _ in self.timings}
        self.assertGreaterEqual(operations, {"open_store", "get_mailbox", "expunge"})
        self.assertFalse([op for op, failed in self.timings if failed])
