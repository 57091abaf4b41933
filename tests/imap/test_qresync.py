"""
QRESYNC (RFC 7162 section 3.2): ENABLE, VANISHED in place of EXPUNGE,
SELECT/EXAMINE (QRESYNC ...), UID FETCH (CHANGEDSINCE n VANISHED) and the
CLOSED response code, as transcripts over a real socket on every store,
with the set arithmetic and the parser checked on their own first.
"""

from __future__ import annotations

import re

import pytest
from zope.interface import implementer

from harness import IMAPServerTestCase, on_every_store
from tests_messages import simple_message

from twisted_mailhub.imap import commands as c
from twisted_mailhub.imap import qresync
from twisted_mailhub.imap.parser import CommandError, CommandParser, CommandReceived
from twisted_mailhub.interfaces import IExpungeHistory
from twisted_mailhub.ranges import SequenceSet


def seq(text: str) -> SequenceSet:
    return SequenceSet.parse(text)


# -- the pieces --------------------------------------------------------------


def test_seq_match_floor_follows_the_rfc_example() -> None:
    # RFC 7162 3.2.5.2: message 4 has UID 8 (a match), message 12 has UID
    # 25 where the client thinks 24 (no match): nothing at or below 8.
    view = [1, 2, 5, 8, 9, 10, 11, 13, 14, 15, 20, 25]
    assert qresync.seq_match_floor((seq("4,12"), seq("8,24")), view) == 8
    assert qresync.seq_match_floor((seq("4,12"), seq("8,25")), view) == 25
    assert qresync.seq_match_floor((seq("1"), seq("2")), view) == 0
    assert qresync.seq_match_floor(None, view) == 0


def test_seq_match_floor_walks_no_further_than_the_mailbox() -> None:
    # A huge range costs no more than the mailbox holds.
    view = list(range(3, 30000, 3))
    match = (seq("1:4294967295"), seq("3:4294967295"))
    assert qresync.seq_match_floor(match, view) == 3


def test_seq_match_of_the_rfc_b04_example() -> None:
    # Only UIDs divisible by three exist: 5000 -> 15000, ..., 9999 -> 29997.
    view = list(range(3, 30013, 3))
    match = (seq("5000,7500,9000,9990:9999"),
             seq("15000,22500,27000,29970,29973,29976,29979,29982,29985,29988,29991,"
                 "29994,29997"))
    assert qresync.seq_match_floor(match, view) == 29997
    # Nothing left to report among 1:29997.
    assert qresync.absent([(1, 29997)], view, 29997, 30012) == []


def test_absent_is_the_known_set_minus_the_view() -> None:
    view = [3, 6, 9]
    assert qresync.absent([(1, 10)], view, 0, 10) == [(1, 2), (4, 5), (7, 8), (10, 10)]
    assert qresync.absent([(1, 10)], view, 6, 9) == [(7, 8)]
    assert qresync.absent([(1, 2), (4, 4), (9, 4294967295)], view, 0, 12) == [
        (1, 2), (4, 4), (10, 12)]
    assert qresync.absent([], view, 0, 10) == []


def test_merged_and_contains() -> None:
    ranges = qresync.merged([(5, 7), (1, 2), (3, 3), (10, 12), (11, 15)])
    assert ranges == [(1, 3), (5, 7), (10, 15)]
    assert [n for n in range(17) if qresync.contains(ranges, n)] == [
        1, 2, 3, 5, 6, 7, 10, 11, 12, 13, 14, 15]


def test_vanished_earlier_of_no_uids_is_nothing() -> None:
    assert qresync.vanished_earlier([]) == []
    assert qresync.vanished_earlier([(300, 310), (405, 405), (411, 411)]) == [
        b"* VANISHED (EARLIER) 300:310,405,411\r\n"]


def parsed(line: bytes):
    """The one event of the complete command C{line}."""
    parser = CommandParser()
    parser.receive_data(line + b"\r\n")
    events = []
    while (event := parser.next_event()) is not None:
        events.append(event)
    assert len(events) == 1, events
    return events[0]


