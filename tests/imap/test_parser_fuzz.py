"""
Property tests: whatever the client sends, the parser neither raises nor
hoards memory, and it finds its feet again at the next line.
"""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from twisted_mailhub.imap import commands as c
from twisted_mailhub.imap.parser import (
    CommandError,
    CommandParser,
    CommandReceived,
    ContinuationRequest,
    FatalError,
    RawLine,
)

MAX_LINE = 200
MAX_LITERAL = 300
EVENT_TYPES = (CommandReceived, ContinuationRequest, CommandError, RawLine, FatalError)

VALID = [
    b"a1 LOGIN {4}\r\nuser {6+}\r\nsecret\r\n",
    b"a2 SELECT INBOX (QRESYNC (1 2 1:9 (1,3 2,5)))\r\n",
    b'a3 APPEND Drafts (\\Draft) "17-Jul-1996 02:44:25 -0700" ~{5}\r\nx\x00y\r\n\r\n',
    b"a4 UID FETCH 1:* (FLAGS BODY.PEEK[1.HEADER.FIELDS (DATE FROM)]<0.10>) (CHANGEDSINCE 1)\r\n",
    b'a5 SEARCH RETURN (MIN) CHARSET UTF-8 OR (SEEN FROM "x") NOT UID 1:5 MODSEQ 5\r\n',
    b'a6 LIST (SUBSCRIBED) "" (INBOX/% x*) RETURN (CHILDREN STATUS (MESSAGES))\r\n',
    b"a7 STORE 1:3 (UNCHANGEDSINCE 7) +FLAGS.SILENT (\\Seen $Junk)\r\n",
    b"a8 AUTHENTICATE PLAIN AGZvbwBiYXI=\r\n",
    b'a9 ID ("name" "x" "v" NIL)\r\n',
    b"a10 CREATE Sent (USE (\\Sent))\r\n",
    b"a11 STATUS inbox (MESSAGES UNSEEN)\r\n",
    b"a12 FETCH 1 FULL\r\n",
    b"a13 NOTIFY SET STATUS (selected (MessageNew (UID BODY.PEEK[HEADER]) MessageExpunge))"
    b' (subtree (Lists "a b") (MessageNew MessageExpunge FlagChange)) (personal NONE)\r\n',
    b"a14 NOTIFY NONE\r\n",
    b'a15 APPEND INBOX CATENATE (TEXT {3+}\r\nabc URL "/INBOX/;UID=1" TEXT ~{2+}\r\n\x00b)\r\n',
    b'a16 URLFETCH "imap://a@b/INBOX/;uid=1" {3+}\r\nabc\r\n',
    b'a17 GENURLAUTH "imap://a@b/INBOX/;uid=1;urlauth=anonymous" INTERNAL "x" X-Y\r\n',
    b"a18 SEARCH UIDAFTER 4294967295 UIDBEFORE 1 NOT UIDAFTER 9\r\n",
    b'a19 APPEND INBOX UTF8 (~{3+}\r\nabc) CATENATE (URL ";uid=1")\r\n',
    b'a20 UID REPLACE 4 Drafts (\\Seen) "17-Jul-1996 02:44:25 -0700" {3+}\r\nabc\r\n',
    b'a21 REPLACE * INBOX CATENATE (URL ";uid=1" TEXT {2+}\r\nhi)\r\n',
]


def drain(parser, limit=10_000):
    out = []
    for _ in range(limit):
        event = parser.next_event()
        if event is None:
            return out
        assert isinstance(event, EVENT_TYPES)
        out.append(event)
    raise AssertionError("next_event kept returning events")


def feed(parser, chunks):
    events = []
    for chunk in chunks:
        parser.receive_data(chunk)
        events.extend(drain(parser))
        # Bounded: one command's line text and literals, and a pending CR.
        assert parser.buffered <= MAX_LINE + MAX_LITERAL + 2
    return events


def chunked(data, cuts):
    points = sorted({min(cut, len(data)) for cut in cuts})
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in zip(bounds, bounds[1:]) if b > a]


@st.composite
def mutated(draw):
    data = bytearray(b"".join(draw(st.lists(st.sampled_from(VALID), min_size=1, max_size=4))))
    for _ in range(draw(st.integers(0, 6))):
        pos = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["insert", "delete", "replace"]))
        blob = draw(st.sampled_from([
            b"{", b"}", b"{5}", b"{9999+}", b"~{3+}", b"(", b")", b'"', b"\\", b" ",
            b"\r\n", b"\n", b"\x00", b"\xff", b"*", b"[", b"]", b"<", b"NOT ", b"x" * 250,
        ]))
        if action == "insert":
            data[pos:pos] = blob
        elif action == "delete":
            del data[pos:pos + len(blob)]
        else:
            data[pos:pos + len(blob)] = blob
    return bytes(data)


def new_parser():
    return CommandParser(max_line_length=MAX_LINE, max_literal_size=MAX_LITERAL)


settings_ = settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)


@settings_
@given(st.binary(max_size=2000), st.lists(st.integers(0, 2000), max_size=20))
def test_arbitrary_bytes(data, cuts):
    feed(new_parser(), chunked(data, cuts))


@settings_
@given(mutated(), st.lists(st.integers(0, 3000), max_size=20))
def test_mutated_commands(data, cuts):
    feed(new_parser(), chunked(data, cuts))


@settings_
@given(st.one_of(st.binary(max_size=1500), mutated()), st.lists(st.integers(0, 3000), max_size=20))
def test_chunking_does_not_change_events(data, cuts):
    assert feed(new_parser(), chunked(data, cuts)) == feed(new_parser(), [data])


@settings_
@given(st.one_of(st.binary(max_size=1500), mutated()).filter(lambda d: b"{" not in d))
def test_resynchronises_at_next_line(data):
    # Without literal announcements nothing can swallow the following line.
    events = feed(new_parser(), [data, b"\r\nz NOOP\r\n"])
    assert events[-1] == CommandReceived(c.Noop("z"))


@settings_
@given(mutated())
def test_large_literal_announcements_never_buffer(data):
    parser = new_parser()
    feed(parser, [data, b"\r\na {123456789+}\r\n", b"x" * 5000])
    assert parser.buffered <= MAX_LINE + MAX_LITERAL + 2
