"""
CONTEXT=SEARCH and CONTEXT=SORT (RFC 5267 section 4): byte-exact
transcripts after the RFC's examples on every store -- ADDTO when flags
change or mail arrives, REMOVEFROM before the EXPUNGE, tag reuse,
NOUPDATE, CANCELUPDATE, the end of updates with the selection -- and
imaplib clients, one searching while another appends.
"""

from __future__ import annotations

import pytest

from harness import IMAPServerTestCase, on_every_store

from twisted_mailhub.imap import commands as C
from twisted_mailhub.imap.contexts import MAX_CONTEXTS, UpdateContext, update_response
from twisted_mailhub.imap.parser import CommandError, CommandParser, CommandReceived
from twisted_mailhub.model import AppendRequest
from twisted_mailhub.testing import make_message


def parse(line: bytes):
    parser = CommandParser()
    parser.receive_data(line + b"\r\n")
    return parser.next_event()


def test_cancelupdate_grammar():
    event = parse(b'a CANCELUPDATE "B01" "x\\"y"')
    assert isinstance(event, CommandReceived)
    assert event.command == C.CancelUpdate("a", ("B01", 'x"y'))
    for line, message in [(b"a CANCELUPDATE", "Missing tag"),
                          (b"a CANCELUPDATE B01", "Invalid quoted tag"),
                          (b'a CANCELUPDATE "B01" ', "Missing quoted tag")]:
        event = parse(line)
        assert isinstance(event, CommandError)
        assert (event.condition, event.message) == ("BAD", message), line


def test_return_options():
    event = parse(b"A01 SEARCH RETURN (CONTEXT COUNT) UNDELETED UNKEYWORD $Junk")
    assert event.command.returns == ("CONTEXT", "COUNT")
    event = parse(b"B02 UID SORT RETURN (UPDATE COUNT) (DATE) UTF-8 KEYWORD $Junk")
    assert event.command.returns == ("UPDATE", "COUNT")


class _View:
    """The part of SelectedMailbox update_response reads: UID n + 100 is message n."""

    def seq_of(self, uid):
        return uid - 100


@pytest.mark.parametrize("old, new, expected", [
    # Section 4.3.3: "ADDTO (1 2731:2733)" takes 2734:2735 to 2731:2735.
    ([2734, 2735], [2731, 2732, 2733, 2734, 2735], b"ADDTO (1 2731:2733)"),
    ([5, 4, 3, 2, 1], [5, 3, 1], b"REMOVEFROM (2 4 3 2)"),
    ([5, 3, 1], [6, 5, 4, 3, 2, 1], b"ADDTO (1 6 3 4 5 2)"),
    ([9, 7, 5], [8, 7, 6], b"REMOVEFROM (1 9 2 5) ADDTO (1 8 3 6)"),
    ([3, 1], [3, 1], None),
])
def test_sort_positions(old, new, expected):
    context = UpdateContext("T", True, None, (), old)
    line = update_response(context, new, _View())
    if expected is None:
        assert line is None
    else:
        assert line == b'* ESEARCH (TAG "T") UID ' + expected + b"\r\n"


def test_search_positions_are_zero_and_sets_in_mailbox_order():
    context = UpdateContext("S", False, None, None, [101, 102, 105])
    assert update_response(context, [103, 104, 105, 106], _View()) == (
        b'* ESEARCH (TAG "S") REMOVEFROM (0 1:2) ADDTO (0 3:4,6)\r\n')