@pytest.mark.parametrize("line, expected", [
    (b"A03 SELECT INBOX (QRESYNC (67890007 90060115194045000 41:211,214:541))",
     (67890007, 90060115194045000, seq("41:211,214:541"), None)),
    (b"B04 SELECT INBOX (QRESYNC (67890007 90060115194045000 1:29997 "
     b"(5000,7500,9000,9990:9999 15000,22500,27000,29970,29973,29976,29979,29982,"
     b"29985,29988,29991,29994,29997)))",
     (67890007, 90060115194045000, seq("1:29997"),
      (seq("5000,7500,9000,9990:9999"),
       seq("15000,22500,27000,29970,29973,29976,29979,29982,29985,29988,29991,29994,"
           "29997")))),
    (b"a EXAMINE x (QRESYNC (1 2 (3 7)))", (1, 2, None, (seq("3"), seq("7")))),
])
def test_select_qresync_parameters_parse(line, expected) -> None:
    event = parsed(line)
    assert isinstance(event, CommandReceived), event
    assert isinstance(event.command, c.Select)
    assert event.command.qresync == expected


@pytest.mark.parametrize("line, message", [
    # RFC 7162 section 7: "*" is not allowed in known-uids, nor in the
    # sequence match data, which is ascending with as many numbers each.
    (b"a SELECT x (QRESYNC (1 2 1:*))", "Invalid known UIDs: * is not allowed"),
    (b"a SELECT x (QRESYNC (1 2 $))", "Invalid known UIDs: * is not allowed"),
    (b"a SELECT x (QRESYNC (1 2 1:9 (1:* 1:5)))",
     "Invalid known sequence set: * is not allowed"),
    (b"a SELECT x (QRESYNC (1 2 1:9 (1,2 3)))",
     "Known sequence set and known UID set differ in length"),
    (b"a SELECT x (QRESYNC (1 2 1:9 (2,1 3,4)))",
     "Invalid known sequence set: not in ascending order"),
    (b"a SELECT x (QRESYNC (1 2 1:9 (1,2 4,4)))",
     "Invalid known UID set: not in ascending order"),
])
def test_select_qresync_parameters_bad(line, message) -> None:
    event = parsed(line)
    # A tagged BAD, the mailbox untouched (RFC 7162 section 3.2.5).
    assert isinstance(event, CommandError), event
    assert event.message == message


# -- over the wire -------------------------------------------------------------


def literal(data: bytes) -> bytes:
    return b"{%d+}\r\n" % len(data) + data


def modseq_of(lines: list[bytes]) -> int:
    return int(re.search(rb"\[HIGHESTMODSEQ (\d+)\]", b"".join(lines)).group(1))


def uidvalidity_of(lines: list[bytes]) -> int:
    return int(re.search(rb"\[UIDVALIDITY (\d+)\]", b"".join(lines)).group(1))


def without_modseq(lines: list[bytes]) -> list[bytes]:
    """C{lines} without their MODSEQ items (CONDSTORE adds them to every FETCH)."""
    return [re.sub(rb" MODSEQ \(\d+\)", b"", line) for line in lines]


def modseqs(lines: list[bytes]) -> dict[int, int]:
    """UID -> MODSEQ of the FETCH responses among C{lines}."""
    out = {}
    for line in lines:
        m = re.search(rb"UID (\d+).*MODSEQ \((\d+)\)", line)
        if m:
            out[int(m.group(1))] = int(m.group(2))
    return out


