"""The command grammar: each command form and the value it produces."""

from datetime import date, datetime, timedelta, timezone

import pytest

from twisted_mailhub.imap import commands as c
from twisted_mailhub import criteria as sk
from twisted_mailhub.imap.parser import CommandError, CommandParser, CommandReceived
from twisted_mailhub.ranges import STAR, SequenceSet


def parse(data, **kwargs):
    """The single event for the complete command C{data} (CRLF added)."""
    parser = CommandParser(**kwargs)
    parser.receive_data(data + b"\r\n")
    out = []
    while (event := parser.next_event()) is not None:
        out.append(event)
    out = [e for e in out if type(e).__name__ != "ContinuationRequest"]
    assert len(out) == 1, out
    return out[0]


def command(data, **kwargs):
    event = parse(data, **kwargs)
    assert isinstance(event, CommandReceived), event
    return event.command


def error(data, **kwargs):
    event = parse(data, **kwargs)
    assert isinstance(event, CommandError), event
    return event.message


def seq(text):
    return SequenceSet.parse(text)


UTC1 = timezone(timedelta(hours=1))

CASES = [
    # any state
    (b"a CAPABILITY", c.Capability("a")),
    (b"a noop", c.Noop("a")),
    (b"A.1 Logout", c.Logout("A.1")),
    (b"a ID NIL", c.Id("a", None)),
    (b'a ID ("name" "mutt" "version" NIL)', c.Id("a", (("name", "mutt"), ("version", None)))),
    (b"a ID ()", c.Id("a", ())),
    # not authenticated
    (b"a STARTTLS", c.StartTLS("a")),
    (b'a LOGIN fred "pass word"', c.Login("a", b"fred", b"pass word")),
    (b"a LOGIN {4+}\r\nfr d {3+}\r\n\xc3\xa9x", c.Login("a", b"fr d", b"\xc3\xa9x")),
    (b'a LOGIN "a\\\\b" "q\\""', c.Login("a", b"a\\b", b'q"')),
    (b"a AUTHENTICATE plain", c.Authenticate("a", "PLAIN")),
    (b"a AUTHENTICATE PLAIN =", c.Authenticate("a", "PLAIN", b"")),
    (b"a AUTHENTICATE PLAIN AHUAcA==", c.Authenticate("a", "PLAIN", b"\x00u\x00p")),
    # authenticated
    (b"a ENABLE condstore UTF8=ACCEPT", c.Enable("a", ("CONDSTORE", "UTF8=ACCEPT"))),
    (b"a SELECT inbox", c.Select("a", "INBOX")),
    (b"a EXAMINE Inbox/Sub", c.Select("a", "INBOX/Sub", read_only=True)),
    (b"a SELECT inboxes", c.Select("a", "inboxes")),
    (b'a SELECT "My Box"', c.Select("a", "My Box")),
    (b"a SELECT {5}\r\nA Box", c.Select("a", "A Box")),
    (b"a SELECT x (CONDSTORE)", c.Select("a", "x", condstore=True)),
    (b"a SELECT x (QRESYNC (1 2))", c.Select("a", "x", qresync=(1, 2, None, None))),
    (b"a SELECT x (QRESYNC (67890007 90060115194045000 41:211,214:541))",
     c.Select("a", "x", qresync=(67890007, 90060115194045000, seq("41:211,214:541"), None))),
    (b"a EXAMINE x (QRESYNC (1 2 1:9 (1,3 2,5)) CONDSTORE)",
     c.Select("a", "x", True, True, (1, 2, seq("1:9"), (seq("1,3"), seq("2,5"))))),
    (b"a SELECT x (QRESYNC (1 2 (1 2)))", c.Select("a", "x", qresync=(1, 2, None, (seq("1"), seq("2"))))),
    (b"a CREATE Archive/2024", c.Create("a", "Archive/2024")),
    (b"a CREATE Sent (USE (\\sent \\Drafts))",
     c.Create("a", "Sent", frozenset({"\\Sent", "\\Drafts"}))),
    (b"a CREATE x (USE ())", c.Create("a", "x")),
    (b"a DELETE &ZeVnLIqe-", c.Delete("a", "日本語")),
    (b"a RENAME old new", c.Rename("a", "old", "new")),
    (b"a RENAME INBOX Old", c.Rename("a", "INBOX", "Old")),
    (b"a SUBSCRIBE x", c.Subscribe("a", "x")),
    (b"a UNSUBSCRIBE x", c.Unsubscribe("a", "x")),
    (b'a LIST "" *', c.List("a", "", ("*",))),
    (b'a LIST "" ""', c.List("a", "", ("",))),
    (b"a LIST ~/Mail/ %/x]", c.List("a", "~/Mail/", ("%/x]",))),
    (b'a LSUB "#news." "comp.mail.*"', c.List("a", "#news.", ("comp.mail.*",), lsub=True)),
    (b'a LIST (SUBSCRIBED REMOTE) "" (INBOX% "x*")',
     c.List("a", "", ("INBOX%", "x*"), selection=frozenset({"SUBSCRIBED", "REMOTE"}),
            extended=True)),
    (b'a LIST () "" %', c.List("a", "", ("%",), extended=True)),
    (b'a LIST (special-use RECURSIVEMATCH) "" *',
     c.List("a", "", ("*",), selection=frozenset({"SPECIAL-USE", "RECURSIVEMATCH"}),
            extended=True)),
    (b'a LIST "" % RETURN (CHILDREN SUBSCRIBED SPECIAL-USE STATUS (MESSAGES unseen))',
     c.List("a", "", ("%",), returns=frozenset({"CHILDREN", "SUBSCRIBED", "SPECIAL-USE", "STATUS"}),
            return_status=("MESSAGES", "UNSEEN"), extended=True)),
    (b'a LIST "" % RETURN ()', c.List("a", "", ("%",), extended=True)),
    (b"a NAMESPACE", c.Namespace("a")),
    (b"a STATUS inbox (MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN HIGHESTMODSEQ SIZE DELETED"
     b" APPENDLIMIT)",
     c.Status("a", "INBOX", ("MESSAGES", "RECENT", "UIDNEXT", "UIDVALIDITY", "UNSEEN",
                             "HIGHESTMODSEQ", "SIZE", "DELETED", "APPENDLIMIT"))),
    (b"a APPEND x {3+}\r\nabc", c.Append("a", "x", (c.AppendMessage(b"abc"),))),
    (b"a APPEND x (\\Seen $Label) {3+}\r\nabc",
     c.Append("a", "x", (c.AppendMessage(b"abc", frozenset({"\\Seen", "$Label"})),))),
    (b'a APPEND x () " 7-Feb-1994 21:52:25 -0800" {1+}\r\nz',
     c.Append("a", "x", (c.AppendMessage(
         b"z", frozenset(),
         datetime(1994, 2, 7, 21, 52, 25, tzinfo=timezone(timedelta(hours=-8)))),))),
    (b'a APPEND x "17-jul-1996 02:44:25 +0100" ~{2+}\r\n\x00\x01',
     c.Append("a", "x", (c.AppendMessage(
         b"\x00\x01", frozenset(), datetime(1996, 7, 17, 2, 44, 25, tzinfo=UTC1)),))),
    (b"a APPEND x (\\flagged) {1+}\r\n1 {1+}\r\n2 (\\draft) {1+}\r\n3",
     c.Append("a", "x", (
         c.AppendMessage(b"1", frozenset({"\\Flagged"})),
         c.AppendMessage(b"2"),
         c.AppendMessage(b"3", frozenset({"\\Draft"})),
     ))),
    (b"a IDLE", c.Idle("a")),
    # selected
    (b"a CHECK", c.Check("a")),
    (b"a CLOSE", c.Close("a")),
    (b"a UNSELECT", c.Unselect("a")),
    (b"a EXPUNGE", c.Expunge("a")),
    (b"a UID EXPUNGE 3000:3002", c.Expunge("a", seq("3000:3002"))),
    (b"a COPY 2:4 MEETING", c.Copy("a", seq("2:4"), "MEETING")),
    (b"a uid copy $ Trash", c.Copy("a", SequenceSet((), saved=True), "Trash", uid=True)),
    (b"a MOVE 1 x", c.Copy("a", seq("1"), "x", move=True)),
    (b"a UID MOVE 1:* x", c.Copy("a", SequenceSet(((1, STAR),)), "x", uid=True, move=True)),
    (b"a STORE 2:4 +FLAGS (\\Deleted)", c.Store("a", seq("2:4"), "add", frozenset({"\\Deleted"}))),
    (b"a STORE 1 -flags.silent \\SEEN $x",
     c.Store("a", seq("1"), "remove", frozenset({"\\Seen", "$x"}), silent=True)),
    (b"a STORE 1 FLAGS ()", c.Store("a", seq("1"), "set", frozenset())),
    (b"a UID STORE 1 (UNCHANGEDSINCE 0) FLAGS.SILENT (x)",
     c.Store("a", seq("1"), "set", frozenset({"x"}), True, True, 0)),
]


