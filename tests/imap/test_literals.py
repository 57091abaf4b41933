"""
LITERAL+ and LITERAL- (RFC 7888) over a real connection: which one is
offered, and what a non-synchronizing literal over the bound gets.
"""

from __future__ import annotations

from harness import IMAPServerTestCase

from twisted_mailhub.policy import ServerPolicy


def capabilities(c) -> list[bytes]:
    [line, _] = c.command(b"c CAPABILITY")
    return line.split()[2:]


class LiteralPlusTests(IMAPServerTestCase):
    async def test_offered_alone_and_any_size_taken(self) -> None:
        def run():
            c = self.raw()
            c.line()
            caps = capabilities(c)
            c.command(b"t0 LOGIN alice wonderland")
            c.send(b"t1 APPEND INBOX {5000+}\r\n" + b"x" * 5000 + b"\r\n")
            out = c.until_tagged(b"t1")
            c.close()
            return caps, out

        caps, out = await self.in_thread(run)
        self.assertIn(b"LITERAL+", caps)
        self.assertNotIn(b"LITERAL-", caps)
        self.assertTrue(out[-1].startswith(b"t1 OK [APPENDUID "), out)


class LiteralMinusTests(IMAPServerTestCase):
    policy = ServerPolicy(auth_failure_delay=0.0, auth_failure_delay_max=0.0,
                          literal_minus=True)

    async def test_bound_of_4096_bytes(self) -> None:
        def run():
            c = self.raw()
            c.line()
            caps = capabilities(c)
            # Section 3's example works under LITERAL- as under LITERAL+.
            c.send(b"A001 LOGIN {5+}\r\nalice {10+}\r\nwonderland\r\n")
            login = c.until_tagged(b"A001")
            c.send(b"t1 APPEND INBOX {4096+}\r\n" + b"x" * 4096 + b"\r\n")
            fits = c.until_tagged(b"t1")
            # Section 5: larger is refused, BAD [TOOBIG] for an APPEND; the
            # literal's bytes and the rest of the command are not a command.
            c.send(b"t2 APPEND INBOX {4097+}\r\n" + b"t3 NOOP\r\n" * 455 + b"ab"
                   + b" {3+}\r\nabc\r\n")
            refused = c.until_tagged(b"t2")
            # A synchronizing literal of any size within the limits is fine.
            c.send(b"t4 APPEND INBOX {5000}\r\n")
            go_ahead = c.line()
            c.send(b"y" * 5000 + b"\r\n")
            large = c.until_tagged(b"t4")
            after = c.command(b"t5 STATUS INBOX (MESSAGES)")
            c.close()
            return caps, login, fits, refused, go_ahead, large, after

        caps, login, fits, refused, go_ahead, large, after = await self.in_thread(run)
        self.assertIn(b"LITERAL-", caps)
        self.assertNotIn(b"LITERAL+", caps)
        self.assertEqual(login[-1][:8], b"A001 OK ")
        self.assertTrue(fits[-1].startswith(b"t1 OK [APPENDUID "), fits)
        self.assertEqual(refused, [
            b"t2 BAD [TOOBIG] Non-synchronizing literal over 4096 bytes: 4097\r\n"])
        self.assertEqual(go_ahead[:2], b"+ ")
        self.assertTrue(large[-1].startswith(b"t4 OK [APPENDUID "), large)
        self.assertEqual(after, [b'* STATUS INBOX (MESSAGES 2)\r\n',
                                 b"t5 OK STATUS completed\r\n"])
