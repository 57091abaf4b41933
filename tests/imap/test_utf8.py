"""
UTF8=ACCEPT (RFC 6855): byte-exact transcripts of what ``ENABLE
UTF8=ACCEPT`` changes (section 3), the ``UTF8 (literal8)`` APPEND data of
section 4 and its rule for clients that did not enable it, on every store;
and an imapclient session that works with UTF-8 mailbox names and search
strings.
"""

from __future__ import annotations

import dataclasses

from harness import IMAPServerTestCase, on_every_store
from tests_messages import simple_message

from twisted_mailhub.imap.parser import CommandParser
from twisted_mailhub.model import AppendRequest

# A message whose header is UTF-8 (RFC 6532), as RFC 6855 section 4 sends it.
UTF8_MESSAGE = ("From: Jürgen <jürgen@bücher.example>\r\nTo: alice@example.org\r\n"
                "Subject: Grüße aus Köln\r\n\r\nHallo.\r\n").encode()
# 8-bit octets in the body only: any client may APPEND it.
BODY_8BIT = (b"From: carol@example.net\r\nSubject: body\r\nContent-Type: text/plain; "
             b"charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nK\xc3\xb6ln\r\n")


def parse(line: bytes, utf8: bool = False):
    parser = CommandParser(utf8=utf8)
    parser.receive_data(line)
    return parser.next_event()


def test_utf8_append_data() -> None:
    event = parse(b"a APPEND INBOX (\\Seen) UTF8 (~{3+}\r\nabc)\r\n")
    (message,) = event.command.messages
    assert (message.content, message.utf8, message.flags) == (b"abc", True, {"\\Seen"})
    event = parse(b"a APPEND INBOX UTF8 (~{1+}\r\nx) ~{1+}\r\ny\r\n")
    assert [(m.content, m.utf8) for m in event.command.messages] == [(b"x", True), (b"y", False)]


def test_bad_utf8_append_data() -> None:
    for line, message in [
        (b"a APPEND INBOX UTF8 ({3+}\r\nabc)\r\n", "UTF8 message data must be a literal8 (~{n})"),
        (b"a APPEND INBOX UTF8 (~{3+}\r\nabc\r\n", "Expected ) after UTF8 message literal"),
        (b"a APPEND INBOX UTF8 ~{3+}\r\nabc\r\n", "Expected ( before UTF8 message literal"),
    ]:
        event = parse(line)
        assert (event.condition, event.message) == ("BAD", message), line


def test_quoted_strings_must_be_utf8_once_enabled() -> None:
    # RFC 6855 section 3: high-bit octets that are not UTF-8 are BAD.
    assert parse('a SEARCH SUBJECT "Grüße"\r\n'.encode(), utf8=True).command.key.value == "Grüße"
    event = parse(b'a LOGIN "j\xfcrgen" x\r\n', utf8=True)
    assert (event.condition, event.message) == ("BAD", "Invalid UTF-8 in quoted user name")