@pytest.mark.parametrize("data, expected", CASES, ids=[str(d[:40]) for d, _ in CASES])
def test_command(data, expected):
    assert command(data) == expected


FETCH_CASES = [
    (b"FLAGS", (c.FetchAttr("FLAGS"),)),
    (b"fast", (c.FetchAttr("FLAGS"), c.FetchAttr("INTERNALDATE"), c.FetchAttr("RFC822.SIZE"))),
    (b"ALL", (c.FetchAttr("FLAGS"), c.FetchAttr("INTERNALDATE"), c.FetchAttr("RFC822.SIZE"),
              c.FetchAttr("ENVELOPE"))),
    (b"FULL", (c.FetchAttr("FLAGS"), c.FetchAttr("INTERNALDATE"), c.FetchAttr("RFC822.SIZE"),
               c.FetchAttr("ENVELOPE"), c.FetchAttr("BODY"))),
    (b"(uid rfc822.size envelope body bodystructure rfc822 rfc822.header rfc822.text modseq"
     b" internaldate)",
     tuple(c.FetchAttr(n) for n in (
         "UID", "RFC822.SIZE", "ENVELOPE", "BODY", "BODYSTRUCTURE", "RFC822", "RFC822.HEADER",
         "RFC822.TEXT", "MODSEQ", "INTERNALDATE"))),
    (b"BODY[]", (c.FetchAttr("BODY[]", c.Section()),)),
    (b"body.peek[]<0.1024>", (c.FetchAttr("BODY[]", c.Section(), (0, 1024), peek=True),)),
    (b"BODY[1.2.3]", (c.FetchAttr("BODY[]", c.Section((1, 2, 3))),)),
    (b"BODY[HEADER]", (c.FetchAttr("BODY[]", c.Section((), "HEADER")),)),
    (b"BODY[2.text]", (c.FetchAttr("BODY[]", c.Section((2,), "TEXT")),)),
    (b"BODY[1.MIME]", (c.FetchAttr("BODY[]", c.Section((1,), "MIME")),)),
    (b'BODY.PEEK[HEADER.FIELDS (date "From" {7}\r\nsubject)]',
     (c.FetchAttr("BODY[]", c.Section((), "HEADER.FIELDS", ("DATE", "FROM", "SUBJECT")),
                  peek=True),)),
    (b"BODY[3.HEADER.FIELDS.NOT (X-Spam)]<10.5>",
     (c.FetchAttr("BODY[]", c.Section((3,), "HEADER.FIELDS.NOT", ("X-SPAM",)), (10, 5)),)),
    (b"(BINARY[] BINARY.PEEK[1.2]<0.10> BINARY.SIZE[2])",
     (c.FetchAttr("BINARY[]", c.Section()),
      c.FetchAttr("BINARY[]", c.Section((1, 2)), (0, 10), peek=True),
      c.FetchAttr("BINARY.SIZE", c.Section((2,))))),
]