@on_every_store
class ContextTranscriptTests(IMAPServerTestCase):
    """
    Ten messages appended (UID n has the subject "message n-1"), the first
    two expunged: message n has UID n + 2.  UIDs 5 and 6 are $Junk.
    """

    async def setUp(self) -> None:
        await super().setUp()
        inbox = await (await self.backend.open_store("alice")).get_mailbox("INBOX")
        await inbox.append([AppendRequest(make_message(n)) for n in range(10)])

    def login(self, tag: bytes = b"t"):
        c = self.raw()
        c.line()
        c.command(tag + b"0 LOGIN alice wonderland")
        c.command(tag + b"1 SELECT INBOX")
        return c

    def prepared(self):
        a = self.login(b"a")
        a.command(b"a2 STORE 1:2 +FLAGS.SILENT (\\Deleted)")
        a.command(b"a3 EXPUNGE")
        a.command(b"a4 UID STORE 5:6 +FLAGS.SILENT ($Junk)")
        return a

    async def test_context_hint(self) -> None:
        """Section 4.2, the A01 example."""
        def run():
            a = self.prepared()
            out = a.command(b"A01 SEARCH RETURN (CONTEXT COUNT) UNDELETED UNKEYWORD $Junk")
            a.close()
            return out

        self.assertEqual(await self.in_thread(run), [
            b'* ESEARCH (TAG "A01") COUNT 6\r\n', b"A01 OK SEARCH completed\r\n"])

    async def test_flag_changes_of_another_session(self) -> None:
        """Sections 4.3 and 4.3.3: the B01 example, then its tag reused."""
        def run():
            a = self.prepared()
            b = self.login(b"b")
            out = [a.command(b"B01 UID SEARCH RETURN (UPDATE COUNT) DELETED KEYWORD $Junk")]
            b.command(b"b2 STORE 3:4 +FLAGS.SILENT (\\Deleted)")
            b.command(b"b3 UID STORE 7 +FLAGS.SILENT (\\Deleted)")
            out.append(a.command(b"a5 NOOP"))
            out.append(a.command(b"B01 SORT RETURN (UPDATE) (ARRIVAL) UTF-8 FLAGGED"))
            # A change that does not change the result is not told as one.
            b.command(b"b4 UID STORE 7 +FLAGS.SILENT (\\Seen)")
            out.append(a.command(b"a6 NOOP"))
            a.close()
            b.close()
            return out

        out = await self.in_thread(run)
        self.assertEqual(out[0], [b'* ESEARCH (TAG "B01") UID COUNT 0\r\n',
                                  b"B01 OK SEARCH completed\r\n"])
        # The FETCHes of messages 3 to 5 (flags in the store's order), then
        # the two that now match, by UID.
        self.assertEqual([line[:10] for line in out[1][:3]],
                         [b"* 3 FETCH ", b"* 4 FETCH ", b"* 5 FETCH "])
        self.assertEqual(out[1][3:], [b'* ESEARCH (TAG "B01") UID ADDTO (0 5:6)\r\n',
                                      b"a5 OK NOOP completed\r\n"])
        self.assertEqual(out[2], [b"B01 BAD Tag reuse\r\n"])
        self.assertEqual([line[:10] for line in out[3]], [b"* 5 FETCH ", b"a6 OK NOOP"])

    async def test_own_store_and_new_mail(self) -> None:
        """By sequence number: ADDTO after the EXISTS that numbers the message."""
        def run():
            a = self.prepared()
            b = self.login(b"b")
            out = [a.command(b"C01 SEARCH RETURN (UPDATE) UNSEEN UNKEYWORD $Junk")]
            out.append(a.command(b"a5 STORE 1:3 +FLAGS.SILENT (\\Seen)"))
            message = make_message(99)
            b.send(b"b2 APPEND INBOX (\\Flagged) {%d+}\r\n" % len(message) + message + b"\r\n")
            b.until_tagged(b"b2")
            out.append(a.command(b"a6 NOOP"))
            out.append(a.command(b"a7 STORE 9 -FLAGS.SILENT (\\Seen)"))
            a.close()
            b.close()
            return out

        out = await self.in_thread(run)
        self.assertEqual(out[0], [b'* ESEARCH (TAG "C01") ALL 1:2,5:8\r\n',
                                  b"C01 OK SEARCH completed\r\n"])
        self.assertEqual(out[1], [b'* ESEARCH (TAG "C01") REMOVEFROM (0 1:2)\r\n',
                                  b"a5 OK STORE completed\r\n"])
        self.assertEqual(out[2], [b"* 9 EXISTS\r\n", b"* 8 RECENT\r\n",
                                  b'* ESEARCH (TAG "C01") ADDTO (0 9)\r\n',
                                  b"a6 OK NOOP completed\r\n"])
        self.assertEqual(out[3], [b"a7 OK STORE completed\r\n"])

    async def test_mail_not_yet_told_when_the_context_starts(self) -> None:
        def run():
            a = self.prepared()
            b = self.login(b"b")
            message = make_message(99)
            b.send(b"b2 APPEND INBOX {%d+}\r\n" % len(message) + message + b"\r\n")
            b.until_tagged(b"b2")
            out = a.command(b"G01 UID SEARCH RETURN (UPDATE) UNSEEN")
            a.close()
            b.close()
            return out

        self.assertEqual(await self.in_thread(run), [
            b'* ESEARCH (TAG "G01") UID ALL 3:10\r\n', b"* 9 EXISTS\r\n", b"* 8 RECENT\r\n",
            b'* ESEARCH (TAG "G01") UID ADDTO (0 11)\r\n', b"G01 OK SEARCH completed\r\n"])

    async def test_removefrom_comes_before_the_expunge(self) -> None:
        """Section 4.3.4, by UID and by number, for SEARCH and SORT."""
        def run():
            a = self.prepared()
            b = self.login(b"b")
            out = [a.command(b"B01 UID SEARCH RETURN (UPDATE) UNKEYWORD $Junk"),
                   a.command(b"B02 SORT RETURN (UPDATE) (REVERSE SUBJECT) UTF-8 UNKEYWORD $Junk")]
            b.command(b"b2 UID STORE 4,8:9 +FLAGS.SILENT (\\Deleted)")
            b.command(b"b3 EXPUNGE")
            # Not while a FETCH by number runs: then the message is told
            # gone from the results while its number still stands.
            out.append(a.command(b"a5 FETCH 1 (UID)"))
            out.append(a.command(b"B03 NOOP"))
            a.close()
            b.close()
            return out

        out = await self.in_thread(run)
        self.assertEqual(out[0], [b'* ESEARCH (TAG "B01") UID ALL 3:4,7:10\r\n',
                                  b"B01 OK SEARCH completed\r\n"])
        # Subjects "message 9" ... "message 2": numbers 8 down to 1 less 3:4.
        self.assertEqual(out[1], [b'* ESEARCH (TAG "B02") ALL 8,7,6,5,2,1\r\n',
                                  b"B02 OK SORT completed\r\n"])
        self.assertEqual(out[2], [
            b"* 1 FETCH (UID 3)\r\n",
            b'* ESEARCH (TAG "B01") UID REMOVEFROM (0 4,8:9)\r\n',
            # Positions in the client's list as each pair is applied.
            b'* ESEARCH (TAG "B02") REMOVEFROM (2 7,6 3 2)\r\n',
            b"a5 OK FETCH completed\r\n"])
        self.assertEqual(out[3], [b"* 2 EXPUNGE\r\n", b"* 5 EXPUNGE\r\n", b"* 5 EXPUNGE\r\n",
                                  b"B03 OK NOOP completed\r\n"])

    async def test_numbers_and_saved_result_are_fixed_when_the_command_comes(self) -> None:
        """
        Section 4.3 (the RFC 3501 errata): sequence numbers name the
        messages they named then; "$" is the result saved before the
        command, not the one its own SAVE keeps (RFC 5182).
        """
        def run():
            a = self.prepared()
            out = [a.command(b"J01 UID SEARCH RETURN (SAVE) UID 3:4"),
                   a.command(b"a5 UID STORE 7 +FLAGS.SILENT (\\Flagged)"),
                   a.command(b"J02 UID SEARCH RETURN (SAVE UPDATE ALL) OR UID $ FLAGGED"),
                   a.command(b"J03 UID SEARCH RETURN (UPDATE) 2:3 FLAGGED"),
                   a.command(b"a6 STORE 1 +FLAGS.SILENT (\\Deleted)"),
                   a.command(b"a7 EXPUNGE"),
                   a.command(b"a8 UID STORE 4,7 -FLAGS.SILENT (\\Flagged)"),
                   a.command(b"a9 UID STORE 4 +FLAGS.SILENT (\\Flagged)")]
            a.close()
            return out

        out = await self.in_thread(run)
        self.assertEqual(out[2][0], b'* ESEARCH (TAG "J02") UID ALL 3:4,7\r\n')
        # Messages 2:3 are UIDs 4 and 5, whatever their numbers become;
        # neither is flagged yet.
        self.assertEqual(out[3][0], b'* ESEARCH (TAG "J03") UID\r\n')
        self.assertEqual(out[5], [b'* ESEARCH (TAG "J02") UID REMOVEFROM (0 3)\r\n',
                                  b"* 1 EXPUNGE\r\n", b"a7 OK EXPUNGE completed\r\n"])
        self.assertEqual(out[6], [b'* ESEARCH (TAG "J02") UID REMOVEFROM (0 7)\r\n',
                                  b"a8 OK STORE completed\r\n"])
        self.assertEqual(out[7], [b'* ESEARCH (TAG "J03") UID ADDTO (0 4)\r\n',
                                  b"a9 OK STORE completed\r\n"])

    async def test_own_expunge(self) -> None:
        def run():
            a = self.prepared()
            out = [a.command(b"D01 SEARCH RETURN (UPDATE COUNT) UNKEYWORD $Junk"),
                   a.command(b"a5 STORE 2,4 +FLAGS.SILENT (\\Deleted)"),
                   a.command(b"a6 EXPUNGE")]
            a.close()
            return out

        out = await self.in_thread(run)
        self.assertEqual(out[0][0], b'* ESEARCH (TAG "D01") COUNT 6\r\n')
        self.assertEqual(out[1], [b"a5 OK STORE completed\r\n"])
        self.assertEqual(out[2], [b'* ESEARCH (TAG "D01") REMOVEFROM (0 2)\r\n',
                                  b"* 2 EXPUNGE\r\n", b"* 3 EXPUNGE\r\n",
                                  b"a6 OK EXPUNGE completed\r\n"])

    async def test_own_move(self) -> None:
        """RFC 6851: MOVE expunges from the source, so REMOVEFROM first."""
        def run():
            a = self.prepared()
            a.command(b"a5 CREATE Archive")
            out = [a.command(b"H01 SORT RETURN (UPDATE) (ARRIVAL) UTF-8 UNKEYWORD $Junk"),
                   a.command(b"a6 UID MOVE 4,8 Archive")]
            a.close()
            return out

        out = await self.in_thread(run)
        self.assertEqual(out[0], [b'* ESEARCH (TAG "H01") ALL 1:2,5:8\r\n',
                                  b"H01 OK SORT completed\r\n"])
        moved = [line for line in out[1] if not line.startswith(b"* OK [COPYUID ")]
        self.assertEqual(moved, [b'* ESEARCH (TAG "H01") REMOVEFROM (2 2 3 6)\r\n',
                                 b"* 2 EXPUNGE\r\n", b"* 5 EXPUNGE\r\n",
                                 b"a6 OK MOVE completed\r\n"])

    async def test_cancelupdate_and_deselect(self) -> None:
        """Section 4.3.5, the B04 example; and updates end with the selection."""
        def run():
            a = self.prepared()
            b = self.login(b"b")
            out = [a.command(b"B01 UID SEARCH RETURN (UPDATE COUNT) FLAGGED"),
                   a.command(b"B02 UID SEARCH RETURN (UPDATE COUNT) FLAGGED"),
                   a.command(b'B04 CANCELUPDATE "B01"')]
            b.command(b"b2 STORE 1 +FLAGS.SILENT (\\Flagged)")
            out.append(a.command(b"a5 NOOP"))
            # The tag is free again.
            out.append(a.command(b"B01 UID SEARCH RETURN (UPDATE COUNT) FLAGGED"))
            out.append(a.command(b"a6 UNSELECT"))
            out.append(a.command(b"a7 SELECT INBOX"))
            b.command(b"b3 STORE 2 +FLAGS.SILENT (\\Flagged)")
            out.append(a.command(b"a8 NOOP"))
            out.append(a.command(b'a9 CANCELUPDATE "nothing" "B02"'))
            a.close()
            b.close()
            return out

        out = await self.in_thread(run)
        self.assertEqual(out[2], [b"B04 OK No further updates\r\n"])
        self.assertEqual(out[3][-2:], [b'* ESEARCH (TAG "B02") UID ADDTO (0 3)\r\n',
                                       b"a5 OK NOOP completed\r\n"])
        self.assertNotIn(b"B01", b"".join(out[3]))
        self.assertEqual(out[4], [b'* ESEARCH (TAG "B01") UID COUNT 1\r\n',
                                  b"B01 OK SEARCH completed\r\n"])
        self.assertNotIn(b"ESEARCH", b"".join(out[7]))
        self.assertEqual(out[8], [b"a9 OK No further updates\r\n"])

    async def test_updates_while_idling(self) -> None:
        """Section 4.3.2: updates may come during IDLE, with the FETCH."""
        def run():
            a = self.prepared()
            b = self.login(b"b")
            a.command(b"E01 UID SEARCH RETURN (UPDATE) FLAGGED")
            a.send(b"a5 IDLE\r\n")
            idling = a.line()
            b.command(b"b2 UID STORE 9 +FLAGS.SILENT (\\Flagged)")
            fetch, update = a.line(), a.line()
            a.send(b"DONE\r\n")
            done = a.until_tagged(b"a5")
            a.close()
            b.close()
            return idling, fetch, update, done

        idling, fetch, update, done = await self.in_thread(run)
        self.assertEqual(idling[:2], b"+ ")
        self.assertEqual(fetch[:10], b"* 7 FETCH ")
        self.assertEqual(update, b'* ESEARCH (TAG "E01") UID ADDTO (0 9)\r\n')
        self.assertEqual(done, [b"a5 OK IDLE terminated\r\n"])

    async def test_a_failed_update_does_not_fail_the_command(self) -> None:
        from twisted_mailhub.imap import contexts

        async def broken(*args):
            raise RuntimeError("store trouble")

        def run():
            a = self.prepared()
            b = self.login(b"b")
            a.command(b"F01 UID SEARCH RETURN (UPDATE) FLAGGED")
            b.command(b"b2 UID STORE 9 +FLAGS.SILENT (\\Flagged)")
            self.patch(contexts, "evaluate", broken)
            out = a.command(b"a5 NOOP")
            a.close()
            b.close()
            return out

        out = await self.in_thread(run)
        self.assertEqual([line[:10] for line in out], [b"* 7 FETCH ", b"a5 OK NOOP"])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    async def test_too_many_contexts(self) -> None:
        """Section 4.3.1, the B02 example: NOUPDATE, the rest answered."""
        def run():
            a = self.prepared()
            for n in range(MAX_CONTEXTS):
                a.command(b"c%d UID SEARCH RETURN (UPDATE) ALL" % n)
            out = a.command(b"B02 UID SORT RETURN (UPDATE COUNT) (DATE) UTF-8 KEYWORD $Junk")
            a.close()
            return out

        self.assertEqual(await self.in_thread(run), [
            b'* ESEARCH (TAG "B02") UID COUNT 2\r\n',
            b'* NO [NOUPDATE "B02"] Too many contexts\r\n',
            b"B02 OK SORT completed\r\n"])

    async def test_imaplib_updates_while_a_second_client_appends(self) -> None:
        def run():
            a = self.imaplib_client()
            _, caps = a.capability()
            a.select("INBOX")
            typ, _ = a.uid("SEARCH", "RETURN", "(UPDATE)", "UNSEEN")
            _, first = a.response("ESEARCH")
            b = self.imaplib_client()
            b.append("INBOX", None, None, make_message(50))
            b.append("INBOX", "(\\Seen)", None, make_message(51))
            b.append("INBOX", None, None, make_message(52))
            b.logout()
            a.noop()
            _, update = a.response("ESEARCH")
            a.logout()
            return caps[0].split(), typ, first, update

        caps, typ, first, update = await self.in_thread(run)
        self.assertIn(b"CONTEXT=SEARCH", caps)
        self.assertIn(b"CONTEXT=SORT", caps)
        self.assertEqual(typ, "OK")
        self.assertRegex(first[0], rb'^\(TAG "[A-Z0-9]+"\) UID ALL 1:10$')
        self.assertRegex(update[0], rb'^\(TAG "[A-Z0-9]+"\) UID ADDTO \(0 11,13\)$')