@on_every_store
class UTF8TranscriptTests(IMAPServerTestCase):
    async def setUp(self) -> None:
        await super().setUp()
        store = await self.backend.open_store("alice")
        inbox = await store.get_mailbox("INBOX")
        await inbox.append([AppendRequest(simple_message("Grüße aus Köln")),
                            AppendRequest(simple_message("plain"))])

    def login(self, enable: bool = True):
        c = self.raw()
        c.line()
        c.command(b"t0 LOGIN alice wonderland")
        if enable:
            assert c.command(b"e1 ENABLE UTF8=ACCEPT") == [b"* ENABLED UTF8=ACCEPT\r\n",
                                                           b"e1 OK ENABLE completed\r\n"]
        return c

    async def test_capability_and_enable(self) -> None:
        def run():
            c = self.login(enable=False)
            out = [c.command(b"c1 CAPABILITY")[0],
                   c.command(b"e1 ENABLE UTF8=ACCEPT"),
                   # Enabled once: the second ENABLE names nothing.
                   c.command(b"e2 ENABLE utf8=accept")]
            c.close()
            return out

        caps, first, second = await self.in_thread(run)
        self.assertIn(b" UTF8=ACCEPT", caps)
        self.assertNotIn(b"UTF8=ONLY", caps)
        self.assertEqual(first, [b"* ENABLED UTF8=ACCEPT\r\n", b"e1 OK ENABLE completed\r\n"])
        self.assertEqual(second, [b"* ENABLED\r\n", b"e2 OK ENABLE completed\r\n"])

    async def test_enable_only_in_authenticated_state(self) -> None:
        # RFC 6855 section 3: "only valid in the authenticated state".
        def run():
            c = self.login(enable=False)
            c.command(b"s1 SELECT INBOX")
            out = [c.command(b"e1 ENABLE UTF8=ACCEPT"), c.command(b'l1 LIST "" "*"')]
            c.command(b"u1 UNSELECT")
            out.append(c.command(b"e2 ENABLE UTF8=ACCEPT"))
            c.close()
            return out

        out = await self.in_thread(run)
        self.assertEqual(out[0], [b"* ENABLED\r\n", b"e1 OK ENABLE completed\r\n"])
        self.assertEqual(out[2], [b"* ENABLED UTF8=ACCEPT\r\n", b"e2 OK ENABLE completed\r\n"])

    async def test_mailbox_names_are_utf8(self) -> None:
        # Section 3: UTF-8 quoted names in, UTF-8 names in LIST, LSUB and
        # STATUS out; a client that did not enable it sees modified UTF-7.
        def run():
            c = self.login()
            out = [c.command('t1 CREATE "Entwürfe"'.encode()),
                   c.command('t2 SUBSCRIBE "Entwürfe"'.encode()),
                   c.command(b't3 LIST "" "Entw*"'),
                   c.command(b't4 LSUB "" "*"'),
                   c.command('t5 STATUS "Entwürfe" (MESSAGES)'.encode()),
                   c.command('t6 EXAMINE "Entwürfe"'.encode())[-1],
                   c.command(b"u1 UNSELECT") and
                   c.command('t7 RENAME "Entwürfe" "Brouillons-été"'.encode()),
                   c.command(b't8 LIST "" "B*" RETURN (STATUS (UIDNEXT))'),
                   c.command(b"t9 GETQUOTAROOT INBOX")[-1]]
            c.close()
            old = self.login(enable=False)
            out.append(old.command(b't10 LIST "" "B*"'))
            out.append(old.command(b"t11 SELECT Brouillons-&AOk-t&AOk-")[-1])
            old.close()
            return out

        out = await self.in_thread(run)
        self.assertTrue(out[0][-1].startswith(b"t1 OK "))
        self.assertEqual(out[1], [b"t2 OK SUBSCRIBE completed\r\n"])
        self.assertEqual(out[2], ['* LIST (\\HasNoChildren) "/" "Entwürfe"\r\n'.encode(),
                                  b"t3 OK LIST completed\r\n"])
        self.assertEqual(out[3], ['* LSUB () "/" "Entwürfe"\r\n'.encode(),
                                  b"t4 OK LSUB completed\r\n"])
        self.assertEqual(out[4], ['* STATUS "Entwürfe" (MESSAGES 0)\r\n'.encode(),
                                  b"t5 OK STATUS completed\r\n"])
        self.assertEqual(out[5], b"t6 OK [READ-ONLY] EXAMINE completed\r\n")
        self.assertEqual(out[6], [b"t7 OK RENAME completed\r\n"])
        self.assertEqual(out[7], ['* LIST (\\HasNoChildren) "/" "Brouillons-été"\r\n'.encode(),
                                  '* STATUS "Brouillons-été" (UIDNEXT 1)\r\n'.encode(),
                                  b"t8 OK LIST completed\r\n"])
        self.assertEqual(out[9], [b'* LIST (\\HasNoChildren) "/" Brouillons-&AOk-t&AOk-\r\n',
                                  b"t10 OK LIST completed\r\n"])
        self.assertEqual(out[10], b"t11 OK [READ-WRITE] SELECT completed\r\n")

    async def test_names_must_be_net_unicode(self) -> None:
        # Section 3: Net-Unicode (RFC 5198), no C1 controls; bad UTF-8 is BAD.
        def run():
            c = self.login()
            out = [c.command(b't1 CREATE "A\xc2\x85B"'),
                   c.command('t2 CREATE "Entwu\u0308rfe"'.encode()),
                   c.command(b't3 CREATE "Caf\xe9"'),
                   c.command(b't4 RENAME INBOX "\xe2\x80\xa8"'),
                   c.command(b"t5 NOOP")]
            c.close()
            return out

        out = await self.in_thread(run)
        self.assertEqual(out, [
            [b"t1 NO [CANNOT] Mailbox name is not Net-Unicode (RFC 5198)\r\n"],
            [b"t2 NO [CANNOT] Mailbox name is not in Unicode Normalization Form C\r\n"],
            [b"t3 BAD Invalid UTF-8 in quoted mailbox name\r\n"],
            [b"t4 NO [CANNOT] Mailbox name is not Net-Unicode (RFC 5198)\r\n"],
            [b"t5 OK NOOP completed\r\n"],
        ])

    async def test_search_strings_and_charset(self) -> None:
        # Section 3: UTF-8 quoted search strings; CHARSET is then BAD.
        def run():
            c = self.login()
            c.command(b"s1 SELECT INBOX")
            out = [c.command('t1 SEARCH SUBJECT "grüße"'.encode()),
                   c.command('t2 SEARCH CHARSET UTF-8 SUBJECT "Grüße"'.encode()),
                   c.command(b"t3 SEARCH CHARSET US-ASCII ALL"),
                   c.command(b'r1 UID SEARCH RETURN (COUNT) SUBJECT "K\xc3\xb6ln"'),
                   c.command('t4 SORT (SUBJECT) UTF-8 SUBJECT "köln"'.encode())]
            c.close()
            old = self.login(enable=False)
            old.command(b"s1 SELECT INBOX")
            out.append(old.command('t5 SEARCH CHARSET UTF-8 SUBJECT "Grüße"'.encode()))
            old.close()
            return out

        out = await self.in_thread(run)
        bad = (b" BAD SEARCH CHARSET is not allowed after ENABLE UTF8=ACCEPT "
               b"(RFC 6855 section 3); strings are UTF-8\r\n")
        self.assertEqual(out, [
            [b"* SEARCH 1\r\n", b"t1 OK SEARCH completed\r\n"],
            [b"t2" + bad],
            [b"t3" + bad],
            [b"* ESEARCH (TAG \"r1\") UID COUNT 1\r\n", b"r1 OK SEARCH completed\r\n"],
            [b"* SORT 1\r\n", b"t4 OK SORT completed\r\n"],
            [b"* SEARCH 1\r\n", b"t5 OK SEARCH completed\r\n"],
        ])

    async def test_append_utf8_data(self) -> None:
        # Section 4: UTF-8 headers in the "UTF8" APPEND data extension.
        size = len(UTF8_MESSAGE)

        def run():
            c = self.login()
            c.send(b"a1 APPEND INBOX (\\Seen) UTF8 (~{%d}\r\n" % size)
            out = [c.line()]
            c.send(UTF8_MESSAGE + b")\r\n")
            out.append(c.until_tagged(b"a1")[-1])
            # MULTIAPPEND, a plain literal8 and a literal among them.
            out.append(c.command(b"a2 APPEND INBOX UTF8 (~{%d+}\r\n" % size + UTF8_MESSAGE
                                 + b") ~{%d+}\r\n" % size + UTF8_MESSAGE
                                 + b" {%d+}\r\n" % len(BODY_8BIT) + BODY_8BIT)[-1])
            c.command(b"s1 SELECT INBOX")
            out.append(c.command(b"f1 FETCH 3 (FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])"))
            out.append(c.command(b"f2 FETCH 3 ENVELOPE"))
            out.append(c.command(b"f3 FETCH 1:* BODY.PEEK[]"))
            c.close()
            return out

        out = await self.in_thread(run)
        self.assertEqual(out[0], b"+ Ready for literal data\r\n")
        self.assertRegex(out[1], rb"^a1 OK \[APPENDUID \d+ 3\] APPEND completed\r\n$")
        self.assertRegex(out[2], rb"^a2 OK \[APPENDUID \d+ 4:6\] APPEND completed\r\n$")
        subject = "Subject: Grüße aus Köln\r\n\r\n".encode()
        self.assertEqual(b"".join(out[3]), (
            b"* 3 FETCH (FLAGS (\\Seen \\Recent) BODY[HEADER.FIELDS (SUBJECT)] {%d}\r\n"
            % len(subject) + subject + b")\r\nf1 OK FETCH completed\r\n"))
        # ENVELOPE strings holding UTF-8 are literals, as for any client.
        subject, jurgen = "Grüße aus Köln".encode(), "Jürgen".encode()
        self.assertEqual(b"".join(out[4]), (
            b"* 3 FETCH (ENVELOPE (NIL {%d}\r\n%s" % (len(subject), subject)
            + b" (({%d}\r\n%s NIL {7}\r\nj\xc3\xbcrgen {15}\r\nb\xc3\xbccher.example))"
            % (len(jurgen), jurgen) * 3
            + b' ((NIL NIL "alice" "example.org")) NIL NIL NIL NIL))\r\nf2 OK FETCH completed\r\n'))
        # The stored message is what was sent, octet for octet.
        whole = b"".join(out[5])
        self.assertEqual(whole.count(UTF8_MESSAGE), 3)
        self.assertIn(BODY_8BIT, whole)

    async def test_legacy_client_may_not_append_8bit_headers(self) -> None:
        # Section 4: without ENABLE UTF8=ACCEPT, an APPEND with 8-bit octets
        # in a header is NO, in either form; 8-bit in a body is fine.  A
        # MULTIAPPEND stores nothing when one message is refused.
        size = len(UTF8_MESSAGE)

        def run():
            c = self.login(enable=False)
            out = [c.command(b"a1 APPEND INBOX {%d+}\r\n" % size + UTF8_MESSAGE),
                   c.command(b"a2 APPEND INBOX UTF8 (~{%d+}\r\n" % size + UTF8_MESSAGE + b")"),
                   c.command(b"a3 APPEND INBOX {%d+}\r\n" % len(BODY_8BIT) + BODY_8BIT
                             + b" {%d+}\r\n" % size + UTF8_MESSAGE),
                   c.command(b"a4 APPEND INBOX {%d+}\r\n" % len(BODY_8BIT) + BODY_8BIT)[-1],
                   c.command(b"s1 STATUS INBOX (MESSAGES)")]
            c.close()
            return out

        out = await self.in_thread(run)
        refusal = (b" NO [CANNOT] %s 8-bit header fields; ENABLE UTF8=ACCEPT first "
                   b"(RFC 6855 section 4)\r\n")
        self.assertEqual(out[0], [b"a1" + refusal % b"Message has"])
        self.assertEqual(out[1], [b"a2" + refusal % b"Message has"])
        self.assertEqual(out[2], [b"a3" + refusal % b"Message 2 has"])
        self.assertRegex(out[3], rb"^a4 OK \[APPENDUID \d+ 3\] APPEND completed\r\n$")
        self.assertEqual(out[4], [b"* STATUS INBOX (MESSAGES 3)\r\n",
                                  b"s1 OK STATUS completed\r\n"])

    async def test_refusal_after_enable_in_selected_state(self) -> None:
        # Section 3: ENABLE UTF8=ACCEPT with a mailbox selected is ignored, so
        # the refusal there says to enable it in the authenticated state
        # rather than to send an ENABLE that would be ignored again.
        size = len(UTF8_MESSAGE)

        def run():
            c = self.login(enable=False)
            c.command(b"s1 SELECT INBOX")
            out = [c.command(b"e1 ENABLE UTF8=ACCEPT"),
                   c.command(b"a1 APPEND INBOX {%d+}\r\n" % size + UTF8_MESSAGE)]
            c.command(b"u1 UNSELECT")
            out.append(c.command(b"a2 APPEND INBOX {%d+}\r\n" % size + UTF8_MESSAGE))
            c.close()
            return out

        out = await self.in_thread(run)
        self.assertEqual(out[0], [b"* ENABLED\r\n", b"e1 OK ENABLE completed\r\n"])
        self.assertEqual(out[1], [
            b"a1 NO [CANNOT] Message has 8-bit header fields; ENABLE UTF8=ACCEPT in the "
            b"authenticated state, before SELECT or EXAMINE (RFC 6855 sections 3 and 4)\r\n"])
        self.assertEqual(out[2], [
            b"a2 NO [CANNOT] Message has 8-bit header fields; ENABLE UTF8=ACCEPT first "
            b"(RFC 6855 section 4)\r\n"])

    async def test_legacy_client_gets_no_utf8_quoted_strings(self) -> None:
        # Section 3: "MUST NOT send UTF-8 in quoted-strings" to a client that
        # did not enable it.  Section 7 leaves a message with UTF-8 headers
        # to the server; it is served as stored, its UTF-8 strings as
        # literals (RFC 3501 section 9: CHAR8), its header octet for octet.
        store = await self.backend.open_store("alice")
        inbox = await store.get_mailbox("INBOX")
        await inbox.append([AppendRequest(UTF8_MESSAGE)])

        def run():
            c = self.login(enable=False)
            c.command(b"s1 EXAMINE INBOX")
            out = [c.command(b"f1 FETCH 3 ENVELOPE"), c.command(b"f2 FETCH 3 BODY.PEEK[HEADER]")]
            c.close()
            return out

        envelope, header = await self.in_thread(run)
        subject, jurgen = "Grüße aus Köln".encode(), "Jürgen".encode()
        self.assertEqual(b"".join(envelope), (
            b"* 3 FETCH (ENVELOPE (NIL {%d}\r\n%s" % (len(subject), subject)
            + b" (({%d}\r\n%s NIL {7}\r\nj\xc3\xbcrgen {15}\r\nb\xc3\xbccher.example))"
            % (len(jurgen), jurgen) * 3
            + b' ((NIL NIL "alice" "example.org")) NIL NIL NIL NIL))\r\n'
            + b"f1 OK FETCH completed\r\n"))
        head = UTF8_MESSAGE[:UTF8_MESSAGE.index(b"\r\n\r\n") + 4]
        self.assertEqual(b"".join(header), b"* 3 FETCH (BODY[HEADER] {%d}\r\n%s)\r\n"
                         b"f2 OK FETCH completed\r\n" % (len(head), head))

    async def test_imap4rev2_client_may_append_8bit_headers(self) -> None:
        # RFC 9051 section 6.3.12: "8-bit characters are permitted".
        def run():
            c = self.login(enable=False)
            c.command(b"e1 ENABLE IMAP4rev2")
            answer = c.command(b"a1 APPEND INBOX {%d+}\r\n" % len(UTF8_MESSAGE) + UTF8_MESSAGE)
            c.close()
            return answer[-1]

        self.assertRegex(await self.in_thread(run),
                         rb"^a1 OK \[APPENDUID \d+ 3\] APPEND completed\r\n$")

    async def test_unauthenticate_forgets_it(self) -> None:
        def run():
            c = self.login()
            c.command(b"u1 UNAUTHENTICATE")
            c.command(b"t1 LOGIN alice wonderland")
            out = c.command(b"a1 APPEND INBOX {%d+}\r\n" % len(UTF8_MESSAGE) + UTF8_MESSAGE)
            c.close()
            return out

        self.assertEqual((await self.in_thread(run))[-1][:15], b"a1 NO [CANNOT] ")