@pytest.mark.parametrize("items, attrs", FETCH_CASES, ids=[str(i[:30]) for i, _ in FETCH_CASES])
def test_fetch_items(items, attrs):
    assert command(b"a FETCH 1,3:* " + items) == c.Fetch(
        "a", SequenceSet(((1, 1), (3, STAR))), attrs
    )


def test_fetch_modifiers():
    assert command(b"a UID FETCH 1:* FLAGS (CHANGEDSINCE 12345 VANISHED)") == c.Fetch(
        "a", SequenceSet(((1, STAR),)), (c.FetchAttr("FLAGS"),), True, 12345, True
    )
    assert command(b"a FETCH $ (FLAGS) (changedsince 1)") == c.Fetch(
        "a", SequenceSet((), saved=True), (c.FetchAttr("FLAGS"),), False, 1
    )


PIPELINED_FETCHES = [
    b"FETCH %s BODY.PEEK[]",
    b"uid fetch %s (FLAGS BODY.PEEK[HEADER.FIELDS (DATE FROM)]<0.100>)",
    b"UID FETCH %s FLAGS (CHANGEDSINCE 7 VANISHED)",
    b"FETCH %s FULL",
]


@pytest.mark.parametrize("shape", PIPELINED_FETCHES)
def test_fetch_of_a_kept_shape(shape):
    # The second and later FETCH of one spelling reuse its parsed items:
    # they must read exactly as a first one would.
    for tag, numbers in ((b"a1", b"5"), (b"b.2", b"1:3,9:*"), (b"c3", b"*"), (b"d4", b"77")):
        line = tag + b" " + shape % numbers
        fresh = command(line)
        parser = CommandParser()
        parser.receive_data(b"x " + shape % b"1" + b"\r\n" + line + b"\r\n")
        parser.next_event()
        assert parser.next_event() == CommandReceived(fresh)
        assert fresh.tag == tag.decode() and fresh.set == seq(numbers.decode())


