"""
MOVE and UID MOVE (RFC 6851) as clients see them, and CREATE / RENAME
racing from two connections, on every store.

Section 3.3: the mover gets COPYUID in an untagged OK, then the EXPUNGEs;
other sessions see only the EXPUNGEs (no \\Deleted flag is ever set, so no
FETCH of one), and the destination gets the messages with their flags and
INTERNALDATE.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from harness import IMAPServerTestCase, on_every_store

from tests_messages import simple_message
from twisted_mailhub.model import AppendRequest

ZONE = timezone(timedelta(hours=2))
DATES = [datetime(2021, 3, day, 9, 15, 0, tzinfo=ZONE) for day in (1, 2, 3, 4)]
FLAGS = [
    frozenset({"\\Flagged", "$Label1"}),
    frozenset({"\\Seen"}),
    # Already \Deleted before the MOVE: kept, like COPY keeps it.
    frozenset({"\\Seen", "\\Deleted"}),
    frozenset(),
]
COPYUID = re.compile(rb"^\* OK \[COPYUID (\d+) ([\d:,]+) ([\d:,]+)\]")


def login(client, tag: bytes = b"a") -> None:
    client.line()
    client.command(tag + b"0 LOGIN alice wonderland")


def status_of(lines: list[bytes]) -> dict[str, int]:
    """The items of the one untagged STATUS among C{lines}."""
    [line] = [ln for ln in lines if ln.startswith(b"* STATUS ")]
    items = line[line.rindex(b"(") + 1:line.rindex(b")")].split()
    return {items[i].decode(): int(items[i + 1]) for i in range(0, len(items), 2)}


@on_every_store
class MoveTests(IMAPServerTestCase):
    async def fill(self, name: str, requests: list[AppendRequest]) -> list:
        store = await self.backend.open_store("alice")
        if name != "INBOX":
            await store.create_mailbox(name)
        mailbox = await store.get_mailbox(name)
        return await mailbox.append(requests)

    async def four_messages(self) -> list:
        await self.fill("Archive", [])
        return await self.fill("INBOX", [
            AppendRequest(simple_message(f"message {n}"), FLAGS[n], DATES[n]) for n in range(4)
        ])

    async def test_idler_sees_only_expunges_and_mover_gets_copyuid(self) -> None:
        metas = await self.four_messages()

        def run():
            idler, mover = self.raw(), self.raw()
            login(idler, b"i")
            login(mover, b"m")
            idler.command(b"i1 SELECT INBOX")
            idler.send(b"i2 IDLE\r\n")
            plus = idler.line()
            mover.command(b"m1 SELECT INBOX")
            moved = mover.command(b"m2 UID MOVE 1:3 Archive")
            # Everything the idler is told until it has three EXPUNGEs.
            pushed = []
            while sum(line.endswith(b" EXPUNGE\r\n") for line in pushed) < 3:
                pushed.append(idler.line())
            idler.send(b"DONE\r\n")
            pushed += idler.until_tagged(b"i2")[:-1]
            after = idler.command(b"i3 UID FETCH 1:* (FLAGS)")
            for client, tag in ((idler, b"i"), (mover, b"m")):
                client.command(tag + b"9 LOGOUT")
                client.close()
            return plus, moved, pushed, after

        plus, moved, pushed, after = await self.in_thread(run)
        self.assertTrue(plus.startswith(b"+ "))
        self.assertEqual(pushed, [b"* 1 EXPUNGE\r\n"] * 3)
        # RFC 6851 section 4.3: COPYUID untagged, before the EXPUNGEs.
        match = COPYUID.match(moved[0])
        self.assertIsNotNone(match, moved)
        self.assertEqual(match.group(2, 3), (b"1:3", b"1:3"))
        self.assertEqual(moved[1:], [b"* 1 EXPUNGE\r\n"] * 3 + [b"m2 OK MOVE completed\r\n"])
        # The idler selected first, so the one left is \Recent for it.
        self.assertEqual(after[0], b"* 1 FETCH (UID %d FLAGS (\\Recent))\r\n" % metas[3].uid)
        archive = await (await self.backend.open_store("alice")).get_mailbox("Archive")
        self.assertEqual(int(match.group(1)), archive.uidvalidity)

    async def test_destination_keeps_flags_and_date_and_counters_are_right(self) -> None:
        metas = await self.four_messages()

        def run():
            client = self.imapclient_client()
            client.normalise_times = False
            client.select_folder("INBOX")
            client.move([1, 2, 3], "Archive")
            statuses = {
                name: client.folder_status(name, ["MESSAGES", "UNSEEN", "UIDNEXT", "DELETED",
                                                  "SIZE", "RECENT"])
                for name in ("INBOX", "Archive")
            }
            client.select_folder("Archive", readonly=True)
            fetched = client.fetch([1, 2, 3], ["FLAGS", "INTERNALDATE", "RFC822.SIZE"])
            client.logout()
            return statuses, fetched

        statuses, fetched = await self.in_thread(run)
        sizes = [meta.size for meta in metas]
        self.assertEqual(
            {k.decode(): v for k, v in statuses["INBOX"].items()},
            {"MESSAGES": 1, "UNSEEN": 1, "UIDNEXT": 5, "DELETED": 0, "SIZE": sizes[3],
             "RECENT": 0})
        self.assertEqual(
            {k.decode(): v for k, v in statuses["Archive"].items()},
            {"MESSAGES": 3, "UNSEEN": 1, "UIDNEXT": 4, "DELETED": 1, "SIZE": sum(sizes[:3]),
             "RECENT": 3})
        self.assertEqual(sorted(fetched), [1, 2, 3])
        for n in range(3):
            item = fetched[n + 1]
            flags = {f.decode() for f in item[b"FLAGS"]} - {"\\Recent"}
            self.assertEqual(flags, set(FLAGS[n]))
            self.assertEqual(item[b"INTERNALDATE"], DATES[n])
            self.assertEqual(item[b"RFC822.SIZE"], sizes[n])

    async def test_move_of_a_hundred(self) -> None:
        await self.fill("Archive", [])
        await self.fill("INBOX", [
            AppendRequest(simple_message(f"bulk {n}"), frozenset({"\\Seen"} if n % 2 else ()))
            for n in range(100)
        ])

        def run():
            client = self.raw()
            login(client)
            client.command(b"a1 SELECT INBOX")
            moved = client.command(b"a2 UID MOVE 1:100 Archive")
            inbox = client.command(b"a3 STATUS INBOX (MESSAGES UNSEEN)")
            archive = client.command(b"a4 STATUS Archive (MESSAGES UNSEEN UIDNEXT)")
            client.command(b"a9 LOGOUT")
            client.close()
            return moved, inbox, archive

        moved, inbox, archive = await self.in_thread(run)
        self.assertEqual(COPYUID.match(moved[0]).group(2, 3), (b"1:100", b"1:100"))
        self.assertEqual(moved[1:], [b"* 1 EXPUNGE\r\n"] * 100 + [b"a2 OK MOVE completed\r\n"])
        self.assertEqual(status_of(inbox), {"MESSAGES": 0, "UNSEEN": 0})
        self.assertEqual(status_of(archive), {"MESSAGES": 100, "UNSEEN": 50, "UIDNEXT": 101})

    async def test_move_into_the_selected_mailbox(self) -> None:
        # RFC 6851 section 3.3 allows it: new UIDs, the old ones expunged.
        metas = await self.four_messages()

        def run():
            client = self.raw()
            login(client)
            client.command(b"a1 SELECT INBOX")
            moved = client.command(b"a2 UID MOVE 1 INBOX")
            fetched = client.command(b"a3 UID FETCH 1:* (FLAGS)")
            client.command(b"a9 LOGOUT")
            client.close()
            return moved, fetched

        moved, fetched = await self.in_thread(run)
        self.assertEqual(COPYUID.match(moved[0]).group(2, 3), (b"1", b"5"))
        self.assertEqual(moved[1], b"* 1 EXPUNGE\r\n")
        self.assertEqual(moved[-1], b"a2 OK MOVE completed\r\n")
        self.assertIn(b"* 4 EXISTS\r\n", moved)
        self.assertEqual([line.split(b" FLAGS")[0] for line in fetched[:-1]],
                         [b"* %d FETCH (UID %d" % (n + 1, uid) for n, uid in
                          enumerate([m.uid for m in metas[1:]] + [5])])
        self.assertIn(b"$Label1", fetched[3])

    async def test_move_to_missing_mailbox_moves_nothing(self) -> None:
        await self.four_messages()

        def run():
            client = self.raw()
            login(client)
            client.command(b"a1 SELECT INBOX")
            refused = client.command(b"a2 MOVE 1:2 Nowhere")
            fetched = client.command(b"a3 FETCH 1:* (FLAGS)")
            listed = client.command(b'a4 LIST "" *')
            client.command(b"a9 LOGOUT")
            client.close()
            return refused, fetched, listed

        refused, fetched, listed = await self.in_thread(run)
        self.assertEqual(len(refused), 1)
        self.assertTrue(refused[0].startswith(b"a2 NO [TRYCREATE]"), refused)
        self.assertEqual(len(fetched), 5)
        self.assertNotIn(b"\\Deleted)", b"".join(fetched[:2]))
        self.assertFalse(any(b"Nowhere" in line for line in listed))


@on_every_store
class TreeRaceTests(IMAPServerTestCase):
    """Two connections changing the tree at once: one wins, one is told why."""

    def two_clients(self):
        one, two = self.raw(), self.raw()
        login(one, b"x")
        login(two, b"y")
        return one, two

    def race(self, one, two, line_one: bytes, line_two: bytes) -> list[bytes]:
        # Both commands are on the wire before either answer is read.
        one.send(line_one + b"\r\n")
        two.send(line_two + b"\r\n")
        return [one.until_tagged(line_one.split()[0])[-1],
                two.until_tagged(line_two.split()[0])[-1]]

    async def test_concurrent_create_of_one_name(self) -> None:
        def run():
            one, two = self.two_clients()
            results = [self.race(one, two, b"x%d CREATE Projects%d/New" % (n, n),
                                 b"y%d CREATE Projects%d/New" % (n, n)) for n in range(4)]
            siblings = self.race(one, two, b"x8 CREATE Shared/Left", b"y8 CREATE Shared/Right")
            listed = one.command(b'x9 LIST "" *')
            for client in (one, two):
                client.close()
            return results, siblings, listed

        results, siblings, listed = await self.in_thread(run)
        for pair in results:
            answers = sorted(line.split(b" ", 1)[1] for line in pair)
            self.assertTrue(answers[0].startswith(b"NO [ALREADYEXISTS]"), pair)
            self.assertTrue(answers[1].startswith(b"OK"), pair)
        self.assertEqual([line.split(b" ")[1] for line in siblings], [b"OK", b"OK"])
        names = [line.rsplit(b" ", 1)[1].strip().strip(b'"') for line in listed[:-1]]
        expected = {b"INBOX", b"Shared", b"Shared/Left", b"Shared/Right"}
        for n in range(4):
            expected |= {b"Projects%d" % n, b"Projects%d/New" % n}
        self.assertEqual(sorted(names), sorted(expected))

    async def test_concurrent_rename_of_two_to_one_name(self) -> None:
        store = await self.backend.open_store("alice")
        for name, count in (("Left", 1), ("Right", 2)):
            await store.create_mailbox(name)
            mailbox = await store.get_mailbox(name)
            await mailbox.append([AppendRequest(simple_message(f"{name} {n}"))
                                  for n in range(count)])

        def run():
            one, two = self.two_clients()
            answers = self.race(one, two, b"x1 RENAME Left Target", b"y1 RENAME Right Target")
            listed = one.command(b'x2 LIST "" *')
            statuses = {}
            for name in (b"Left", b"Right", b"Target"):
                reply = one.command(b"x3 STATUS " + name + b" (MESSAGES)")
                statuses[name.decode()] = (status_of(reply)["MESSAGES"]
                                           if reply[-1].startswith(b"x3 OK") else None)
            for client in (one, two):
                client.close()
            return answers, listed, statuses

        answers, listed, statuses = await self.in_thread(run)
        outcomes = [line.split(b" ", 1)[1] for line in answers]
        won = [o.startswith(b"OK") for o in outcomes]
        self.assertEqual(sorted(won), [False, True], answers)
        self.assertTrue(outcomes[won.index(False)].startswith(b"NO [ALREADYEXISTS]"), answers)
        winner, loser = ("Left", "Right") if won[0] else ("Right", "Left")
        names = sorted(line.rsplit(b" ", 1)[1].strip().strip(b'"') for line in listed[:-1])
        self.assertEqual(names, sorted([b"INBOX", b"Target", loser.encode()]))
        # Nothing lost, nothing merged: the winner's messages under the new name.
        counts = {"Left": 1, "Right": 2}
        self.assertEqual(statuses, {winner: None, loser: counts[loser], "Target": counts[winner]})
