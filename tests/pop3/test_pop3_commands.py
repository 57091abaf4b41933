"""
Every RFC 1939 command end to end over a loopback socket, with Python's
poplib as a client program uses it, and byte-exact raw transcripts where
the framing matters.
"""

from __future__ import annotations

import poplib

from pop3_harness import POP3ServerTestCase, message, read_multiline

DOTTY = (b"From: dan@example.net\r\nSubject: dots\r\n\r\n"
         b".leading dot\r\n.\r\n..two\r\nlast line without newline")


class TransactionTests(POP3ServerTestCase):
    async def setUp(self) -> None:
        await super().setUp()
        self.metas = await self.deliver(message("one"), message("two"), DOTTY)

    async def test_stat_list_uidl(self) -> None:
        def run():
            c = self.pop()
            try:
                return c.stat(), c.list(), c.list(2), c.uidl(), c.uidl(3)
            finally:
                c.quit()

        stat, listing, one, uidl, uid3 = await self.in_thread(run)
        sizes = [m.size for m in self.metas]
        self.assertEqual(stat, (3, sum(sizes)))
        self.assertEqual(listing[1], [b"%d %d" % (i + 1, s) for i, s in enumerate(sizes)])
        self.assertEqual(one, b"+OK 2 %d" % sizes[1])
        validity = (await self.inbox()).uidvalidity
        self.assertEqual(uidl[1], [b"%d %d.%d" % (i + 1, validity, m.uid)
                                   for i, m in enumerate(self.metas)])
        self.assertEqual(uid3, b"+OK 3 %d.%d" % (validity, self.metas[2].uid))

    async def test_retr_returns_the_exact_message(self) -> None:
        def run():
            c = self.pop()
            try:
                return c.retr(1), c.retr(3)
            finally:
                c.quit()

        first, dotty = await self.in_thread(run)
        self.assertEqual(b"\r\n".join(first[1]) + b"\r\n", message("one"))
        # poplib un-stuffs; the content comes back as stored (plus the
        # CRLF the server adds to end the unterminated last line).
        self.assertEqual(b"\r\n".join(dotty[1]), DOTTY)

    async def test_retr_wire_bytes_are_stuffed_and_terminated(self) -> None:
        def run():
            raw = self.raw()
            raw.line()
            raw.send(b"USER alice\r\nPASS wonderland\r\nRETR 3\r\n")
            raw.line(), raw.line()
            status = raw.line()
            body = read_multiline(raw)
            raw.close()
            return status, b"".join(body)

        status, body = await self.in_thread(run)
        self.assertEqual(status, b"+OK %d octets\r\n" % len(DOTTY))
        self.assertEqual(body, b"From: dan@example.net\r\nSubject: dots\r\n\r\n"
                               b"..leading dot\r\n..\r\n...two\r\nlast line without newline\r\n")

    async def test_top(self) -> None:
        long_body = message("long", "\r\n".join(f"line {i}" for i in range(100)))
        await self.deliver(long_body)

        def run():
            c = self.pop()
            try:
                return c.top(4, 0), c.top(4, 2), c.top(1, 500)
            finally:
                c.quit()

        zero, two, everything = await self.in_thread(run)
        header = long_body.split(b"\r\n\r\n")[0].split(b"\r\n")
        self.assertEqual(zero[1], header + [b""])
        self.assertEqual(two[1], header + [b"", b"line 0", b"line 1"])
        self.assertEqual(b"\r\n".join(everything[1]) + b"\r\n", message("one"))

    async def test_dele_rset_and_counts(self) -> None:
        def run():
            c = self.pop()
            try:
                out = [c.dele(2), c.stat(), c.list()[1], c.uidl()[1]]
                for call in (lambda: c.retr(2), lambda: c.dele(2), lambda: c.list(2),
                             lambda: c.top(2, 0), lambda: c.uidl(2)):
                    try:
                        call()
                    except poplib.error_proto as e:
                        out.append(e.args[0])
                out += [c.rset(), c.stat()]
                return out
            finally:
                c.quit()

        dele, stat, listing, uidl, *errors, rset, stat_after = await self.in_thread(run)
        self.assertEqual(dele, b"+OK message 2 deleted")
        self.assertEqual(stat[0], 2)
        self.assertEqual([l.split()[0] for l in listing], [b"1", b"3"])
        self.assertEqual([l.split()[0] for l in uidl], [b"1", b"3"])
        self.assertEqual(errors, [b"-ERR message 2 already deleted"] * 5)
        self.assertTrue(rset.startswith(b"+OK"))
        self.assertEqual(stat_after[0], 3)
        # Nothing was expunged: RSET unmarked, and QUIT then had nothing to do.
        self.assertEqual(len(await (await self.inbox()).uids()), 3)

    async def test_quit_without_dele_keeps_everything(self) -> None:
        await self.in_thread(lambda: self.pop().quit())
        self.assertEqual(len(await (await self.inbox()).uids()), 3)

    async def test_dropped_connection_does_not_enter_update_state(self) -> None:
        def run():
            c = self.pop()
            c.dele(1)
            c.close()  # no QUIT

        await self.in_thread(run)
        self.assertEqual(len(await (await self.inbox()).uids()), 3)

    async def test_noop(self) -> None:
        def run():
            c = self.pop()
            try:
                return c.noop()
            finally:
                c.quit()

        self.assertEqual(await self.in_thread(run), b"+OK")

    async def test_bad_message_numbers_and_arguments(self) -> None:
        def run():
            raw = self.raw()
            raw.line()
            raw.send(b"USER alice\r\nPASS wonderland\r\n")
            raw.line(), raw.line()
            out = []
            for line in (b"RETR 0", b"RETR 4", b"RETR x", b"RETR", b"LIST 99", b"DELE -1",
                         b"TOP 1", b"TOP 1 x", b"TOP 1 -1", b"TOP 9 1", b"UIDL 4", b"STAT 1",
                         b"FROB", b"APOP alice 0123", b"LAST"):
                raw.send(line + b"\r\n")
                out.append((line, raw.line()))
            raw.close()
            return out

        for line, reply in await self.in_thread(run):
            self.assertTrue(reply.startswith(b"-ERR "), (line, reply))
        replies = dict(await self.in_thread(run))
        self.assertEqual(replies[b"RETR 4"], b"-ERR no such message\r\n")
        self.assertEqual(replies[b"FROB"], b"-ERR Unknown command: FROB\r\n")

    async def test_pipelined_commands_are_answered_in_order(self) -> None:
        def run():
            raw = self.raw()
            raw.line()
            raw.send(b"CAPA\r\nUSER alice\r\nPASS wonderland\r\nSTAT\r\nLIST 1\r\nRETR 1\r\n"
                     b"DELE 1\r\nSTAT\r\nQUIT\r\n")
            out = [raw.line()]
            out.append(b"".join(read_multiline(raw)))
            for _ in range(4):
                out.append(raw.line())
            out.append(raw.line())
            out.append(b"".join(read_multiline(raw)))
            out += [raw.line(), raw.line(), raw.line()]
            closed = raw.closed()
            raw.close()
            return out, closed

        out, closed = await self.in_thread(run)
        self.assertIn(b"PIPELINING\r\n", out[1])
        self.assertEqual(out[2], b"+OK send PASS\r\n")
        self.assertTrue(out[3].startswith(b"+OK alice has 3 messages"))
        self.assertTrue(out[4].startswith(b"+OK 3 "))
        self.assertEqual(out[7], message("one"))
        self.assertEqual(out[8], b"+OK message 1 deleted\r\n")
        self.assertTrue(out[9].startswith(b"+OK 2 "))
        self.assertTrue(out[10].startswith(b"+OK"))
        self.assertTrue(closed)