@pytest.mark.parametrize("line", [
    b"a FETCH 0 BODY.PEEK[]", b"a FETCH 1,,2 BODY.PEEK[]", b"a FETCH 1:0 BODY.PEEK[]",
    b"a FETCH 1  BODY.PEEK[]", b"a FETCH 1 BODY.PEEK[] ", b"a+ FETCH 1 BODY.PEEK[]",
    b"a FETCH 1 FLAGS (VANISHED)", b"a FETCH 1 (FLAGS", b"a FETCH 1 FLAGS (PARTIAL 1:2)",
])
def test_fetch_errors_after_a_kept_shape(line):
    # A bad command of a kept spelling is refused as the full parser does.
    expected = parse(line)
    assert isinstance(expected, CommandError)
    parser = CommandParser()
    parser.receive_data(b"x FETCH 1 BODY.PEEK[]\r\nx FETCH 1 FLAGS\r\n"
                        b"x FETCH 1 (FLAGS\r\n" + line + b"\r\n")
    for _ in range(3):
        parser.next_event()
    assert parser.next_event() == expected


def search(criteria, **kwargs):
    cmd = command(b"a SEARCH " + criteria, **kwargs)
    assert isinstance(cmd, c.Search)
    return cmd


SEARCH_KEYS = [
    (b"ALL", sk.All()),
    (b"answered", sk.Flag("\\Answered")),
    (b"DELETED", sk.Flag("\\Deleted")),
    (b"DRAFT", sk.Flag("\\Draft")),
    (b"FLAGGED", sk.Flag("\\Flagged")),
    (b"SEEN", sk.Flag("\\Seen")),
    (b"UNANSWERED", sk.Flag("\\Answered", False)),
    (b"UNDELETED", sk.Flag("\\Deleted", False)),
    (b"UNDRAFT", sk.Flag("\\Draft", False)),
    (b"UNFLAGGED", sk.Flag("\\Flagged", False)),
    (b"unseen", sk.Flag("\\Seen", False)),
    (b"KEYWORD $Junk", sk.Flag("$Junk")),
    (b"UNKEYWORD foo", sk.Flag("foo", False)),
    (b"NEW", sk.New()),
    (b"OLD", sk.Recent(False)),
    (b"RECENT", sk.Recent(True)),
    (b"BEFORE 1-Feb-1994", sk.Date("internal", "before", date(1994, 2, 1))),
    (b'ON "01-feb-1994"', sk.Date("internal", "on", date(1994, 2, 1))),
    (b"SINCE 31-Dec-2023", sk.Date("internal", "since", date(2023, 12, 31))),
    (b"SENTBEFORE 1-Jan-2000", sk.Date("sent", "before", date(2000, 1, 1))),
    (b"SENTON 1-Jan-2000", sk.Date("sent", "on", date(2000, 1, 1))),
    (b"SENTSINCE 1-Jan-2000", sk.Date("sent", "since", date(2000, 1, 1))),
    (b"BCC x", sk.Header("Bcc", "x")),
    (b"CC x", sk.Header("Cc", "x")),
    (b'FROM "Smith"', sk.Header("From", "Smith")),
    (b"TO {3}\r\nx y", sk.Header("To", "x y")),
    (b'SUBJECT ""', sk.Header("Subject", "")),
    (b'HEADER List-Id "dev"', sk.Header("List-Id", "dev")),
    (b"BODY word", sk.Body("word")),
    (b"TEXT word", sk.Text("word")),
    (b"LARGER 100", sk.Size("larger", 100)),
    (b"SMALLER 5", sk.Size("smaller", 5)),
    (b"UID 1:5,7", sk.Uid(seq("1:5,7"))),
    (b"UID $", sk.Uid(SequenceSet((), saved=True))),
    (b"2:*", sk.Sequence(SequenceSet(((2, STAR),)))),
    (b"$", sk.Sequence(SequenceSet((), saved=True))),
    (b"NOT SEEN", sk.Not(sk.Flag("\\Seen"))),
    (b"OR SEEN (FLAGGED DRAFT)",
     sk.Or(sk.Flag("\\Seen"), sk.And((sk.Flag("\\Flagged"), sk.Flag("\\Draft"))))),
    (b"(SEEN)", sk.And((sk.Flag("\\Seen"),))),
    (b"MODSEQ 620162338", sk.ModSeq(620162338)),
    (b'MODSEQ "/flags/\\\\draft" all 620162338', sk.ModSeq(620162338, "/flags/\\draft", "all")),
    (b"OLDER 3600", sk.Age("older", 3600)),
    (b"YOUNGER 60", sk.Age("younger", 60)),
]


