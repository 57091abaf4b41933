"""
Conformance fixes found by imaptest, each as a transcript over a real
socket: what a client sends, what the RFC says the server answers.
"""

from __future__ import annotations

from harness import IMAPServerTestCase, on_every_store


def literal(data: bytes) -> bytes:
    return b"{%d+}\r\n" % len(data) + data


@on_every_store
class ConformanceTests(IMAPServerTestCase):
    def session(self):
        c = self.raw()
        c.line()
        c.command(b"t0 LOGIN alice wonderland")
        return c

    def append(self, c, message: bytes, mailbox: bytes = b"INBOX") -> list[bytes]:
        return c.command(b"ap APPEND " + mailbox + b" " + literal(message))

    async def test_nul_in_charset_name_is_an_unknown_charset(self) -> None:
        # A NUL in a charset name must not turn APPEND or SEARCH into an
        # internal error: the charset is unknown, the bytes are searched raw.
        message = (b"From: a@example.org\r\nSubject: =?ut\0f-8?Q?caf=C3=A9?=\r\n"
                   b"Content-Type: text/plain; charset=\"ut\0f-8\"; name*=ut\0f-8''x%41\r\n"
                   b"\r\nhello world\r\n")

        def run():
            c = self.session()
            r = [self.append(c, message)[-1]]
            c.command(b"t1 SELECT INBOX")
            r.append(c.command(b"t2 SEARCH BODY hello"))
            r.append(c.command(b"t3 SEARCH TEXT world"))
            c.close()
            return r

        r = await self.in_thread(run)
        self.assertTrue(r[0].startswith(b"ap OK "), r[0])
        self.assertEqual(r[1], [b"* SEARCH 1\r\n", b"t2 OK SEARCH completed\r\n"])
        self.assertEqual(r[2], [b"* SEARCH 1\r\n", b"t3 OK SEARCH completed\r\n"])

    async def test_select_of_name_not_in_modified_utf7_is_no(self) -> None:
        def run():
            c = self.session()
            r = c.command(b"t1 SELECT !#$&'+,-.0123456789:;<=>?@^_`|[}")
            ok = c.command(b"t2 NOOP")
            c.close()
            return r, ok

        r, ok = await self.in_thread(run)
        self.assertEqual(r, [b"t1 NO [CANNOT] Invalid modified UTF-7 mailbox name\r\n"])
        self.assertEqual(ok, [b"t2 OK NOOP completed\r\n"])

    async def test_envelope_gives_a_quoted_local_part_without_quotes(self) -> None:
        message = (b'From: John <"john doe"@example.org>\r\nTo: "a\\"b"@example.org\r\n'
                   b"Subject: s\r\n\r\nbody\r\n")

        def run():
            c = self.session()
            self.append(c, message)
            c.command(b"t1 SELECT INBOX")
            r = c.command(b"t2 FETCH 1 ENVELOPE")
            c.close()
            return r

        r = await self.in_thread(run)
        self.assertEqual(r[0], b'* 1 FETCH (ENVELOPE (NIL "s"'
                               b' (("John" NIL "john doe" "example.org"))'
                               b' (("John" NIL "john doe" "example.org"))'
                               b' (("John" NIL "john doe" "example.org"))'
                               b' ((NIL NIL "a\\"b" "example.org")) NIL NIL NIL NIL))\r\n')

    async def test_binary_of_quoted_printable_drops_padding_and_soft_breaks(self) -> None:
        # RFC 2045 6.7 rules 3 and 5, as BINARY (RFC 3516) decodes them.
        body = b"line one   \r\nsoft= \t\r\nbreak=\r\ns caf=C3=A9\t\r\nend=20\r\n"
        message = (b"From: a@example.org\r\nSubject: qp\r\nMIME-Version: 1.0\r\n"
                   b"Content-Type: text/plain; charset=utf-8\r\n"
                   b"Content-Transfer-Encoding: quoted-printable\r\n\r\n" + body)
        decoded = b"line one\r\nsoftbreaks caf\xc3\xa9\r\nend \r\n"

        def run():
            c = self.session()
            self.append(c, message)
            c.command(b"t1 SELECT INBOX")
            r = c.command(b"t2 FETCH 1 (BINARY.SIZE[1] BINARY.PEEK[1])")
            c.close()
            return r

        r = await self.in_thread(run)
        self.assertEqual(b"".join(r), b"* 1 FETCH (BINARY.SIZE[1] %d BINARY[1] {%d}\r\n%s)\r\n"
                         b"t2 OK FETCH completed\r\n" % (len(decoded), len(decoded), decoded))

    async def test_no_nul_in_an_ordinary_literal(self) -> None:
        # RFC 3501 section 9: a {n} literal holds no NUL; only BINARY may
        # answer with ~{n} (RFC 3516).  APPEND takes NUL in a literal8.
        part = b"a\0b\0c"
        message = (b"From: a@example.org\r\nSubject: x\0y\r\nMIME-Version: 1.0\r\n"
                   b"Content-Type: multipart/mixed; boundary=xx\r\n\r\n"
                   b"--xx\r\nContent-Type: application/octet-stream\r\n"
                   b"Content-Transfer-Encoding: binary\r\n\r\n" + part + b"\r\n--xx--\r\n")

        def run():
            c = self.session()
            r = [c.command(b"ap APPEND INBOX ~{%d+}\r\n" % len(message) + message)]
            c.command(b"t1 SELECT INBOX")
            for tag, items in [(b"t2", b"BODY.PEEK[1]"), (b"t3", b"ENVELOPE"),
                               (b"t4", b"BINARY.PEEK[1]"), (b"t5", b"BODY.PEEK[]")]:
                c.send(tag + b" FETCH 1 " + items + b"\r\n")
                head = c.line()
                size = int(head[head.rindex(b"{") + 1:head.rindex(b"}")])
                data = c.read_exact(size)
                r.append((head, data, c.until_tagged(tag)))
            c.close()
            return r

        r = await self.in_thread(run)
        self.assertTrue(r[0][-1].startswith(b"ap OK "), r[0])
        body, envelope, binary, whole = r[1:]
        self.assertEqual(body[0], b"* 1 FETCH (BODY[1] {5}\r\n")
        self.assertEqual(body[1], b"a\x80b\x80c")
        self.assertIn(b"ENVELOPE (NIL {3}\r\n", envelope[0])
        self.assertEqual(envelope[1], b"x\x80y")
        # BINARY gives the octets exactly, in a literal8.
        self.assertEqual(binary[0], b"* 1 FETCH (BINARY[1] ~{5}\r\n")
        self.assertEqual(binary[1], part)
        self.assertEqual(whole[0], b"* 1 FETCH (BODY[] {%d}\r\n" % len(message))
        self.assertEqual(whole[1], message.replace(b"\0", b"\x80"))
        for _, _, rest in r[1:]:
            self.assertTrue(rest[-1].endswith(b" OK FETCH completed\r\n"), rest)

    async def test_no_nul_in_a_streamed_literal(self) -> None:
        # Large sections are streamed from the store in chunks.
        from twisted_mailhub.imap.fetch import STREAM_THRESHOLD

        message = b"Subject: big\r\n\r\n" + b"ab\0" * (STREAM_THRESHOLD // 3 + 10)

        def run():
            c = self.session()
            c.command(b"ap APPEND INBOX ~{%d+}\r\n" % len(message) + message)
            c.command(b"t1 SELECT INBOX")
            c.send(b"t2 FETCH 1 BODY.PEEK[]\r\n")
            head = c.line()
            data = c.read_exact(len(message))
            return head, data, c.until_tagged(b"t2")

        head, data, rest = await self.in_thread(run)
        self.assertEqual(head, b"* 1 FETCH (BODY[] {%d}\r\n" % len(message))
        self.assertEqual(data, message.replace(b"\0", b"\x80"))
        self.assertEqual(rest[-1], b"t2 OK FETCH completed\r\n")

    async def test_status_size_is_advertised_and_answered(self) -> None:
        message = b"Subject: s\r\n\r\nbody\r\n"

        def run():
            c = self.session()
            caps = c.command(b"t1 CAPABILITY")
            self.append(c, message)
            status = c.command(b"t2 STATUS INBOX (MESSAGES SIZE)")
            c.close()
            return caps, status

        caps, status = await self.in_thread(run)
        self.assertIn(b"STATUS=SIZE", caps[0].split())
        self.assertEqual(status[0], b"* STATUS INBOX (MESSAGES 1 SIZE %d)\r\n" % len(message))

    async def test_qresync_parameters_without_qresync_are_bad(self) -> None:
        # RFC 7162 3.2.5 / 3.2.6: BAD until ENABLE QRESYNC (CONDSTORE is
        # not enough).
        def run():
            c = self.session()
            caps = c.command(b"t0 CAPABILITY")
            self.append(c, b"Subject: s\r\n\r\nbody\r\n")
            r = [c.command(b"t1 ENABLE CONDSTORE"),
                 c.command(b"t2 SELECT INBOX (QRESYNC (1 1))"),
                 c.command(b"t3 SELECT INBOX"),
                 c.command(b"t4 UID FETCH 1:* FLAGS (CHANGEDSINCE 1 VANISHED)"),
                 c.command(b"t5 UID FETCH 1:* UID (CHANGEDSINCE 0)")]
            c.close()
            return caps, r

        caps, r = await self.in_thread(run)
        self.assertIn(b"QRESYNC", caps[0].split())
        self.assertEqual(r[0], [b"* ENABLED CONDSTORE\r\n", b"t1 OK ENABLE completed\r\n"])
        self.assertEqual(r[1], [b"t2 BAD QRESYNC is not enabled\r\n"])
        self.assertEqual(r[2][-1], b"t3 OK [READ-WRITE] SELECT completed\r\n")
        self.assertEqual(r[3], [b"t4 BAD VANISHED needs QRESYNC, which is not enabled\r\n"])
        self.assertEqual(r[4][-1], b"t5 OK FETCH completed\r\n")

    def modseq_session(self):
        """Three messages; the second one's flags changed last."""
        c = self.session()
        for n in range(3):
            self.append(c, b"Subject: %d\r\n\r\nbody\r\n" % n)
        c.command(b"s1 SELECT INBOX")
        c.command(b"s2 STORE 2 +FLAGS.SILENT (\\Flagged)")
        return c

    async def test_fetch_modseq_enables_condstore(self) -> None:
        # RFC 7162 3.1: FETCH naming MODSEQ is a CONDSTORE enabling command.
        def run():
            c = self.modseq_session()
            r = [c.command(b"t1 FETCH 1 MODSEQ"), c.command(b"t2 STORE 3 +FLAGS (\\Seen)"),
                 c.command(b"t3 FETCH 1 FLAGS"), c.command(b"t4 SELECT INBOX")]
            c.close()
            return r

        fetch, store, flags, select = await self.in_thread(run)
        # The first enabling command with a mailbox selected tells HIGHESTMODSEQ.
        self.assertTrue(fetch[0].startswith(b"* OK [HIGHESTMODSEQ "), fetch)
        highest = int(fetch[0].split()[3].rstrip(b"]"))
        m1 = int(fetch[1].split(b"(")[-1].rstrip(b")\r\n"))
        self.assertEqual(fetch[1:], [b"* 1 FETCH (MODSEQ (%d))\r\n" % m1,
                                     b"t1 OK FETCH completed\r\n"])
        self.assertTrue(m1 < highest)
        # Afterwards every untagged FETCH carries MODSEQ, and so does SELECT.
        self.assertEqual(store[0], b"* 3 FETCH (FLAGS (\\Seen \\Recent) MODSEQ (%d))\r\n"
                         % (highest + 1))
        self.assertEqual(flags[0], b"* 1 FETCH (FLAGS (\\Recent) MODSEQ (%d))\r\n" % m1)
        self.assertIn(b"* OK [HIGHESTMODSEQ %d] Highest\r\n" % (highest + 1), select)

    async def test_esearch_min_max_give_the_modseq_of_their_message(self) -> None:
        # RFC 4731 3.2: MIN (or MAX) alone: the mod-sequence of that message.
        def run():
            c = self.modseq_session()
            r = [c.command(b"t%d SEARCH RETURN (%s) MODSEQ 1" % (i, ret))
                 for i, ret in enumerate([b"MIN", b"MAX", b"MIN MAX", b"MIN COUNT", b"ALL"])]
            modseqs = c.command(b"t9 FETCH 1:* MODSEQ")[:-1]
            c.close()
            return r, modseqs

        r, lines = await self.in_thread(run)
        m1, m2, m3 = (int(line.split(b"(")[-1].rstrip(b")\r\n")) for line in lines)
        self.assertTrue(m1 < m3 < m2, lines)  # message 2 was flagged last
        self.assertEqual(r[0][-2:], [b'* ESEARCH (TAG "t0") MIN 1 MODSEQ %d\r\n' % m1,
                                     b"t0 OK SEARCH completed\r\n"])
        self.assertEqual(r[1][-2], b'* ESEARCH (TAG "t1") MAX 3 MODSEQ %d\r\n' % m3)
        self.assertEqual(r[2][-2], b'* ESEARCH (TAG "t2") MIN 1 MAX 3 MODSEQ %d\r\n' % m3)
        self.assertEqual(r[3][-2], b'* ESEARCH (TAG "t3") MIN 1 COUNT 3 MODSEQ %d\r\n' % m2)
        self.assertEqual(r[4][-2], b'* ESEARCH (TAG "t4") ALL 1:3 MODSEQ %d\r\n' % m2)

    async def test_nul_in_a_text_body_is_stored_and_searched(self) -> None:
        message = b"Subject: s\0t\r\nContent-Type: text/plain\r\n\r\nfind\0me here\r\n"

        def run():
            c = self.session()
            r = [c.command(b"ap APPEND INBOX ~{%d+}\r\n" % len(message) + message)]
            c.command(b"t1 SELECT INBOX")
            r.append(c.command(b"t2 SEARCH BODY here"))
            r.append(c.command(b"t3 SEARCH SUBJECT t"))
            c.close()
            return r

        r = await self.in_thread(run)
        self.assertTrue(r[0][-1].startswith(b"ap OK "), r[0])
        self.assertEqual(r[1], [b"* SEARCH 1\r\n", b"t2 OK SEARCH completed\r\n"])
        self.assertEqual(r[2], [b"* SEARCH 1\r\n", b"t3 OK SEARCH completed\r\n"])

    async def test_recursivematch_suppresses_childinfo_of_returned_children(self) -> None:
        # RFC 5258 3.5: CHILDINFO only when a matching child is not returned.
        def run():
            c = self.session()
            for name in (b"Fruit/Apple", b"Fruit/Banana", b"Veg/Leek"):
                c.command(b"c CREATE " + name)
            for name in (b"Fruit", b"Fruit/Apple", b"Veg/Leek"):
                c.command(b"s SUBSCRIBE " + name)
            r = [c.command(b't1 LIST (SUBSCRIBED RECURSIVEMATCH) "" "*"'),
                 c.command(b't2 LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"')]
            c.close()
            return r

        every, top = await self.in_thread(run)
        self.assertEqual(every, [
            b'* LIST (\\HasChildren \\Subscribed) "/" Fruit\r\n',
            b'* LIST (\\HasNoChildren \\Subscribed) "/" Fruit/Apple\r\n',
            b'* LIST (\\HasNoChildren \\Subscribed) "/" Veg/Leek\r\n',
            b"t1 OK LIST completed\r\n"])
        self.assertEqual(top, [
            b'* LIST (\\HasChildren \\Subscribed) "/" Fruit ("CHILDINFO" ("SUBSCRIBED"))\r\n',
            b'* LIST (\\HasChildren) "/" Veg ("CHILDINFO" ("SUBSCRIBED"))\r\n',
            b"t2 OK LIST completed\r\n"])

    async def test_flags_list_the_keywords_in_use(self) -> None:
        # RFC 3501 7.2.6: FLAGS names the applicable flags, keywords in use
        # included, and is sent again when a new one appears.
        system = b"\\Answered \\Flagged \\Deleted \\Seen \\Draft"

        def run():
            c = self.session()
            c.command(b"a1 APPEND INBOX ($Forwarded Custom) "
                      + literal(b"Subject: 1\r\n\r\nx\r\n"))
            c.command(b"a2 APPEND INBOX (\\Seen) " + literal(b"Subject: 2\r\n\r\nx\r\n"))
            other = self.session()
            r = [c.command(b"t1 SELECT INBOX"), other.command(b"o1 SELECT INBOX"),
                 c.command(b"t2 STORE 2 +FLAGS (Fresh)"),
                 other.command(b"o2 NOOP"), other.command(b"o3 EXAMINE INBOX")]
            c.close()
            other.close()
            return r

        select, _, store, noop, examine = await self.in_thread(run)
        self.assertEqual(select[:2], [
            b"* FLAGS (" + system + b" $Forwarded Custom)\r\n",
            b"* OK [PERMANENTFLAGS (\\Seen \\Answered \\Flagged \\Deleted \\Draft"
            b" $Forwarded Custom \\*)] Flags permitted\r\n"])
        flags = b"* FLAGS (" + system + b" $Forwarded Custom Fresh)\r\n"
        self.assertEqual(store, [
            flags,
            b"* OK [PERMANENTFLAGS (\\Seen \\Answered \\Flagged \\Deleted \\Draft"
            b" $Forwarded Custom Fresh \\*)] Flags permitted\r\n",
            b"* 2 FETCH (FLAGS (\\Seen \\Recent Fresh))\r\n",
            b"t2 OK STORE completed\r\n"])
        # Another session is told before the FETCH that shows the keyword.
        self.assertEqual(noop[0], flags)
        self.assertEqual(noop[2], b"* 2 FETCH (FLAGS (\\Seen Fresh))\r\n")
        # RFC 7162 3.2.11: the EXAMINE that closes INBOX says so first.
        self.assertEqual(examine[:3], [
            b"* OK [CLOSED] Previous mailbox closed\r\n",
            flags, b"* OK [PERMANENTFLAGS ()] No permanent flags permitted\r\n"])

    async def test_address_keys_match_the_parsed_address(self) -> None:
        # RFC 3501 6.4.4: FROM matches the envelope's FROM field, so the
        # addr-spec counts without comments, quotes or spaces; the SQL
        # pushdown and the generic evaluator must agree.
        message = (b"From: <user-from (comment)@ (comment) domain.org>\r\n"
                   b'To: "john doe"@example.org\r\n'
                   b"Cc: =?utf-8?Q?J=C3=B6rg?= <jorg@example.org>\r\n"
                   b"Subject: s\r\n\r\nbody\r\n")
        other = b"From: someone@else.org\r\nSubject: t\r\n\r\nbody\r\n"

        def run():
            c = self.session()
            self.append(c, message)
            self.append(c, other)
            c.command(b"t0 SELECT INBOX")
            r = [c.command(b"t%d SEARCH %s" % (i, key)) for i, key in enumerate([
                b"FROM user-from@domain.org", b"FROM USER-FROM@DOMAIN.ORG",
                b'FROM "(comment)"', b'TO "john doe@example.org"',
                b"CHARSET UTF-8 CC {5+}\r\nj\xc3\xb6rg", b"CC jorg@example.org",
                b"OR FROM domain.org FROM else.org",
                b"BCC x", b"FROM nobody@domain.org"], 1)]
            c.close()
            return r

        r = await self.in_thread(run)
        found = [lines[0] for lines in r]
        self.assertEqual(found, [b"* SEARCH 1\r\n"] * 6 + [b"* SEARCH 1 2\r\n", b"* SEARCH\r\n",
                                                              b"* SEARCH\r\n"])