@on_every_store
class QresyncTranscriptTests(IMAPServerTestCase):
    async def setUp(self) -> None:
        await super().setUp()
        store = await self.backend.open_store("alice")
        inbox = await store.get_mailbox("INBOX")
        from twisted_mailhub.model import AppendRequest

        await inbox.append([AppendRequest(simple_message(f"m{i}")) for i in range(1, 11)])
        await store.create_mailbox("Trash")

    def login(self, enable: bool = True):
        c = self.raw()
        c.line()
        c.command(b"t0 LOGIN alice wonderland")
        if enable:
            c.command(b"t00 ENABLE QRESYNC")
        return c

    async def test_capability_and_enable(self) -> None:
        def run():
            c = self.login(enable=False)
            out = [c.command(b"t1 CAPABILITY"), c.command(b"t2 ENABLE QRESYNC CONDSTORE"),
                   c.command(b"t3 ENABLE QRESYNC CONDSTORE")]
            d = self.login(enable=False)
            out += [d.command(b"t4 ENABLE CONDSTORE"), d.command(b"t5 ENABLE QRESYNC")]
            e = self.login(enable=False)
            out += [e.command(b"t6 ENABLE QRESYNC"), e.command(b"t7 ENABLE CONDSTORE")]
            for client in (c, d, e):
                client.close()
            return out

        out = await self.in_thread(run)
        self.assertIn(b"QRESYNC", out[0][0].split())
        self.assertIn(b"CONDSTORE", out[0][0].split())
        self.assertEqual(out[1], [b"* ENABLED QRESYNC CONDSTORE\r\n",
                                  b"t2 OK ENABLE completed\r\n"])
        # Enabled once; the second time there is nothing new to enable.
        self.assertEqual(out[2], [b"* ENABLED\r\n", b"t3 OK ENABLE completed\r\n"])
        self.assertEqual(out[3], [b"* ENABLED CONDSTORE\r\n", b"t4 OK ENABLE completed\r\n"])
        self.assertEqual(out[4], [b"* ENABLED QRESYNC\r\n", b"t5 OK ENABLE completed\r\n"])
        # QRESYNC implies CONDSTORE (RFC 7162 3.2.3).
        self.assertEqual(out[5], [b"* ENABLED QRESYNC\r\n", b"t6 OK ENABLE completed\r\n"])
        self.assertEqual(out[6], [b"* ENABLED\r\n", b"t7 OK ENABLE completed\r\n"])

    async def test_parameters_before_enable_are_bad(self) -> None:
        # RFC 7162 3.2.5 and 3.2.6: BAD unless ENABLE QRESYNC came first;
        # CONDSTORE alone is not enough.
        def run():
            c = self.login(enable=False)
            out = [c.command(b"t1 SELECT INBOX (QRESYNC (1 1))"),
                   c.command(b"t2 ENABLE CONDSTORE"),
                   c.command(b"t3 SELECT INBOX (QRESYNC (1 1))"),
                   c.command(b"t4 SELECT INBOX"),
                   c.command(b"t5 UID FETCH 1:* FLAGS (CHANGEDSINCE 1 VANISHED)"),
                   c.command(b"t6 FETCH 1:* FLAGS (CHANGEDSINCE 1 VANISHED)"),
                   c.command(b"t7 NOOP")]
            c.close()
            return out

        out = await self.in_thread(run)
        self.assertEqual(out[0], [b"t1 BAD QRESYNC is not enabled\r\n"])
        self.assertEqual(out[2], [b"t3 BAD QRESYNC is not enabled\r\n"])
        self.assertEqual(out[3][-1], b"t4 OK [READ-WRITE] SELECT completed\r\n")
        self.assertEqual(out[4], [b"t5 BAD VANISHED needs QRESYNC, which is not enabled\r\n"])
        self.assertEqual(out[5], [b"t6 BAD VANISHED is only allowed in UID FETCH\r\n"])
        self.assertEqual(out[6], [b"t7 OK NOOP completed\r\n"])

    def _changes_by_another_session(self):
        """
        A client reads the state, disconnects; a second session changes
        flags of 2 and 7, expunges 3, 4, 5 and 9.  Returns the first
        client's (UIDVALIDITY, HIGHESTMODSEQ) and the new MODSEQs of 2, 7.
        """
        a = self.login()
        select = a.command(b"a1 SELECT INBOX")
        a.command(b"a2 LOGOUT")
        a.close()
        b = self.login(enable=False)
        b.command(b"b1 SELECT INBOX")
        b.command(b"b2 STORE 3:5,9 +FLAGS.SILENT (\\Deleted)")
        b.command(b"b3 EXPUNGE")
        b.command(b"b4 UID STORE 2 +FLAGS.SILENT (\\Answered)")
        b.command(b"b5 UID STORE 7 +FLAGS.SILENT ($Forwarded)")
        changed = modseqs(b.command(b"b6 UID FETCH 2,7 (MODSEQ)"))
        b.command(b"b7 LOGOUT")
        b.close()
        return uidvalidity_of(select), modseq_of(select), changed

    async def test_select_qresync_after_another_sessions_changes(self) -> None:
        def run():
            uidvalidity, modseq, changed = self._changes_by_another_session()
            c = self.login()
            out = c.command(b"c1 SELECT INBOX (QRESYNC (%d %d))" % (uidvalidity, modseq))
            c.close()
            return uidvalidity, modseq, changed, out

        uidvalidity, modseq, changed, out = await self.in_thread(run)
        # The usual responses first (RFC 3501 6.3.1), HIGHESTMODSEQ among them.
        self.assertEqual(out[0], b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft"
                                 b" $Forwarded)\r\n")
        self.assertIn(b"* 6 EXISTS\r\n", out)
        self.assertIn(b"* OK [UIDVALIDITY %d] UIDs valid\r\n" % uidvalidity, out)
        i = out.index(b"* VANISHED (EARLIER) 3:5,9\r\n")
        self.assertTrue(any(b"HIGHESTMODSEQ" in line for line in out[:i]))
        # Then what changed: 2 and 7, at their sequence numbers now (2 and 4).
        self.assertEqual(out[i:], [
            b"* VANISHED (EARLIER) 3:5,9\r\n",
            b"* 2 FETCH (UID 2 FLAGS (\\Answered) MODSEQ (%d))\r\n" % changed[2],
            b"* 4 FETCH (UID 7 FLAGS ($Forwarded) MODSEQ (%d))\r\n" % changed[7],
            b"c1 OK [READ-WRITE] SELECT completed\r\n",
        ])

    async def test_known_uids_and_sequence_match(self) -> None:
        def run():
            uidvalidity, modseq, changed = self._changes_by_another_session()
            c = self.login()
            out = [
                # Only what the client asks about: UIDs 1:4 and 7.
                c.command(b"c1 EXAMINE INBOX (QRESYNC (%d %d 1:4,7))" % (uidvalidity, modseq)),
                # The client knows message 2 is UID 2 and 3 is UID 6 (true
                # now): nothing at or below 6 is reported.
                c.command(b"c2 EXAMINE INBOX (QRESYNC (%d %d 1:10 (2,3 2,6)))"
                          % (uidvalidity, modseq)),
                # A wrong pair (message 4 is UID 7, not 8) narrows nothing.
                c.command(b"c3 EXAMINE INBOX (QRESYNC (%d %d 1:10 (4 8)))"
                          % (uidvalidity, modseq)),
                # UIDVALIDITY mismatch: no VANISHED and no FETCH.
                c.command(b"c4 EXAMINE INBOX (QRESYNC (%d %d))" % (uidvalidity + 1, modseq)),
                # Since now: nothing.
                c.command(b"c5 EXAMINE INBOX (QRESYNC (%d %d))"
                          % (uidvalidity, max(changed.values()))),
            ]
            c.close()
            return changed, out

        changed, out = await self.in_thread(run)
        tail = [line for line in out[0] if b"VANISHED" in line or b"FETCH" in line]
        self.assertEqual(tail, [
            b"* VANISHED (EARLIER) 3:4\r\n",
            b"* 2 FETCH (UID 2 FLAGS (\\Answered) MODSEQ (%d))\r\n" % changed[2],
            b"* 4 FETCH (UID 7 FLAGS ($Forwarded) MODSEQ (%d))\r\n" % changed[7],
        ])
        # RFC 7162 3.2.11: each SELECT/EXAMINE that closes one says so first.
        self.assertEqual(out[1][0], b"* OK [CLOSED] Previous mailbox closed\r\n")
        tail = [line for line in out[1] if b"VANISHED" in line or b"FETCH" in line]
        self.assertEqual(tail, [
            b"* VANISHED (EARLIER) 9\r\n",
            b"* 2 FETCH (UID 2 FLAGS (\\Answered) MODSEQ (%d))\r\n" % changed[2],
            b"* 4 FETCH (UID 7 FLAGS ($Forwarded) MODSEQ (%d))\r\n" % changed[7],
        ])
        self.assertIn(b"* VANISHED (EARLIER) 3:5,9\r\n", out[2])
        self.assertFalse([line for line in out[3] if b"VANISHED" in line or b"FETCH" in line])
        self.assertEqual(out[3][-1], b"c4 OK [READ-ONLY] EXAMINE completed\r\n")
        self.assertFalse([line for line in out[4] if b"VANISHED" in line or b"FETCH" in line])

    async def test_uid_fetch_changedsince_vanished(self) -> None:
        def run():
            uidvalidity, modseq, changed = self._changes_by_another_session()
            c = self.login()
            c.command(b"c1 SELECT INBOX")
            out = [c.command(b"c2 UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d VANISHED)" % modseq),
                   c.command(b"c3 UID FETCH 4:8 (FLAGS) (CHANGEDSINCE %d VANISHED)" % modseq),
                   c.command(b"c4 UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d VANISHED)"
                             % max(changed.values()))]
            c.close()
            return changed, out

        changed, out = await self.in_thread(run)
        # RFC 7162 3.2.6, example 1: VANISHED (EARLIER) before the FETCHes.
        self.assertEqual(out[0], [
            b"* VANISHED (EARLIER) 3:5,9\r\n",
            b"* 2 FETCH (UID 2 FLAGS (\\Answered) MODSEQ (%d))\r\n" % changed[2],
            b"* 4 FETCH (UID 7 FLAGS ($Forwarded) MODSEQ (%d))\r\n" % changed[7],
            b"c2 OK FETCH completed\r\n",
        ])
        self.assertEqual(out[1], [
            b"* VANISHED (EARLIER) 4:5\r\n",
            b"* 4 FETCH (UID 7 FLAGS ($Forwarded) MODSEQ (%d))\r\n" % changed[7],
            b"c3 OK FETCH completed\r\n",
        ])
        self.assertEqual(out[2], [b"c4 OK FETCH completed\r\n"])

    async def test_vanished_in_a_live_session(self) -> None:
        def run():
            a = self.login()
            highest = modseq_of(a.command(b"a1 SELECT INBOX"))
            b = self.login(enable=False)
            b.command(b"b1 SELECT INBOX")
            b.command(b"b2 STORE 3,5 +FLAGS.SILENT (\\Deleted)")
            b.command(b"b3 EXPUNGE")
            out = [
                # Held back while a FETCH by number runs, with a HIGHESTMODSEQ
                # below the waiting expunge (RFC 7162 3.2 and section 6).
                a.command(b"a2 FETCH 1 (FLAGS)"),
                a.command(b"a3 NOOP"),
                # Sequence numbers are right after VANISHED: UID 4 is 3.
                a.command(b"a4 FETCH 3 (UID)"),
            ]
            b.command(b"b4 STORE 1 +FLAGS.SILENT (\\Deleted)")
            b.command(b"b5 EXPUNGE")
            out.append(a.command(b"a5 UID FETCH 1:* (UID)"))
            a.close()
            b.close()
            return highest, out

        highest, out = await self.in_thread(run)
        self.assertRegex(out[0][0], rb"^\* 1 FETCH \(FLAGS \(\\Recent\)")
        m = re.fullmatch(rb"\* OK \[HIGHESTMODSEQ (\d+)\] VANISHED delayed\r\n", out[0][1])
        self.assertIsNotNone(m, out[0])
        # Below the expunge's MODSEQ, which is above what SELECT said.
        self.assertGreaterEqual(int(m.group(1)), highest)
        self.assertEqual(out[0][2], b"a2 OK FETCH completed\r\n")
        self.assertEqual(out[1], [b"* VANISHED 3,5\r\n", b"a3 OK NOOP completed\r\n"])
        self.assertEqual(without_modseq(out[2]),
                         [b"* 3 FETCH (UID 4)\r\n", b"a4 OK FETCH completed\r\n"])
        # A UID command may be told by its end; until then the numbers are
        # those the client knows (UID 1, gone, is still message 1).
        self.assertTrue(out[3][-1].startswith(b"a5 OK "), out[3])
        self.assertEqual(without_modseq(out[3][:-1]), [
            b"* 2 FETCH (UID 2)\r\n", b"* 3 FETCH (UID 4)\r\n", b"* 4 FETCH (UID 6)\r\n",
            b"* 5 FETCH (UID 7)\r\n", b"* 6 FETCH (UID 8)\r\n", b"* 7 FETCH (UID 9)\r\n",
            b"* 8 FETCH (UID 10)\r\n", b"* VANISHED 1\r\n"])

    async def test_vanished_pushed_while_idling(self) -> None:
        def run():
            a = self.login()
            a.command(b"a1 SELECT INBOX")
            a.send(b"a2 IDLE\r\n")
            idling = a.line()
            b = self.login(enable=False)
            b.command(b"b1 SELECT INBOX")
            b.command(b"b2 STORE 4:6 +FLAGS.SILENT (\\Deleted)")
            b.command(b"b3 EXPUNGE")
            pushed = [a.line()]
            while not pushed[-1].startswith(b"* VANISHED"):
                pushed.append(a.line())
            a.send(b"DONE\r\n")
            done = a.until_tagged(b"a2")
            after = a.command(b"a3 FETCH 4 (UID)")
            a.close()
            b.close()
            return idling, pushed, done, after

        idling, pushed, done, after = await self.in_thread(run)
        self.assertEqual(idling, b"+ idling\r\n")
        # The \\Deleted flags first (FETCH), then the expunge.
        self.assertEqual(pushed[-1], b"* VANISHED 4:6\r\n")
        self.assertTrue(all(b" FETCH " in line for line in pushed[:-1]), pushed)
        self.assertEqual(done, [b"a2 OK IDLE terminated\r\n"])
        self.assertEqual(without_modseq(after), [b"* 4 FETCH (UID 7)\r\n",
                                                 b"a3 OK FETCH completed\r\n"])

    async def test_no_vanished_after_a_uid_search_by_message_number(self) -> None:
        # RFC 7162 3.2.10.2: UID SEARCH naming message numbers keeps them.
        def run():
            a = self.login()
            a.command(b"a1 SELECT INBOX")
            b = self.login(enable=False)
            b.command(b"b1 SELECT INBOX")
            b.command(b"b2 STORE 2 +FLAGS.SILENT (\\Deleted)")
            b.command(b"b3 EXPUNGE")
            out = [a.command(b"a2 UID SEARCH 1:3"), a.command(b"a3 UID SEARCH NOT 9:10"),
                   a.command(b"a4 UID SEARCH UID 1:3")]
            a.close()
            b.close()
            return out

        out = await self.in_thread(run)
        self.assertEqual(out[0][0], b"* SEARCH 1 3\r\n")
        self.assertNotIn(b"* VANISHED 2\r\n", out[0] + out[1])
        self.assertEqual(out[2][:2], [b"* SEARCH 1 3\r\n", b"* VANISHED 2\r\n"])

    async def test_own_expunge_uid_expunge_move_and_close(self) -> None:
        def run():
            c = self.login()
            select = c.command(b"c1 SELECT INBOX")
            out = [c.command(b"c2 STORE 2,4,5 +FLAGS.SILENT (\\Deleted)")]
            out.append(c.command(b"c3 EXPUNGE"))
            out.append(c.command(b"c4 STORE 1,2 +FLAGS.SILENT (\\Deleted)"))
            out.append(c.command(b"c5 UID EXPUNGE 1"))
            out.append(c.command(b"c6 UID MOVE 9:10 Trash"))
            out.append(c.command(b"c7 FETCH 1:* (UID)"))
            out.append(c.command(b"c8 STORE 1 +FLAGS.SILENT (\\Deleted)"))
            out.append(c.command(b"c9 CLOSE"))
            out.append(c.command(b"c10 STATUS INBOX (MESSAGES HIGHESTMODSEQ)"))
            c.close()
            return modseq_of(select), out

        highest, out = await self.in_thread(run)
        self.assertEqual(out[1][0], b"* VANISHED 2,4:5\r\n")
        m = re.fullmatch(rb"c3 OK \[HIGHESTMODSEQ (\d+)\] EXPUNGE completed\r\n", out[1][1])
        self.assertIsNotNone(m, out[1])
        after_expunge = int(m.group(1))
        self.assertGreater(after_expunge, highest)
        # STORE's own FETCH responses are silent; UID 3 (message 2) stays
        # as it is not in the UID set.
        self.assertEqual(out[3][0], b"* VANISHED 1\r\n")
        m = re.fullmatch(rb"c5 OK \[HIGHESTMODSEQ (\d+)\] EXPUNGE completed\r\n", out[3][1])
        self.assertIsNotNone(m, out[3])
        self.assertGreater(int(m.group(1)), after_expunge)
        move = out[4]
        self.assertRegex(move[0], rb"^\* OK \[COPYUID \d+ 9:10 \d+:\d+\] Moved\r\n$")
        self.assertEqual(move[1], b"* VANISHED 9:10\r\n")
        self.assertRegex(move[2], rb"^c6 OK \[HIGHESTMODSEQ \d+\] MOVE completed\r\n$")
        self.assertEqual(without_modseq(out[5]), [
            b"* 1 FETCH (UID 3)\r\n", b"* 2 FETCH (UID 6)\r\n", b"* 3 FETCH (UID 7)\r\n",
            b"* 4 FETCH (UID 8)\r\n", b"c7 OK FETCH completed\r\n"])
        # RFC 7162 3.2.8: CLOSE expunges silently, no HIGHESTMODSEQ either.
        self.assertEqual(out[7], [b"c9 OK CLOSE completed\r\n"])
        self.assertTrue(out[8][0].startswith(b"* STATUS INBOX (MESSAGES 3 "), out[8])

    async def test_close_and_unselect_send_no_closed(self) -> None:
        def run():
            c = self.login(enable=False)
            out = [c.command(b"c1 SELECT INBOX"), c.command(b"c2 UNSELECT"),
                   c.command(b"c3 SELECT INBOX"), c.command(b"c4 SELECT Trash"),
                   c.command(b"c5 CLOSE"), c.command(b"c6 EXAMINE Trash")]
            c.close()
            return out

        out = await self.in_thread(run)
        closed = b"* OK [CLOSED] Previous mailbox closed\r\n"
        self.assertNotIn(closed, out[0] + out[1] + out[2] + out[4] + out[5])
        # Without any CONDSTORE enabling command too (RFC 7162 3.2.11).
        self.assertEqual(out[3][0], closed)
        self.assertEqual(out[3].count(closed), 1)