@pytest.mark.parametrize("criteria, key", SEARCH_KEYS, ids=[str(k[:30]) for k, _ in SEARCH_KEYS])
def test_search_key(criteria, key):
    assert search(criteria) == c.Search("a", key)


def test_search_top_level_list_is_an_and():
    assert search(b"FLAGGED SINCE 1-Feb-1994 NOT FROM \"Smith\"").key == sk.And((
        sk.Flag("\\Flagged"),
        sk.Date("internal", "since", date(1994, 2, 1)),
        sk.Not(sk.Header("From", "Smith")),
    ))


def test_search_charset_and_return():
    cmd = command(b"a UID SEARCH RETURN (MIN max COUNT ALL SAVE) CHARSET utf-8 TEXT {3}\r\n\xc3\xa9t")
    assert cmd == c.Search("a", sk.Text("ét"), "UTF-8", True, ("MIN", "MAX", "COUNT", "ALL", "SAVE"))


def test_search_invalid_utf8():
    assert error(b"a SEARCH CHARSET UTF-8 TEXT {2}\r\n\xc3t") == "Search string is not valid UTF-8"


def test_search_utf8_string_decoded():
    cmd = search(b'CHARSET "UTF-8" SUBJECT {6}\r\nd\xc3\xa9j\xc3\xa0')
    assert cmd == c.Search("a", sk.Header("Subject", "déjà"), "UTF-8")


