"""
Malformed and hostile input over a socket: each gets a clear BAD (or NO),
the session goes on, and nothing is lost.
"""

from __future__ import annotations

from harness import IMAPServerTestCase, on_every_store

from twisted_mailhub.policy import ServerPolicy


@on_every_store
class BadInputTests(IMAPServerTestCase):
    policy = ServerPolicy(auth_failure_delay=0.0, auth_failure_delay_max=0.0,
                          max_line_length=8192, max_literal_size=100_000,
                          max_literal_size_unauthenticated=1000, max_bad_commands=50)

    def session(self, login: bool = True):
        c = self.raw()
        c.line()
        if login:
            c.command(b"t0 LOGIN alice wonderland")
        return c

    async def test_unknown_command(self) -> None:
        def run():
            c = self.session()
            bad = c.command(b"t1 FROBNICATE now")
            ok = c.command(b"t2 NOOP")
            c.close()
            return bad, ok

        bad, ok = await self.in_thread(run)
        self.assertTrue(bad[-1].startswith(b"t1 BAD "))
        self.assertIn(b"FROBNICATE", bad[-1])
        self.assertEqual(ok[-1], b"t2 OK NOOP completed\r\n")

    async def test_no_tag(self) -> None:
        def run():
            c = self.session()
            c.send(b"\r\n")
            line = c.line()
            ok = c.command(b"t2 NOOP")
            c.close()
            return line, ok

        line, ok = await self.in_thread(run)
        self.assertTrue(line.startswith(b"* BAD "))
        self.assertEqual(ok[-1], b"t2 OK NOOP completed\r\n")

    async def test_commands_in_wrong_state(self) -> None:
        def run():
            c = self.session(login=False)
            r = [c.command(b"t1 SELECT INBOX")[-1]]
            c.command(b"t2 LOGIN alice wonderland")
            r.append(c.command(b"t3 FETCH 1 FLAGS")[-1])
            r.append(c.command(b"t4 LOGIN alice wonderland")[-1])
            r.append(c.command(b"t5 CLOSE")[-1])
            c.close()
            return r

        r = await self.in_thread(run)
        self.assertTrue(r[0].startswith(b"t1 BAD "), r[0])
        self.assertTrue(r[1].startswith(b"t3 BAD "), r[1])
        self.assertTrue(r[2].startswith(b"t4 BAD "), r[2])
        self.assertTrue(r[3].startswith(b"t5 BAD "), r[3])

    async def test_invalid_sequence_sets(self) -> None:
        def run():
            c = self.session()
            c.send(b"t1 APPEND INBOX {5}\r\n")
            c.line()
            c.send(b"a: b\r\n")
            c.until_tagged(b"t1")
            c.command(b"t2 SELECT INBOX")
            r = [c.command(b"t3 FETCH 0 FLAGS")[-1],
                 c.command(b"t4 FETCH 1:x FLAGS")[-1],
                 c.command(b"t5 FETCH 5 FLAGS")[-1],
                 c.command(b"t6 FETCH 1,,2 FLAGS")[-1],
                 c.command(b"t7 UID FETCH 5:9 FLAGS")[-1],
                 c.command(b"t8 FETCH 1 FLAGS")[-1]]
            c.close()
            return r

        r = await self.in_thread(run)
        for line, tag in zip(r[:4], (b"t3", b"t4", b"t5", b"t6")):
            self.assertTrue(line.startswith(tag + b" BAD "), line)
        # Non-existent UIDs are not an error (RFC 3501 6.4.8).
        self.assertTrue(r[4].startswith(b"t7 OK"), r[4])
        self.assertTrue(r[5].startswith(b"t8 OK"), r[5])

    async def test_huge_line(self) -> None:
        def run():
            c = self.session()
            c.send(b"t1 NOOP " + b"x" * 20000 + b"\r\n")
            bad = c.line()
            ok = c.command(b"t2 NOOP")
            c.close()
            return bad, ok

        bad, ok = await self.in_thread(run)
        self.assertIn(b"BAD", bad)
        self.assertIn(b"TOOBIG", bad)
        self.assertEqual(ok[-1], b"t2 OK NOOP completed\r\n")

    async def test_oversize_literal_refused_before_sending(self) -> None:
        def run():
            c = self.session()
            c.send(b"t1 APPEND INBOX {200000}\r\n")
            refused = c.line()
            ok = c.command(b"t2 NOOP")
            c.close()
            return refused, ok

        refused, ok = await self.in_thread(run)
        self.assertTrue(refused.startswith(b"t1 "), refused)
        self.assertIn(b"TOOBIG", refused)
        self.assertEqual(ok[-1], b"t2 OK NOOP completed\r\n")

    async def test_small_literal_limit_before_login(self) -> None:
        def run():
            c = self.session(login=False)
            c.send(b"t1 LOGIN {5000}\r\n")
            refused = c.line()
            c.close()
            return refused

        refused = await self.in_thread(run)
        self.assertTrue(refused.startswith(b"t1 NO [TOOBIG] "), refused)

    async def test_truncated_literal_then_disconnect_loses_nothing(self) -> None:
        def run():
            c = self.session()
            c.send(b"t1 APPEND INBOX {100}\r\n")
            c.line()
            c.send(b"Subject: half\r\n\r\nonly part of it")
            c.close()
            d = self.imaplib_client()
            status = d.status("INBOX", "(MESSAGES)")
            d.logout()
            return status

        status = await self.in_thread(run)
        self.assertIn(b"(MESSAGES 0)", status[1][0])

    async def test_session_survives_garbage_bytes(self) -> None:
        def run():
            c = self.session()
            c.send(b"\x00\xff\xfe garbage (((\r\n")
            first = c.line()
            ok = c.command(b"t2 NOOP")
            c.close()
            return first, ok

        first, ok = await self.in_thread(run)
        self.assertIn(b"BAD", first)
        self.assertEqual(ok[-1], b"t2 OK NOOP completed\r\n")

    async def test_unadvertised_fetch_items_and_odd_ranges(self) -> None:
        # Found by fuzzing: these once answered NO [SERVERBUG].  SAVEDATE,
        # EMAILID and THREADID (RFC 8514, RFC 8474) are answered since.
        message = b"From: a@example.org\r\nSubject: s\r\n\r\nbody\r\n"

        def run():
            c = self.session()
            for _ in range(2):
                c.command(b"t1 APPEND INBOX {%d+}\r\n" % len(message) + message)
            c.command(b"t2 SELECT INBOX")
            r = {}
            for tag, line in [
                (b"f1", b"UID FETCH 3:1 (SAVEDATE BODY[]<4294967295.1>)"),
                (b"f2", b"FETCH 1 (EMAILID THREADID)"),
                (b"f3", b"FETCH 1 SAVEDATE"),
                (b"f4", b"UID FETCH 3:1 (BODY[]<4294967295.1>)"),
                (b"f5", b"SEARCH " + b"(" * 200 + b"ALL" + b")" * 200),
                (b"f6", b"UID STORE 1,1,1,1,1,1,1,2 +FLAGS.SILENT \\Draft"),
                (b"f7", b"UID FETCH 1:* (FLAGS)"),
            ]:
                r[tag] = c.command(tag + b" " + line)
            c.close()
            return r

        r = await self.in_thread(run)
        saved = rb'SAVEDATE "[ \d]\d-[A-Z][a-z]{2}-\d{4} \d\d:\d\d:\d\d \+0000"'
        self.assertEqual(len(r[b"f1"]), 3, r[b"f1"])
        for n, line in enumerate(r[b"f1"][:2], 1):
            self.assertRegex(line, rb'^\* %d FETCH \(UID %d ' % (n, n) + saved
                             + rb' BODY\[\]<4294967295> "" FLAGS \(\\Seen \\Recent\)\)\r\n$')
        self.assertEqual(r[b"f1"][2], b"f1 OK FETCH completed\r\n")
        self.assertRegex(r[b"f2"][0], rb"^\* 1 FETCH \(EMAILID \(M[0-9A-Za-z_-]+\) THREADID NIL\)")
        self.assertRegex(r[b"f3"][0], rb"^\* 1 FETCH \(" + saved + rb"\)\r\n$")
        for tag in (b"f2", b"f3"):
            self.assertEqual(r[tag][-1], tag + b" OK FETCH completed\r\n")
        # \Seen is already set (by f1): no FLAGS this time.
        self.assertEqual(r[b"f4"], [
            b'* 1 FETCH (UID 1 BODY[]<4294967295> "")\r\n',
            b'* 2 FETCH (UID 2 BODY[]<4294967295> "")\r\n',
            b"f4 OK FETCH completed\r\n"])
        self.assertTrue(r[b"f5"][-1].startswith(b"f5 BAD "), r[b"f5"])
        self.assertEqual(r[b"f6"], [b"f6 OK STORE completed\r\n"])
        self.assertEqual(r[b"f7"][:2], [b"* 1 FETCH (UID 1 FLAGS (\\Seen \\Draft \\Recent))\r\n",
                                        b"* 2 FETCH (UID 2 FLAGS (\\Seen \\Draft \\Recent))\r\n"])
