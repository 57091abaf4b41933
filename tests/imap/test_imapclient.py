"""The same server driven by imapclient, a widely used high-level client."""

from __future__ import annotations

from harness import IMAPServerTestCase, on_every_store
from tests_messages import simple_message


@on_every_store
class IMAPClientTests(IMAPServerTestCase):
    async def test_a_mail_client_session(self) -> None:
        def run():
            c = self.imapclient_client()
            r = {}
            r["caps"] = c.capabilities()
            r["ns"] = c.namespace()
            r["id"] = c.id_({"name": "test"})
            c.create_folder("Sent")
            for i in range(3):
                c.append("INBOX", simple_message(f"hello {i}", f"text {i}"), flags=["$Label"])
            r["folders"] = [f[2] for f in c.list_folders()]
            r["select"] = c.select_folder("INBOX")
            r["search"] = c.search(["SUBJECT", "hello 1"])
            r["gmail_like"] = c.search(["OR", "SUBJECT", "hello 0", "SUBJECT", "hello 2"])
            r["fetch"] = c.fetch([1, 2, 3], ["ENVELOPE", "FLAGS", "RFC822.SIZE", "BODY.PEEK[TEXT]"])
            c.add_flags([1], ["\\Seen", "\\Flagged"])
            c.remove_flags([1], ["$Label"])
            r["flags"] = c.get_flags([1])
            r["copy"] = c.copy([1, 2], "Sent")
            r["move"] = c.move([3], "Sent")
            c.delete_messages([2])
            r["expunge"] = c.expunge()
            r["status"] = c.folder_status("Sent", ["MESSAGES", "UIDNEXT"])
            r["unselect"] = c.unselect_folder()
            r["enable"] = c.enable("CONDSTORE")
            c.select_folder("Sent")
            r["condstore"] = c.fetch([1, 2, 3], ["FLAGS", "MODSEQ"])
            c.logout()
            return r

        r = await self.in_thread(run)
        for cap in (b"IDLE", b"UIDPLUS", b"MOVE", b"NAMESPACE", b"CONDSTORE"):
            self.assertIn(cap, r["caps"])
        self.assertEqual(r["ns"].personal, (("", "/"),))
        fields = r["id"][0]
        ident = dict(zip(fields[::2], fields[1::2]))
        self.assertEqual(ident[b"name"], b"twisted_mailhub")
        self.assertIn("Sent", r["folders"])
        self.assertEqual(r["select"][b"EXISTS"], 3)
        self.assertEqual(r["search"], [2])
        self.assertEqual(r["gmail_like"], [1, 3])
        envelope = r["fetch"][1][b"ENVELOPE"]
        self.assertEqual(envelope.subject, b"hello 0")
        self.assertEqual(r["fetch"][2][b"BODY[TEXT]"], b"text 1\r\n")
        self.assertEqual(set(r["flags"][1]), {b"\\Seen", b"\\Flagged", b"\\Recent"})
        self.assertEqual(r["status"][b"MESSAGES"], 3)
        self.assertEqual(r["enable"], [b"CONDSTORE"])
        modseqs = [v[b"MODSEQ"][0] for v in r["condstore"].values()]
        self.assertEqual(len(modseqs), 3)
        self.assertTrue(all(m > 0 for m in modseqs))

    async def test_idle_with_imapclient(self) -> None:
        def run():
            c = self.imapclient_client()
            c.select_folder("INBOX")
            c.idle()
            other = self.imapclient_client()
            other.append("INBOX", simple_message("arrives during IDLE"))
            responses = c.idle_check(timeout=10)
            c.idle_done()
            other.logout()
            c.logout()
            return responses

        responses = await self.in_thread(run)
        self.assertIn((1, b"EXISTS"), responses)