def test_search_return_empty():
    assert search(b"RETURN () ALL") == c.Search("a", sk.All(), returns=())


def test_search_us_ascii_rejects_8bit():
    assert error(b"a SEARCH CHARSET US-ASCII BODY {2}\r\n\xc3\xa9") == (
        "Search string is not valid US-ASCII"
    )


def test_search_unsupported_charset():
    event = parse(b"a SEARCH CHARSET KOI8-R ALL")
    assert event == CommandError("a", "Unsupported charset: KOI8-R", "BADCHARSET (US-ASCII UTF-8)")


def test_utf8_mailbox_names_after_enable():
    assert command('a SELECT "Entwürfe"'.encode(), utf8=True) == c.Select("a", "Entwürfe")
    assert command("a SELECT {9}\r\nEntwürfe".encode(), utf8=True) == c.Select("a", "Entwürfe")
    # 8-bit text must be quoted: it is no ASTRING-CHAR (RFC 9051 section 9).
    assert error("a SELECT Entwürfe".encode(), utf8=True) == "Invalid character in mailbox name"
    assert command(b"a SELECT &U,BTFw-", utf8=True) == c.Select("a", "&U,BTFw-")
    assert error(b"a SELECT \"\xff\"", utf8=True) == "Invalid UTF-8 in quoted mailbox name"


def test_utf8_can_be_switched_on_later():
    parser = CommandParser()
    parser.receive_data('a1 SELECT "Entwürfe"\r\n'.encode())
    assert parser.next_event() == CommandError("a1", "Invalid modified UTF-7 mailbox name",
                                               "CANNOT", "NO")
    parser.utf8 = True
    parser.receive_data('a2 SELECT "Entwürfe"\r\n'.encode())
    assert parser.next_event() == CommandReceived(c.Select("a2", "Entwürfe"))