class IncompleteHistoryTests(IMAPServerTestCase):
    """
    A store that forgot old expunges (L{IExpungeHistory}): asked about an
    older MODSEQ, every UID of the set that does not exist now is reported
    (RFC 7162 section 3.2.6), narrowed by the sequence match data.
    """

    async def setUp(self) -> None:
        from twisted_mailhub.backends import memory

        @implementer(IExpungeHistory)
        class Pruning(memory.MemoryMailbox):
            async def expunges_remembered_after(self) -> int:
                return self._state.forgotten

        self.patch(memory, "MemoryMailbox", Pruning)
        await super().setUp()
        store = await self.backend.open_store("alice")
        inbox = await store.get_mailbox("INBOX")
        from twisted_mailhub.model import AppendRequest

        await inbox.append([AppendRequest(simple_message(f"m{i}")) for i in range(1, 11)])
        self.inbox = inbox
        self.forget(0)

    def forget(self, upto: int) -> None:
        """Forget the expunges at or below MODSEQ C{upto}."""
        state = self.inbox._state
        state.forgotten = upto
        state.expunged = {uid: m for uid, m in state.expunged.items() if m > upto}

    async def test_resync_from_before_what_is_remembered(self) -> None:
        def before():
            c = self.raw()
            c.line()
            c.command(b"t0 LOGIN alice wonderland")
            select = c.command(b"t1 SELECT INBOX (CONDSTORE)")
            c.command(b"t2 STORE 2,3,8 +FLAGS.SILENT (\\Deleted)")
            c.command(b"t3 EXPUNGE")
            status = c.command(b"t4 STATUS INBOX (HIGHESTMODSEQ)")
            first = int(re.search(rb"HIGHESTMODSEQ (\d+)\)", status[0]).group(1))
            c.command(b"t7 STORE 5,6 +FLAGS.SILENT (\\Deleted)")
            c.command(b"t8 EXPUNGE")
            c.command(b"t9 LOGOUT")
            c.close()
            return uidvalidity_of(select), modseq_of(select), first

        uidvalidity, modseq, first = await self.in_thread(before)
        # UIDs 2, 3 and 8 went first, then 7 and 9 (messages 5 and 6 then):
        # the store forgets the first expunge, remembers the second.
        self.forget(first)

        def after():
            c = self.raw()
            c.line()
            c.command(b"t0 LOGIN alice wonderland")
            c.command(b"t1 ENABLE QRESYNC")
            out = [
                c.command(b"t2 EXAMINE INBOX (QRESYNC (%d %d))" % (uidvalidity, modseq)),
                c.command(b"t3 EXAMINE INBOX (QRESYNC (%d %d 1:10 (1,2 1,4)))"
                          % (uidvalidity, modseq)),
                c.command(b"t4 EXAMINE INBOX (QRESYNC (%d %d))" % (uidvalidity, first)),
                c.command(b"t5 UID FETCH 1:5 (FLAGS) (CHANGEDSINCE %d VANISHED)" % modseq),
            ]
            c.close()
            return out

        out = await self.in_thread(after)
        vanished = [[line for line in r if b"VANISHED" in line] for r in out]
        # Every UID of 1:UIDNEXT-1 that is not there.
        self.assertEqual(vanished[0], [b"* VANISHED (EARLIER) 2:3,7:9\r\n"])
        # Message 2 is UID 4: the client knows of all expunges up to it.
        self.assertEqual(vanished[1], [b"* VANISHED (EARLIER) 7:9\r\n"])
        # From a remembered MODSEQ: exactly the remembered expunges.
        self.assertEqual(vanished[2], [b"* VANISHED (EARLIER) 7,9\r\n"])
        self.assertEqual(vanished[3], [b"* VANISHED (EARLIER) 2:3\r\n"])