class StateTests(POP3ServerTestCase):
    async def test_transaction_commands_before_login_fail(self) -> None:
        def run():
            raw = self.raw()
            greeting = raw.line()
            out = []
            for line in (b"STAT", b"LIST", b"RETR 1", b"DELE 1", b"NOOP", b"RSET", b"UIDL",
                         b"TOP 1 1", b"PASS secret"):
                raw.send(line + b"\r\n")
                out.append(raw.line())
            raw.close()
            return greeting, out

        greeting, out = await self.in_thread(run)
        self.assertTrue(greeting.startswith(b"+OK "))
        self.assertEqual(out[0], b"-ERR STAT is not valid in the AUTHORIZATION state\r\n")
        self.assertEqual(out[-1], b"-ERR USER first\r\n")
        self.assertTrue(all(o.startswith(b"-ERR") for o in out))

    async def test_authorization_commands_after_login_fail(self) -> None:
        def run():
            c = self.pop()
            out = []
            for call in (lambda: c.user("alice"), lambda: c.pass_("x"),
                         lambda: c._shortcmd("AUTH PLAIN"), lambda: c._shortcmd("STLS")):
                try:
                    call()
                except poplib.error_proto as e:
                    out.append(e.args[0])
            c.quit()
            return out

        out = await self.in_thread(run)
        self.assertEqual(len(out), 4)
        self.assertTrue(all(b"not valid in the TRANSACTION state" in o for o in out))

    async def test_quit_in_authorization_state(self) -> None:
        def run():
            c = self.pop(login=None)
            return c.quit()

        self.assertTrue((await self.in_thread(run)).startswith(b"+OK"))

    async def test_wrong_password(self) -> None:
        def run():
            c = self.pop(login=None)
            c.user("alice")
            try:
                c.pass_("wrong")
            except poplib.error_proto as e:
                return e.args[0]
            finally:
                c.quit()

        error = await self.in_thread(run)
        self.assertEqual(error, b"-ERR [AUTH] Invalid credentials")

    async def test_overlong_line_is_refused_and_the_session_goes_on(self) -> None:
        def run():
            raw = self.raw()
            raw.line()
            raw.send(b"USER " + b"a" * 70000 + b"\r\nCAPA\r\n")
            out = raw.line(), raw.line()
            raw.close()
            return out

        too_long, capa = await self.in_thread(run)
        self.assertEqual(too_long, b"-ERR Line too long\r\n")
        self.assertTrue(capa.startswith(b"+OK"))

    async def test_too_many_bad_commands_closes(self) -> None:
        def run():
            raw = self.raw()
            raw.line()
            raw.send(b"FROB\r\n" * self.policy.max_bad_commands)
            lines = [raw.line() for _ in range(self.policy.max_bad_commands + 1)]
            closed = raw.closed()
            raw.close()
            return lines, closed

        lines, closed = await self.in_thread(run)
        self.assertEqual(lines[-1], b"-ERR Too many invalid commands\r\n")
        self.assertTrue(closed)