ERRORS = [
    (b"a FOO", "Unknown command: FOO"),
    (b"a", "Expected SP after tag"),
    (b"a+ NOOP", "Invalid character in tag"),
    (b"(a NOOP", "Invalid tag"),
    (b"a NOOP extra", "Unexpected characters after command"),
    (b"a NOOP ", "Unexpected characters after command"),
    (b"a  NOOP", "Invalid command name"),
    (b"a SELECT", "Missing mailbox name"),
    (b"a SELECT \"abc", "Unterminated quoted string in mailbox name"),
    (b"a SELECT \"a\\b\"", "Invalid escape in quoted mailbox name"),
    (b"a SELECT &Jjo", "Invalid modified UTF-7 mailbox name"),
    (b"a SELECT x (FOO)", "Unknown SELECT parameter: FOO"),
    (b"a SELECT x ()", "Empty SELECT parameters"),
    (b"a SELECT x (QRESYNC (0 1))", "Invalid UIDVALIDITY: must not be 0"),
    (b"a SELECT x (QRESYNC (1))", "Expected SP before mod-sequence"),
    (b"a LOGIN fred", "Missing password"),
    (b"a LOGIN {3+}\r\nab\x00", "NUL byte in literal for user name"),
    (b"a LOGIN ~{1+}\r\na b", "Binary literal not allowed for user name"),
    (b"a AUTHENTICATE PLAIN AHUAc", "Invalid base64 in initial response"),
    (b"a AUTHENTICATE PLAIN !!!!", "Invalid base64 in initial response"),
    (b"a AUTHENTICATE", "Missing authentication mechanism"),
    (b"a ENABLE", "Missing capability name"),
    (b"a ID", "Missing ID parameters"),
    (b"a ID (\"a\")", "Expected SP before ID field value"),
    (b"a ID foo", "Expected ( or NIL for ID parameters"),
    (b"a CREATE x (FOO)", "Unknown CREATE parameter: FOO"),
    (b"a CREATE x (USE (Sent))", "Invalid special-use attribute"),
    (b"a RENAME x", "Missing new mailbox name"),
    (b"a LIST x", "Missing mailbox pattern"),
    (b"a LIST (FOO) \"\" *", "Unknown LIST selection option: FOO"),
    (b"a LIST (RECURSIVEMATCH) \"\" *", "RECURSIVEMATCH needs another selection option"),
    (b"a LIST \"\" * RETURN (FOO)", "Unknown LIST return option: FOO"),
    (b"a LIST \"\" * (CHILDREN)", "Expected RETURN options"),
    (b"a LIST \"\" ()", "Empty mailbox patterns"),
    (b"a LSUB \"\" (x)", "Invalid mailbox pattern"),
    (b"a STATUS x (MESSAGES FOO)", "Unknown STATUS item: FOO"),
    (b"a STATUS x", "Missing STATUS items"),
    (b"a STATUS x ()", "Empty STATUS items"),
    (b"a APPEND x", "Missing message literal"),
    (b"a APPEND x \"hello\"", "Invalid date-time: hello"),
    (b"a APPEND x hello", "Expected message literal"),
    (b"a APPEND x (\\Recent) {1+}\r\na", "\\Recent cannot be set by APPEND"),
    (b"a APPEND x \"31-Feb-2020 00:00:00 +0000\" {1+}\r\na",
     "Invalid date-time: 31-Feb-2020 00:00:00 +0000"),
    (b"a APPEND x {1+}\r\na ", "Missing message literal"),
    (b"a FETCH 1:x FLAGS", "Invalid sequence set: 1:x"),
    (b"a FETCH 0 FLAGS", "Invalid sequence set: 0"),
    (b"a FETCH 1 BODDY", "Unknown FETCH attribute: BODDY"),
    (b"a FETCH 1", "Missing FETCH attributes"),
    (b"a FETCH 1 ()", "Empty FETCH attributes"),
    (b"a FETCH 1 (ALL)", "Unknown FETCH attribute: ALL"),
    (b"a FETCH 1 (FLAGS", "Expected ) after FETCH attributes"),
    (b"a FETCH 1 BODY[MIME]", "Invalid section: MIME"),
    (b"a FETCH 1 BODY[FOO]", "Invalid section: FOO"),
    (b"a FETCH 1 BODY[1", "Expected ] after section"),
    (b"a FETCH 1 BODY[HEADER.FIELDS]", "Expected SP before header field names"),
    (b"a FETCH 1 BODY[HEADER.FIELDS ()]", "Empty header field names"),
    (b"a FETCH 1 BODY[0]", "Invalid section part: must not be 0"),
    (b"a FETCH 1 BODY[]<5>", "Expected . in partial range"),
    (b"a FETCH 1 BODY[]<0.0>", "Invalid partial length: must not be 0"),
    (b"a FETCH 1 BODY.PEEK", "Expected [ after BODY.PEEK"),
    (b"a FETCH 1 BINARY[TEXT]", "Invalid section part"),
    (b"a FETCH 1 FLAGS (VANISHED)", "VANISHED is only allowed in UID FETCH"),
    (b"a UID FETCH 1 FLAGS (VANISHED)", "VANISHED requires CHANGEDSINCE"),
    (b"a FETCH 1 FLAGS (FOO 1)", "Unknown FETCH modifier: FOO"),
    (b"a STORE 1 FLAGS \\Recent", "\\Recent cannot be set by STORE"),
    (b"a STORE 1 FLAGS (\\Foo)", "Invalid flag: \\Foo"),
    (b"a STORE 1 FLAGS (\\)", "Invalid flag: \\"),
    (b"a STORE 1 +LABELS x", "Unknown STORE data item: +LABELS"),
    (b"a STORE 1 FLAGS", "Missing flags"),
    (b"a STORE 1 (FOO 1) FLAGS x", "Unknown STORE modifier: FOO"),
    (b"a COPY 1", "Missing mailbox name"),
    (b"a UID", "Missing UID command"),
    (b"a UID FROB 1", "Unknown UID command: FROB"),
    (b"a UID EXPUNGE", "Missing UID set"),
    (b"a SEARCH", "Missing search criteria"),
    (b"a SEARCH FOO", "Unknown search key: FOO"),
    (b"a SEARCH (SEEN", "Expected ) after search keys"),
    (b"a SEARCH ()", "Invalid search key"),
    (b"a SEARCH OR SEEN", "Missing search key"),
    (b"a SEARCH SINCE 32-Jan-2020", "Invalid date: 32-Jan-2020"),
    (b"a SEARCH SINCE 1-Foo-2020", "Invalid date: 1-Foo-2020"),
    (b"a SEARCH LARGER x", "Invalid size"),
    (b"a SEARCH LARGER 99999999999999999999", "Number too large for size"),
    (b"a SEARCH KEYWORD \\Seen", "Invalid keyword"),
    (b"a SEARCH RETURN (FOO) ALL", "Unknown SEARCH RETURN option: FOO"),
    (b"a SEARCH MODSEQ \"/x\" all 1", "Invalid MODSEQ entry name"),
    (b"a SEARCH MODSEQ \"/flags/x\" none 1", "Invalid MODSEQ entry type: none"),
    (b"a SEARCH YOUNGER 0", "Invalid interval: must not be 0"),
    (b"a SEARCH " + b"NOT " * 100 + b"ALL", "Search criteria nested too deeply"),
]