@on_every_store
class QresyncClientTests(IMAPServerTestCase):
    """What imaplib and imapclient see of a resync and of live expunges."""

    async def setUp(self) -> None:
        await super().setUp()
        store = await self.backend.open_store("alice")
        inbox = await store.get_mailbox("INBOX")
        from twisted_mailhub.model import AppendRequest

        await inbox.append([AppendRequest(simple_message(f"m{i}")) for i in range(1, 7)])

    async def test_imaplib_resync_and_live_vanished(self) -> None:
        def run():
            a = self.imaplib_client()
            self.assertEqual(a.enable("QRESYNC")[0], "OK")
            a.select("INBOX")
            uidvalidity = int(a.untagged_responses["UIDVALIDITY"][0])
            modseq = int(a.untagged_responses["HIGHESTMODSEQ"][0])
            a.logout()
            other = self.imaplib_client()
            other.select("INBOX")
            other.uid("STORE", "2,5", "+FLAGS.SILENT", r"(\Deleted)")
            other.expunge()
            other.uid("STORE", "3", "+FLAGS.SILENT", r"(\Flagged)")
            b = self.imaplib_client()
            b.enable("QRESYNC")
            typ, _ = b.select(f"INBOX (QRESYNC ({uidvalidity} {modseq}))")
            resync = (typ, b.untagged_responses.pop("VANISHED", None),
                      b.untagged_responses.pop("FETCH", None))
            # A second client expunges while this one has INBOX selected.
            other.uid("STORE", "4", "+FLAGS.SILENT", r"(\Deleted)")
            other.expunge()
            b.noop()
            live = b.untagged_responses.pop("VANISHED", None)
            typ, data = b.uid("FETCH", "1:*", f"(FLAGS) (CHANGEDSINCE {modseq} VANISHED)")
            fetched = (typ, data, b.untagged_responses.pop("VANISHED", None))
            typ, data = b.fetch("1:*", "(UID)")
            numbers = (typ, data)
            other.logout()
            b.logout()
            return resync, live, fetched, numbers

        resync, live, fetched, numbers = await self.in_thread(run)
        self.assertEqual(resync[0], "OK")
        self.assertEqual(resync[1], [b"(EARLIER) 2,5"])
        self.assertEqual(len(resync[2]), 1)
        self.assertRegex(resync[2][0], rb"^2 \(UID 3 FLAGS \(\\Flagged\) MODSEQ \(\d+\)\)$")
        self.assertEqual(live, [b"4"])
        self.assertEqual(fetched[0], "OK")
        self.assertEqual(fetched[2], [b"(EARLIER) 2,4:5"])
        self.assertEqual(len(fetched[1]), 1)
        self.assertRegex(fetched[1][0], rb"^2 \(UID 3 FLAGS \(\\Flagged\) MODSEQ \(\d+\)\)$")
        self.assertEqual([re.sub(rb" MODSEQ \(\d+\)", b"", line) for line in numbers[1]],
                         [b"1 (UID 1)", b"2 (UID 3)", b"3 (UID 6)"])

    async def test_imapclient_enable_and_fetch_vanished(self) -> None:
        # imapclient has no QRESYNC SELECT of its own; ENABLE and FETCH
        # modifiers are what it offers.
        def run():
            c = self.imapclient_client()
            enabled = c.enable("QRESYNC")
            info = c.select_folder("INBOX")
            modseq = info[b"HIGHESTMODSEQ"]
            other = self.imapclient_client()
            other.select_folder("INBOX")
            other.add_flags([1, 6], [b"\\Deleted"], silent=True)
            other.expunge()
            other.add_flags([2], [b"$Label"], silent=True)
            c.noop()
            fetched = c.fetch(range(1, 7), ["FLAGS"],
                              modifiers=[f"CHANGEDSINCE {modseq}", "VANISHED"])
            vanished = c._imap.untagged_responses.pop("VANISHED", None)
            other.logout()
            c.logout()
            return enabled, fetched, vanished

        enabled, fetched, vanished = await self.in_thread(run)
        self.assertEqual(enabled, [b"QRESYNC"])
        # The live VANISHED of the NOOP, then the EARLIER one of the FETCH:
        # gone since MODSEQ among the UIDs asked for.
        self.assertEqual(vanished, [b"1,6", b"(EARLIER) 1,6"])
        self.assertEqual(list(fetched), [2])
        self.assertEqual(set(fetched[2][b"FLAGS"]), {b"\\Recent", b"$Label"})