@on_every_store
class UTF8ClientTests(IMAPServerTestCase):
    """
    imaplib, which sends and reads UTF-8 once ENABLE UTF8=ACCEPT succeeded:
    UTF-8 mailbox names and search strings as they are, over each store.
    """

    async def test_imaplib_utf8_session(self) -> None:
        store = await self.backend.open_store("alice")
        inbox = await store.get_mailbox("INBOX")
        await inbox.append([AppendRequest(UTF8_MESSAGE), AppendRequest(simple_message("plain"))])
        box, renamed = '"Ärchiv/2024 €"', '"Ärchiv/2025 ✓"'
        client_utf8 = False

        def run():
            client = self.imaplib_client()
            caps = client.capabilities
            enabled = client.enable("UTF8=ACCEPT")
            # imaplib switches to UTF-8 once the ENABLE is OK.
            nonlocal client_utf8
            client_utf8 = client.utf8_enabled
            out = [client.create(box), client.list('""', '"Ä*"'),
                   client.status(box, "(MESSAGES UIDNEXT)")]
            client.select("INBOX")
            out.append(client.search(None, "SUBJECT", '"Köln"', "FROM", '"jürgen"'))
            out.append(client.copy("1", box))
            client.select(box)
            out.append(client.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])"))
            client.close()
            out.append(client.rename(box, renamed))
            out.append(client.list('""', '"Ä*"'))
            client.logout()
            return caps, enabled, out

        caps, enabled, out = await self.in_thread(run)
        self.assertIn("UTF8=ACCEPT", caps)
        self.assertEqual(enabled[0], "OK")
        self.assertTrue(client_utf8)
        self.assertEqual(out[0][0], "OK")
        self.assertEqual(out[1], ("OK", ['(\\HasChildren) "/" "Ärchiv"'.encode(),
                                         '(\\HasNoChildren) "/" "Ärchiv/2024 €"'.encode()]))
        self.assertEqual(out[2], ("OK", ['"Ärchiv/2024 €" (MESSAGES 0 UIDNEXT 1)'.encode()]))
        self.assertEqual(out[3], ("OK", [b"1"]))
        self.assertEqual(out[4][0], "OK")
        self.assertEqual(out[5][1][0][1], "Subject: Grüße aus Köln\r\n\r\n".encode())
        self.assertEqual(out[6][0], "OK")
        self.assertEqual(out[7], ("OK", ['(\\HasChildren) "/" "Ärchiv"'.encode(),
                                         '(\\HasNoChildren) "/" "Ärchiv/2025 ✓"'.encode()]))

        if self.store != "memory":
            # The names as the store keeps them (file names for mbox and
            # Maildir) read back by a new server over the same mail.
            await self.restart()

        def after_restart():
            client = self.imaplib_client()
            client.enable("UTF8=ACCEPT")
            listing = client.list('""', '"Ä*"')
            client.select(renamed)
            subject = client.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")[1][0][1]
            client.logout()
            old = self.imaplib_client()
            legacy = old.list('""', '"&AMQ-*"')
            old.logout()
            return listing, subject, legacy

        listing, subject, legacy = await self.in_thread(after_restart)
        self.assertEqual(listing, out[7])
        self.assertEqual(subject, "Subject: Grüße aus Köln\r\n\r\n".encode())
        # A client that did not enable it sees modified UTF-7.
        self.assertEqual(legacy, ("OK", [b'(\\HasChildren) "/" &AMQ-rchiv',
                                         b'(\\HasNoChildren) "/" "&AMQ-rchiv/2025 &JxM-"']))

    async def restart(self) -> None:
        """A new server over a new backend object on the same stored mail."""
        from test_index import twin
        from twisted.cred.portal import Portal
        from twisted.internet import reactor

        from harness import USERS
        from twisted_mailhub.auth.checkers import InMemoryChecker
        from twisted_mailhub.auth.realm import MailhubRealm
        from twisted_mailhub.imap.protocol import IMAPServerFactory

        await self.listening.stopListening()
        for protocol in list(self.factory.connections):
            protocol.transport.abortConnection()
        old = self.backend
        self.backend = twin(old)
        await old.close()
        portal = Portal(MailhubRealm(self.backend), [InMemoryChecker(dict(USERS))])
        self.factory = IMAPServerFactory(portal, policy=self.policy)
        self.listening = reactor.listenTCP(0, self.factory, interface="127.0.0.1")
        self.port = self.listening.getHost().port