@pytest.mark.parametrize("data, message", ERRORS, ids=[str(d[:40]) for d, _ in ERRORS])
def test_error_message(data, message):
    assert error(data) == message


def test_name_not_in_modified_utf7_is_no_unless_the_line_is_bad():
    # A valid atom that is not modified UTF-7 (RFC 3501 5.1.3): the command
    # is well formed, the mailbox cannot exist: NO, not BAD.
    name = b"!#$&'+,-.0123456789:;<=>?@^_`|[}"
    assert parse(b"a SELECT " + name) == CommandError(
        "a", "Invalid modified UTF-7 mailbox name", "CANNOT", "NO")
    assert parse(b"a RENAME x &Jjo") == CommandError(
        "a", "Invalid modified UTF-7 mailbox name", "CANNOT", "NO")
    # A syntax error later in the command still makes it BAD.
    assert parse(b"a SELECT &Jjo (FOO)") == CommandError("a", "Unknown SELECT parameter: FOO")


def test_error_keeps_the_tag_and_has_no_code():
    assert parse(b"x1 SELECT") == CommandError("x1", "Missing mailbox name", None)


def test_invalid_tag_gives_an_untagged_error():
    assert parse(b"a+b NOOP").tag is None


def test_empty_line():
    assert parse(b"") == CommandError(None, "Empty command line")


def test_bare_lf_line_end():
    parser = CommandParser()
    parser.receive_data(b"a NOOP\nb LOGIN {1+}\nx y\n")
    assert parser.next_event() == CommandReceived(c.Noop("a"))
    assert parser.next_event() == CommandReceived(c.Login("b", b"x", b"y"))


def test_session_goes_on_after_an_error():
    parser = CommandParser()
    parser.receive_data(b"a FETCH 1 BODDY\r\nb NOOP\r\n")
    assert isinstance(parser.next_event(), CommandError)
    assert parser.next_event() == CommandReceived(c.Noop("b"))
