"""
WITHIN (RFC 5032): OLDER and YOUNGER over a real connection on every store,
the example of section 4, and the capability.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from harness import IMAPServerTestCase, on_every_store

from twisted_mailhub.model import AppendRequest
from twisted_mailhub.testing import make_message


@on_every_store
class WithinTests(IMAPServerTestCase):
    async def setUp(self) -> None:
        await super().setUp()
        now = datetime.now(timezone.utc).replace(microsecond=0)
        inbox = await (await self.backend.open_store("alice")).get_mailbox("INBOX")
        # 1: four days old, 2: two days old and seen, 3: an hour old,
        # 4: ten seconds old.
        await inbox.append([
            AppendRequest(make_message(1), frozenset(), now - timedelta(days=4)),
            AppendRequest(make_message(2), frozenset({"\\Seen"}), now - timedelta(days=2)),
            AppendRequest(make_message(3), frozenset(), now - timedelta(hours=1)),
            AppendRequest(make_message(4), frozenset(), now - timedelta(seconds=10)),
        ])

    async def test_older_and_younger(self) -> None:
        def run():
            client = self.imaplib_client()
            _, caps = client.capability()
            client.select("INBOX", readonly=True)
            out = [client.search(None, *key)[1][0] for key in (
                # Section 4: unseen messages of the past three days.
                ("UNSEEN", "YOUNGER", "259200"),
                ("OLDER", "259200"),
                ("YOUNGER", "600"),
                ("OLDER", "600"),
                ("OR", "OLDER", "172000", "YOUNGER", "600"),
                ("NOT", "YOUNGER", "7200"),
            )]
            _, uids = client.uid("SEARCH", "YOUNGER", "7200")
            out.append(uids[0])
            client.logout()
            return caps[0].split(), out

        caps, out = await self.in_thread(run)
        self.assertIn(b"WITHIN", caps)
        self.assertEqual(out, [b"3 4", b"1", b"4", b"1 2 3", b"1 2 4", b"1 2", b"3 4"])

    async def test_interval_must_be_a_nonzero_number(self) -> None:
        def run():
            c = self.raw()
            c.line()
            c.command(b"t0 LOGIN alice wonderland")
            c.command(b"t1 EXAMINE INBOX")
            out = [c.command(line) for line in (b"t2 SEARCH OLDER 0", b"t3 SEARCH YOUNGER",
                                                b"t4 SEARCH YOUNGER -5")]
            c.close()
            return out

        out = await self.in_thread(run)
        self.assertEqual([lines[-1][:7] for lines in out], [b"t2 BAD ", b"t3 BAD ", b"t4 BAD "])
