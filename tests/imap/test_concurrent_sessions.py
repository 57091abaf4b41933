"""
Two clients on one mailbox see each other's changes, by the rules of
RFC 3501 sections 5.2, 5.5 and 7.4.1.
"""

from __future__ import annotations

from harness import IMAPServerTestCase, on_every_store

from tests_messages import simple_message


@on_every_store
class ConcurrentSessionTests(IMAPServerTestCase):
    async def test_each_sees_the_others_changes(self) -> None:
        def run():
            a = self.raw()
            b = self.raw()
            for c, tag in ((a, b"a"), (b, b"b")):
                c.line()
                c.command(tag + b"1 LOGIN alice wonderland")
            a.command(b"a2 SELECT INBOX")
            b.command(b"b2 SELECT INBOX")
            r = {}
            # B appends: A learns of it at its next command (EXISTS, RECENT).
            msg = simple_message("from B")
            b.send(b"b3 APPEND INBOX {%d}\r\n" % len(msg))
            b.line()
            b.send(msg + b"\r\n")
            r["b_append"] = b.until_tagged(b"b3")
            r["a_noop"] = a.command(b"a3 NOOP")
            # A flags it: B sees an untagged FETCH at its next command.
            r["a_store"] = a.command(b"a4 STORE 1 +FLAGS (\\Flagged)")
            r["b_noop"] = b.command(b"b4 NOOP")
            # A deletes and expunges: B is not told during FETCH, but at NOOP.
            a.command(b"a5 STORE 1 +FLAGS (\\Deleted)")
            r["a_expunge"] = a.command(b"a6 EXPUNGE")
            r["b_fetch"] = b.command(b"b5 FETCH 1 (FLAGS)")
            r["b_noop2"] = b.command(b"b6 NOOP")
            for c, tag in ((a, b"a"), (b, b"b")):
                c.command(tag + b"9 LOGOUT")
                c.close()
            return r

        r = await self.in_thread(run)
        # B's session is told first, so the message is \Recent for B only.
        self.assertIn(b"* 1 EXISTS\r\n", r["b_append"])
        self.assertIn(b"* 1 RECENT\r\n", r["b_append"])
        self.assertIn(b"* 1 EXISTS\r\n", r["a_noop"])
        self.assertIn(b"* 0 RECENT\r\n", r["a_noop"])
        self.assertIn(b"* 1 FETCH (FLAGS (\\Flagged", b"".join(r["b_noop"]))
        self.assertIn(b"* 1 EXPUNGE\r\n", r["a_expunge"])
        # No EXPUNGE during FETCH (RFC 3501 7.4.1); the gone message is reported.
        self.assertNotIn(b"* 1 EXPUNGE", b"".join(r["b_fetch"]))
        self.assertIn(b"[EXPUNGEISSUED]", r["b_fetch"][-1])
        self.assertIn(b"* 1 EXPUNGE\r\n", r["b_noop2"])

    async def test_recent_goes_to_one_session(self) -> None:
        def run():
            a = self.imaplib_client()
            a.append("INBOX", None, None, simple_message("one"))
            a.select("INBOX")
            a_recent = a.untagged_responses.get("RECENT")
            b = self.imaplib_client()
            b.select("INBOX")
            b_recent = b.untagged_responses.get("RECENT")
            a.logout()
            b.logout()
            return a_recent, b_recent

        a_recent, b_recent = await self.in_thread(run)
        self.assertEqual(a_recent, [b"1"])
        self.assertEqual(b_recent, [b"0"])

    async def test_idle_pushes_new_mail(self) -> None:
        def run():
            a = self.raw()
            a.line()
            a.command(b"a1 LOGIN alice wonderland")
            a.command(b"a2 SELECT INBOX")
            a.send(b"a3 IDLE\r\n")
            plus = a.line()
            b = self.imaplib_client()
            b.append("INBOX", None, None, simple_message("pushed"))
            pushed = a.line()
            pushed2 = a.line()
            a.send(b"DONE\r\n")
            done = a.until_tagged(b"a3")
            b.logout()
            a.command(b"a4 LOGOUT")
            a.close()
            return plus, pushed, pushed2, done

        plus, pushed, pushed2, done = await self.in_thread(run)
        self.assertTrue(plus.startswith(b"+ "))
        self.assertEqual(pushed, b"* 1 EXISTS\r\n")
        self.assertEqual(pushed2, b"* 1 RECENT\r\n")
        self.assertEqual(done[-1], b"a3 OK IDLE terminated\r\n")
