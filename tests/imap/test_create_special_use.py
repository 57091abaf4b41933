"""
CREATE-SPECIAL-USE (RFC 6154 section 3): CREATE name (USE (...)) on every
store, LIST showing the uses, and NO [USEATTR] for a use the server cannot
give, with nothing created.
"""

from __future__ import annotations

import re

from harness import IMAPServerTestCase, on_every_store

# RFC 8474 section 4.1: every successful CREATE names the new MAILBOXID,
# which differs each run; it is checked and set aside here.
_MAILBOXID = re.compile(rb"^(\S+ OK )\[MAILBOXID \([A-Za-z0-9_-]+\)\] (CREATE completed\r\n)$")


def _created(line: bytes) -> bytes:
    match = _MAILBOXID.match(line)
    if match:
        return match.group(1) + match.group(2)
    assert not line.endswith(b" OK CREATE completed\r\n"), f"no MAILBOXID: {line!r}"
    return line


@on_every_store
class CreateSpecialUseTests(IMAPServerTestCase):
    def session(self, *lines: bytes) -> list[list[bytes]]:
        c = self.raw()
        c.line()
        c.command(b"t0 LOGIN alice wonderland")
        out = [[_created(answer) for answer in c.command(line)] for line in lines]
        c.close()
        return out

    async def test_create_with_uses_and_list_them(self) -> None:
        out = await self.in_thread(
            self.session,
            b"t1 CAPABILITY",
            b't2 CREATE "Sent Items" (USE (\\Sent))',
            b"t3 CREATE Bin (USE (\\trash))",
            b"t4 CREATE Archive/2024 (USE (\\Archive))",
            b'''t5 LIST (SPECIAL-USE) "" "*"''',
            b'''t6 LIST "" "*" RETURN (SPECIAL-USE)''',
            b"t7 CREATE Plain (USE ())",
            b'''t8 LIST "" Plain''')
        self.assertIn(b"CREATE-SPECIAL-USE", out[0][0].split())
        self.assertEqual(out[1:4], [[b"t2 OK CREATE completed\r\n"],
                                    [b"t3 OK CREATE completed\r\n"],
                                    [b"t4 OK CREATE completed\r\n"]])
        self.assertEqual(out[4], [
            b'* LIST (\\HasNoChildren \\Archive) "/" Archive/2024\r\n',
            b'* LIST (\\HasNoChildren \\Trash) "/" Bin\r\n',
            b'* LIST (\\HasNoChildren \\Sent) "/" "Sent Items"\r\n',
            b"t5 OK LIST completed\r\n"])
        self.assertEqual(out[5], [
            b'* LIST (\\HasChildren) "/" Archive\r\n',
            b'* LIST (\\HasNoChildren \\Archive) "/" Archive/2024\r\n',
            b'* LIST (\\HasNoChildren \\Trash) "/" Bin\r\n',
            b'* LIST (\\HasNoChildren) "/" INBOX\r\n',
            b'* LIST (\\HasNoChildren \\Sent) "/" "Sent Items"\r\n',
            b"t6 OK LIST completed\r\n"])
        self.assertEqual(out[6], [b"t7 OK CREATE completed\r\n"])
        self.assertEqual(out[7], [b'* LIST (\\HasNoChildren) "/" Plain\r\n',
                                  b"t8 OK LIST completed\r\n"])
        # Kept by the store, not by the session.
        store = await self.backend.open_store("alice")
        infos = {info.name: info.special_use for info in await store.list_mailboxes()}
        self.assertEqual(infos["Sent Items"], frozenset({"\\Sent"}))

    async def test_a_use_the_server_cannot_give_creates_nothing(self) -> None:
        out = await self.in_thread(
            self.session,
            b"t1 CREATE Everything (USE (\\All))",
            b"t2 CREATE Starred (USE (\\Flagged \\Archive))",
            b"t3 CREATE Odd (USE (\\Important))",
            b"t4 CREATE Bare (USE (Sent))",
            b"t5 CREATE Twice (USE (\\Sent) USE (\\Drafts))",
            b'''t6 LIST "" "*"''')
        self.assertEqual(out[:4], [
            [b"t1 NO [USEATTR] Special use not supported: \\All\r\n"],
            [b"t2 NO [USEATTR] Special use not supported: \\Flagged\r\n"],
            [b"t3 NO [USEATTR] Special use not supported: \\Important\r\n"],
            [b"t4 BAD Invalid special-use attribute\r\n"]])
        # USE given twice: both sets of uses apply.
        self.assertEqual(out[4], [b"t5 OK CREATE completed\r\n"])
        self.assertEqual(out[5], [
            b'* LIST (\\HasNoChildren) "/" INBOX\r\n',
            b'* LIST (\\HasNoChildren \\Drafts \\Sent) "/" Twice\r\n',
            b"t6 OK LIST completed\r\n"])