class UTF8NotOfferedTests(IMAPServerTestCase):
    """``--no-utf8-accept``: no UTF8=ACCEPT, and 8-bit headers taken from anyone."""

    policy = dataclasses.replace(IMAPServerTestCase.policy, utf8_accept=False)

    async def test_not_offered_and_old_mail_taken(self) -> None:
        size = len(UTF8_MESSAGE)

        def run():
            c = self.raw()
            c.line()
            c.command(b"t0 LOGIN alice wonderland")
            out = [c.command(b"c1 CAPABILITY")[0],
                   c.command(b"e1 ENABLE UTF8=ACCEPT"),
                   c.command(b"a1 APPEND INBOX {%d+}\r\n" % size + UTF8_MESSAGE)[-1],
                   c.command(b"f1 EXAMINE INBOX")[-1],
                   c.command(b"f2 FETCH 1 BODY.PEEK[]")]
            c.close()
            return out

        caps, enabled, appended, _, fetched = await self.in_thread(run)
        self.assertNotIn(b"UTF8=ACCEPT", caps)
        self.assertEqual(enabled, [b"* ENABLED\r\n", b"e1 OK ENABLE completed\r\n"])
        self.assertRegex(appended, rb"^a1 OK \[APPENDUID \d+ 1\] APPEND completed\r\n$")
        self.assertEqual(b"".join(fetched[:-1]),
                         b"* 1 FETCH (BODY[] {%d}\r\n%s)\r\n" % (size, UTF8_MESSAGE))
