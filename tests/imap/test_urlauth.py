"""
URLAUTH (RFC 4467): the grammar of RESETKEY, GENURLAUTH and URLFETCH,
transcripts following the RFC's examples on the stores that keep mailbox
access keys (memory, SQLite, PostgreSQL), URLFETCH by another user as each
access identifier allows, expiry and revocation, CATENATE of another
user's mail through a URLAUTH, and the stores without keys, which do not
offer URLAUTH.  The keys themselves are checked in tests/backends.
"""

from __future__ import annotations

import re

from twisted.trial import unittest

from harness import IMAPServerTestCase
from stores import store_kinds

from twisted_mailhub.imap import commands as C
from twisted_mailhub.model import AppendRequest
from twisted_mailhub.policy import ServerPolicy

SECRET = b"Si vis pacem, para bellum.\r\n"
MESSAGE = (b"From: joe@example.com\r\nTo: fred@example.com\r\nSubject: Latin\r\n"
           b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=outer\r\n\r\n"
           b"--outer\r\nContent-Type: multipart/alternative; boundary=inner\r\n\r\n"
           b"--inner\r\nContent-Type: text/plain\r\n\r\nIf you want peace...\r\n"
           b"--inner\r\nContent-Type: text/plain\r\n\r\n" + SECRET + b"\r\n--inner--\r\n"
           b"\r\n--outer--\r\n")
TOKEN = rb"01[0-9a-f]{40}"


def on_key_stores(cls):
    """Like harness.on_every_store, for the stores that keep access keys."""
    import sys

    module = sys.modules[cls.__module__]
    for kind in store_kinds():
        if kind in ("sqlite", "postgresql"):
            name = f"{cls.__name__}_{kind}"
            setattr(module, name, type(name, (cls,), {"store": kind, "__module__": cls.__module__}))
    return cls


class GrammarTests(unittest.TestCase):
    def parse(self, line: bytes):
        from twisted_mailhub.imap.parser import CommandParser

        parser = CommandParser()
        parser.receive_data(line + b"\r\n")
        return parser.next_event()

    def test_commands(self) -> None:
        self.assertEqual(self.parse(b"a31 RESETKEY").command, C.ResetKey("a31"))
        self.assertEqual(self.parse(b"a33 RESETKEY inbox xsample internal").command,
                         C.ResetKey("a33", "INBOX", ("XSAMPLE", "INTERNAL")))
        self.assertEqual(
            self.parse(b'a777 GENURLAUTH "imap://joe@example.com/INBOX/;uid=20/;section=1.2'
                       b';urlauth=submit+fred" INTERNAL "/x" x-Y.1').command,
            C.GenUrlAuth("a777", ((b"imap://joe@example.com/INBOX/;uid=20/;section=1.2"
                                   b";urlauth=submit+fred", "INTERNAL"), (b"/x", "X-Y.1"))))
        self.assertEqual(self.parse(b'a002 URLFETCH "imap://a@b/INBOX/;uid=1" {3+}\r\nabc').command,
                         C.UrlFetch("a002", (b"imap://a@b/INBOX/;uid=1", b"abc")))

    def test_bad_syntax(self) -> None:
        for line, message in [
            (b"a GENURLAUTH", "Missing URL"),
            (b'a GENURLAUTH "imap://a@b/INBOX/;uid=1;urlauth=anonymous"',
             "Missing URLAUTH mechanism"),
            (b'a GENURLAUTH "x" INTERNAL "y"', "Missing URLAUTH mechanism"),
            (b"a GENURLAUTH x IN_TERNAL", "Invalid URLAUTH mechanism: IN_TERNAL"),
            (b"a URLFETCH", "Missing URL"),
            (b"a URLFETCH (x)", "Invalid URL"),
            (b"a RESETKEY INBOX (x)", "Invalid URLAUTH mechanism"),
            (b"a RESETKEY ", "Missing mailbox name"),
        ]:
            event = self.parse(line)
            self.assertEqual((event.condition, event.message), ("BAD", message), line)


class UrlauthCase(IMAPServerTestCase):
    users = {"alice": "wonderland", "bob": "builder", "submitserver": "secret"}
    policy = ServerPolicy(auth_failure_delay=0.0, auth_failure_delay_max=0.0,
                          urlauth_submitters=frozenset({"submitserver"}))

    async def setUp(self) -> None:
        await super().setUp()
        self.alice = await self.backend.open_store("alice")
        inbox = await self.alice.get_mailbox("INBOX")
        [meta] = await inbox.append([AppendRequest(MESSAGE)])
        self.uid = meta.uid
        self.base = b"imap://alice@example.com/INBOX/;uid=%d/;section=1.2" % self.uid

    def session(self, login: bytes = b"alice wonderland"):
        c = self.raw()
        c.line()
        c.command(b"t0 LOGIN " + login)
        return c

    def generate(self, c, rump: bytes) -> bytes:
        """The URLAUTH-authorized URL GENURLAUTH gives for C{rump}."""
        lines = c.command(b'g GENURLAUTH "' + rump + b'" INTERNAL')
        assert lines[-1] == b"g OK GENURLAUTH completed\r\n", lines
        return re.fullmatch(rb'\* GENURLAUTH "(.*)"\r\n', lines[0]).group(1)

    def fetch(self, c, url: bytes) -> list[bytes]:
        c.send(b'f URLFETCH "' + url + b'"\r\n')
        return self.read_until(c, b"f")

    def fetch_as(self, login: bytes, url: bytes):
        return self.in_thread(lambda: self.fetch(self.session(login), url))

    def read_until(self, c, tag: bytes) -> list[bytes]:
        """Lines up to the tagged one, a literal's data kept with its line."""
        out = []
        while True:
            line = c.line()
            while found := re.search(rb"\{(\d+)\}\r\n$", line):
                line += c.read_exact(int(found.group(1))) + c.line()
            out.append(line)
            if line.startswith(tag + b" "):
                return out


@on_key_stores
class TranscriptTests(UrlauthCase):
    """RFC 4467's examples, for alice's message in place of joe's."""

    async def test_genurlauth_examples(self) -> None:
        """BASE.6.3.GENURLAUTH's examples: two refused, one URL generated."""
        def run():
            c = self.session()
            caps = c.command(b"t1 CAPABILITY")[0]
            return caps, (
                c.command(b'a775 GENURLAUTH "' + self.base + b'" INTERNAL')
                + c.command(b'a776 GENURLAUTH "imap://example.com/Shared/;uid=20/;section=1.2'
                            b';urlauth=submit+fred" INTERNAL')
                + c.command(b'a777 GENURLAUTH "' + self.base + b';urlauth=submit+fred" INTERNAL'))

        caps, out = await self.in_thread(run)
        self.assertIn(b" URLAUTH", caps)
        self.assertEqual(out[:2], [b"a775 BAD Missing access identifier in supplied URL\r\n",
                                   b"a776 BAD Missing owner username in supplied URL\r\n"])
        self.assertRegex(out[2], rb'^\* GENURLAUTH "' + re.escape(self.base)
                         + rb";urlauth=submit\+fred:internal:" + TOKEN + rb'"\r\n$')
        self.assertEqual(out[3:], [b"a777 OK GENURLAUTH completed\r\n"])

    async def test_urlfetch_by_a_submit_server(self) -> None:
        """BASE.6.3.URLFETCH's example: a submit server fetches fred's part."""
        def run():
            url = self.generate(self.session(), self.base + b";urlauth=submit+fred")
            s = self.raw()
            greeting = s.line()
            login = s.command(b"a001 LOGIN submitserver secret")
            s.send(b'a002 URLFETCH "' + url + b'"\r\n')
            return url, greeting, login, self.read_until(s, b"a002")

        url, greeting, login, out = await self.in_thread(run)
        self.assertIn(b" URLAUTH", greeting)
        self.assertRegex(login[-1], rb"^a001 OK \[CAPABILITY [^]]* URLAUTH[ \]].* LOGIN completed\r\n$")
        self.assertEqual(out, [b'* URLFETCH "' + url + b'" {28}\r\n' + SECRET + b"\r\n",
                               b"a002 OK URLFETCH completed\r\n"])

    async def test_select_and_examine_tell_the_mechanisms(self) -> None:
        """BASE.7.1.URLMECH: in an untagged OK of SELECT and EXAMINE."""
        def run():
            c = self.session()
            return c.command(b"s1 SELECT INBOX"), c.command(b"s2 EXAMINE INBOX")

        for lines in await self.in_thread(run):
            self.assertIn(b"* OK [URLMECH INTERNAL] URL mechanisms\r\n", lines)

    async def test_resetkey_examples(self) -> None:
        """BASE.6.3.RESETKEY's example, and the URLs each form revokes."""
        def run():
            c = self.session()
            old = self.generate(c, self.base + b";urlauth=authuser")
            before = self.fetch(c, old)
            reset = (c.command(b"a32 RESETKEY INBOX")
                     + c.command(b"a33 RESETKEY INBOX XSAMPLE")
                     + c.command(b"a34 RESETKEY Nowhere"))
            after = self.fetch(c, old)
            new = self.generate(c, self.base + b";urlauth=authuser")
            works = self.fetch(c, new)
            removed = c.command(b"a31 RESETKEY")
            return old, before, reset, after, new, works, removed, self.fetch(c, new)

        old, before, reset, after, new, works, removed, gone = await self.in_thread(run)
        self.assertEqual(before[0], b'* URLFETCH "' + old + b'" {28}\r\n' + SECRET + b"\r\n")
        self.assertEqual(reset, [b"a32 OK [URLMECH INTERNAL] RESETKEY completed\r\n",
                                 b"a33 BAD Unknown URLAUTH mechanism: XSAMPLE\r\n",
                                 b"a34 NO [NONEXISTENT] Mailbox does not exist: Nowhere\r\n"])
        self.assertEqual(after, [b'* URLFETCH "' + old + b'" NIL\r\n',
                                 b"f OK URLFETCH completed\r\n"])
        self.assertNotEqual(new, old)
        self.assertEqual(works[0], b'* URLFETCH "' + new + b'" {28}\r\n' + SECRET + b"\r\n")
        self.assertEqual(removed, [b"a31 OK All keys removed\r\n"])
        self.assertEqual(gone[0], b'* URLFETCH "' + new + b'" NIL\r\n')


@on_key_stores
class ResetKeyTellsOtherSessionsTests(UrlauthCase):
    """
    BASE.6.3.RESETKEY: "Any current IMAP session logged in as the user
    that has the mailbox selected will receive an untagged OK response
    with the URLMECH status response code".
    """

    async def setUp(self) -> None:
        await super().setUp()
        await self.alice.create_mailbox("Drafts")

    async def test_sessions_with_the_mailbox_selected_are_told(self) -> None:
        def run():
            selected, examined, idling, elsewhere, unselected, reset = (
                self.session() for _ in range(6))
            selected.command(b"s SELECT INBOX")
            examined.command(b"s EXAMINE INBOX")
            idling.command(b"s SELECT INBOX")
            elsewhere.command(b"s SELECT Drafts")
            bob = self.session(b"bob builder")
            bob.command(b"s SELECT INBOX")
            reset.command(b"s SELECT INBOX")
            idling.send(b"i IDLE\r\n")
            idle = [idling.line()]
            out = [reset.command(b"r1 RESETKEY INBOX"), reset.command(b"n NOOP")]
            idle.append(idling.line())
            idling.send(b"DONE\r\n")
            idle += idling.until_tagged(b"i")
            out += [c.command(b"n NOOP")
                    for c in (selected, examined, elsewhere, unselected, bob)]
            # Told once: the next command tells nothing more.
            out.append(selected.command(b"n2 NOOP"))
            # The form without a mailbox names none to tell.
            out.append(reset.command(b"r2 RESETKEY"))
            out.append(selected.command(b"n3 NOOP"))
            return idle, out

        idle, out = await self.in_thread(run)
        told = [b"* OK [URLMECH INTERNAL] Mailbox access key reset\r\n",
                b"n OK NOOP completed\r\n"]
        nothing = [b"n OK NOOP completed\r\n"]
        self.assertEqual(idle, [b"+ idling\r\n", told[0], b"i OK IDLE terminated\r\n"])
        # The session that reset the key has the code in its tagged OK.
        self.assertEqual(out[:2], [[b"r1 OK [URLMECH INTERNAL] RESETKEY completed\r\n"],
                                   nothing])
        self.assertEqual(out[2:7], [told, told, nothing, nothing, nothing])
        self.assertEqual(out[7:], [[b"n2 OK NOOP completed\r\n"],
                                   [b"r2 OK All keys removed\r\n"],
                                   [b"n3 OK NOOP completed\r\n"]])


@on_key_stores
class AccessTests(UrlauthCase):
    """URLFETCH by another user: what each access identifier lets through."""

    async def test_access_identifiers(self) -> None:
        accesses = [b"anonymous", b"authuser", b"user+bob", b"submit+fred"]

        def run():
            c = self.session()
            urls = {a: self.generate(c, self.base + b";urlauth=" + a) for a in accesses}
            results = {}
            for login in (b"alice wonderland", b"bob builder", b"submitserver secret"):
                s = self.session(login)
                for access, url in urls.items():
                    results[login.split()[0], access] = self.fetch(s, url)[0]
            return urls, results

        urls, results = await self.in_thread(run)
        allowed = {
            b"anonymous": {b"alice", b"bob", b"submitserver"},
            b"authuser": {b"alice", b"bob", b"submitserver"},
            b"user+bob": {b"bob"},
            b"submit+fred": {b"submitserver"},
        }
        for (user, access), line in results.items():
            data = b"{28}\r\n" + SECRET if user in allowed[access] else b"NIL"
            self.assertEqual(line, b'* URLFETCH "' + urls[access] + b'" ' + data + b"\r\n",
                             (user, access))

    async def test_what_fails_gives_nil(self) -> None:
        def run():
            c = self.session()
            good = self.generate(c, self.base + b";urlauth=anonymous")
            rump, _, token = good.rpartition(b":")
            later = self.generate(c, self.base + b";EXPIRE=2999-01-01T00:00:00Z;urlauth=anonymous")
            expired = self.generate(c, self.base + b";expire=2001-01-01T00:00:00Z;urlauth=anonymous")
            # A leap second is a date-time too (RFC 3339 time-second 60).
            leap = self.generate(c, self.base + b";EXPIRE=2998-12-31T23:59:60Z;urlauth=anonymous")
            leapt = self.generate(c, self.base + b";EXPIRE=2016-12-31T23:59:60Z;urlauth=anonymous")
            other_uid = re.sub(rb";uid=\d+", b";uid=99", good)
            c.command(b"c1 CREATE Other")
            other_box = self.generate(c, b"imap://alice@example.com/Other/;uid=1;urlauth=anonymous")
            bad = [
                rump + b":" + token[:-1] + (b"0" if token[-1:] != b"0" else b"1"),  # tampered
                good.replace(b"section=1.2", b"section=1.1"),  # another part, same token
                other_uid,
                good.replace(b"imap://alice@", b"imap://nobody@"),
                good.replace(b"imap://alice@", b"imap://bob@"),
                good.replace(b"/INBOX/", b"/Nowhere/"),
                good.replace(b":internal:", b":xsample:"),
                expired,
                good.rpartition(b";urlauth")[0],  # alice's, without URLAUTH
                b"/INBOX/;uid=%d" % self.uid,
                b"not a url",
                other_box,  # the mailbox exists, the message does not
                leapt,  # expired in a leap second
            ]
            s = self.session(b"bob builder")
            lines = [self.fetch(s, url) for url in [good, later] + bad]
            lines.append(self.fetch(s, leap))
            s.send(b'm URLFETCH "' + good + b'" "' + bad[0] + b'" "' + later + b'"\r\n')
            several = self.read_until(s, b"m")
            return good, later, leap, bad, lines, several

        good, later, leap, bad, lines, several = await self.in_thread(run)
        for url, out in zip([good, later], lines[:2]):
            self.assertEqual(out, [b'* URLFETCH "' + url + b'" {28}\r\n' + SECRET + b"\r\n",
                                   b"f OK URLFETCH completed\r\n"])
        for url, out in zip(bad, lines[2:-1]):
            self.assertEqual(out, [b"* URLFETCH " + (b'"' + url + b'"') + b" NIL\r\n",
                                   b"f OK URLFETCH completed\r\n"], url)
        self.assertEqual(lines[-1], [b'* URLFETCH "' + leap + b'" {28}\r\n' + SECRET + b"\r\n",
                                     b"f OK URLFETCH completed\r\n"])
        self.assertEqual(several, [
            b'* URLFETCH "%s" {28}\r\n%s "%s" NIL "%s" {28}\r\n%s\r\n'
            % (good, SECRET, bad[0], later, SECRET), b"m OK URLFETCH completed\r\n"])
        # Alice's own URL needs no URLAUTH for alice.
        [line, _] = await self.fetch_as(b"alice wonderland", bad[8])
        self.assertEqual(line, b'* URLFETCH "' + bad[8] + b'" {28}\r\n' + SECRET + b"\r\n")
        # Asking about a user who does not exist created no user.
        if hasattr(self.backend, "list_users"):
            self.assertNotIn("nobody", await self.backend.list_users())

    async def test_names_no_mailbox_can_have(self) -> None:
        """Percent-escaped NUL, CR and LF in URL names are answered plainly on every store."""
        token = b":internal:" + b"0" * 42

        def run():
            c = self.session()
            return [
                c.command(b'g1 GENURLAUTH "imap://alice@example.com/%00/;uid=1;urlauth=anonymous"'
                          b" INTERNAL"),
                c.command(b'g2 GENURLAUTH "imap://alice@example.com/a%0D%0Ab/;uid=1'
                          b';urlauth=anonymous" INTERNAL'),
                c.command(b'f1 URLFETCH "imap://bob%00@example.com/INBOX/;uid=1;urlauth=anonymous'
                          + token + b'"'),
                c.command(b'f2 URLFETCH "imap://bob@example.com/%00/;uid=1;urlauth=anonymous'
                          + token + b'"'),
                c.command(b'c1 APPEND INBOX CATENATE (URL "imap://bob@example.com/x%00/;uid=1'
                          b";urlauth=anonymous" + token + b'")'),
                c.command(b"n1 NOOP"),
            ]

        out = await self.in_thread(run)
        self.assertEqual(out, [
            [b"g1 BAD Mailbox does not exist:  \r\n"],
            [b"g2 BAD Mailbox does not exist: a  b\r\n"],
            [b'* URLFETCH "imap://bob%00@example.com/INBOX/;uid=1;urlauth=anonymous' + token
             + b'" NIL\r\n', b"f1 OK URLFETCH completed\r\n"],
            [b'* URLFETCH "imap://bob@example.com/%00/;uid=1;urlauth=anonymous' + token
             + b'" NIL\r\n', b"f2 OK URLFETCH completed\r\n"],
            # BADURL gives the URL as the client sent it (RFC 4469 section 4.1).
            [b"c1 NO [BADURL imap://bob@example.com/x%00/;uid=1;urlauth=anonymous" + token
             + b"] CATENATE failed: URLAUTH does not verify\r\n"],
            [b"n1 OK NOOP completed\r\n"],
        ])

    async def test_genurlauth_refusals(self) -> None:
        def run():
            s = self.session(b"bob builder")
            return [s.command(b'b%d GENURLAUTH "%s" %s' % (i, url, mech))[-1]
                    for i, (url, mech) in enumerate([
                        (self.base + b";urlauth=anonymous", b"INTERNAL"),
                        (b"imap://bob@example.com/INBOX/;uid=1;urlauth=anonymous", b"XSAMPLE"),
                        (b"imap://bob@example.com/Nowhere/;uid=1;urlauth=anonymous", b"INTERNAL"),
                        (b"imap://bob@example.com/INBOX/;uid=1;urlauth=anonymous:internal:"
                         + b"0" * 42, b"INTERNAL"),
                        (b"imap://bob@example.com/INBOX/;uid=1;urlauth=nobody", b"INTERNAL"),
                        (b"/INBOX/;uid=1;urlauth=anonymous", b"INTERNAL"),
                    ])]

        out = await self.in_thread(run)
        self.assertEqual(out, [
            b"b0 BAD Supplied URL names another user than the one logged in\r\n",
            b"b1 BAD Unknown URLAUTH mechanism: XSAMPLE\r\n",
            b"b2 BAD Mailbox does not exist: Nowhere\r\n",
            b"b3 BAD Supplied URL already carries a URLAUTH token\r\n",
            b"b4 BAD Invalid URL: Invalid URLAUTH access identifier\r\n",
            b"b5 BAD Missing owner username in supplied URL\r\n",
        ])

    async def test_catenate_of_another_users_part(self) -> None:
        """CATENATE takes another user's mail only through a URLAUTH that validates."""
        def run():
            url = self.generate(self.session(), self.base + b";urlauth=user+bob")
            s = self.session(b"bob builder")
            ok = s.command(b'b1 APPEND INBOX CATENATE (TEXT {14+}\r\nSubject: Q\r\n\r\n URL "'
                           + url + b'")')
            tampered = url[:-1] + (b"1" if url.endswith(b"0") else b"0")
            refused = s.command(b'b2 APPEND INBOX CATENATE (URL "' + tampered + b'")')
            plain = url.rpartition(b";urlauth")[0]
            denied = s.command(b'b3 APPEND INBOX CATENATE (URL "' + plain + b'")')
            s.command(b"b4 EXAMINE INBOX")
            s.send(b"b5 FETCH 1:* BODY.PEEK[]\r\n")
            return url, tampered, ok, refused, denied, self.read_until(s, b"b5")

        url, tampered, ok, refused, denied, fetched = await self.in_thread(run)
        self.assertRegex(ok[-1], rb"^b1 OK \[APPENDUID \d+ 1\] APPEND completed\r\n$")
        self.assertEqual(refused, [b"b2 NO [BADURL " + tampered + b"] CATENATE failed: "
                                   b"URLAUTH does not verify\r\n"])
        self.assertEqual(denied, [b"b3 NO [BADURL " + url.rpartition(b";urlauth")[0]
                                  + b"] CATENATE failed: URL names another user's mailbox\r\n"])
        self.assertEqual(fetched, [b"* 1 FETCH (BODY[] {42}\r\nSubject: Q\r\n\r\n" + SECRET + b")\r\n",
                                   b"b5 OK FETCH completed\r\n"])


    async def test_catenate_checks_a_urlauth_on_ones_own_mail(self) -> None:
        """A URL that carries a URLAUTH is checked even when it names the user's own mail."""
        def run():
            c = self.session()
            url = self.generate(c, self.base + b";urlauth=authuser")
            tampered = url[:-1] + (b"1" if url.endswith(b"0") else b"0")
            return tampered, [c.command(b'a1 APPEND INBOX CATENATE (URL "' + url + b'")')[-1],
                              c.command(b'a2 APPEND INBOX CATENATE (URL "' + tampered + b'")')]

        tampered, (ok, refused) = await self.in_thread(run)
        self.assertRegex(ok, rb"^a1 OK \[APPENDUID \d+ \d+\] APPEND completed\r\n$")
        self.assertEqual(refused, [b"a2 NO [BADURL " + tampered + b"] CATENATE failed: "
                                   b"URLAUTH does not verify\r\n"])


@on_key_stores
class ImaplibTests(UrlauthCase):
    async def test_generate_then_fetch_as_another_user(self) -> None:
        import imaplib

        # imaplib refuses commands it does not know of.
        self.patch(imaplib, "Commands", {**imaplib.Commands, "GENURLAUTH": ("AUTH", "SELECTED"),
                                         "URLFETCH": ("AUTH", "SELECTED")})

        def run():
            alice = self.imaplib_client("alice")
            rump = (self.base + b";urlauth=authuser").decode()
            typ, _ = alice._simple_command("GENURLAUTH", '"%s"' % rump, "INTERNAL")
            _, [generated] = alice._untagged_response(typ, [None], "GENURLAUTH")
            alice.logout()
            bob = self.imaplib_client("bob")
            url = generated.strip(b'"').decode()
            typ, _ = bob._simple_command("URLFETCH", '"%s"' % url)
            _, fetched = bob._untagged_response(typ, [None], "URLFETCH")
            bob.logout()
            return rump, url, typ, fetched

        rump, url, typ, fetched = await self.in_thread(run)
        self.assertTrue(url.startswith(rump + ":internal:"), url)
        self.assertEqual(typ, "OK")
        self.assertEqual(fetched[0], (b'"' + url.encode() + b'" {28}', SECRET))


class NoKeysTests(IMAPServerTestCase):
    """A store without L{IAccessKeys} (mbox, Maildir) offers no URLAUTH."""

    store = "mbox"

    async def test_not_offered(self) -> None:
        def run():
            c = self.raw()
            greeting = c.line()
            c.command(b"t0 LOGIN alice wonderland")
            caps = c.command(b"t1 CAPABILITY")[0]
            return greeting, caps, [
                c.command(b"t2 RESETKEY")[-1],
                c.command(b't3 GENURLAUTH "imap://alice@h/INBOX/;uid=1;urlauth=anonymous" INTERNAL')[-1],
                c.command(b't4 URLFETCH "imap://alice@h/INBOX/;uid=1;urlauth=anonymous"')[-1],
                c.command(b't5 APPEND INBOX CATENATE (URL "imap://bob@h/INBOX/;uid=1;urlauth=anonymous'
                          b':internal:' + b"0" * 42 + b'")')[-1],
                c.command(b"t6 SELECT INBOX"),
            ]

        greeting, caps, out = await self.in_thread(run)
        self.assertNotIn(b"URLAUTH", greeting + caps)
        self.assertNotIn(b"URLMECH", b"".join(out[4]))
        self.assertIn(b" CATENATE", caps)
        self.assertEqual(out[:3], [b"t%d BAD URLAUTH is not available on this server\r\n" % n
                                   for n in (2, 3, 4)])
        self.assertTrue(out[3].startswith(b"t5 NO [BADURL "), out[3])
        self.assertIn(b"URLAUTH is not available", out[3])


class NoKeysMaildirTests(NoKeysTests):
    store = "maildir"


class SlowReaderTests(UrlauthCase):
    """URLFETCH of many URLs is written one URL at a time, as the client reads."""

    async def test_many_urls_of_a_large_message(self) -> None:
        import hashlib
        import socket
        import threading

        from twisted.internet import reactor, task

        from twisted_mailhub.backends import memory

        line = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789\r\n"
        big = b"Subject: big\r\n\r\n" + line * (2 * 2**20 // len(line))
        inbox = await self.alice.get_mailbox("INBOX")
        [meta] = await inbox.append([AppendRequest(big)])
        url = b"imap://alice@example.com/INBOX/;uid=%d" % meta.uid
        count = 24
        reads: list[int] = []
        original = memory.MemoryMessage.read

        async def counting_read(message, offset=0, length=None):
            data = await original(message, offset, length)
            reads.append(len(data))
            return data

        self.patch(memory.MemoryMessage, "read", counting_read)
        resume, started, result = threading.Event(), threading.Event(), {}

        def client():
            s = socket.create_connection(("127.0.0.1", self.port), timeout=30)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
            f = s.makefile("rb")
            f.readline()
            s.sendall(b"t0 LOGIN alice wonderland\r\n")
            f.readline()
            s.sendall(b"f URLFETCH" + (b' "' + url + b'"') * count + b"\r\n")
            head = f.readline()
            started.set()
            resume.wait(30)
            digests = []
            while True:
                size = int(re.search(rb"\{(\d+)\}\r\n$", head).group(1))
                digests.append(hashlib.sha256(f.read(size)).hexdigest())
                head = f.readline()
                if head == b"\r\n":
                    break
            result["digests"] = digests
            result["tail"] = f.readline()
            s.close()

        done = self.in_thread(client)
        for _ in range(1000):
            protocols = list(self.factory.connections)
            if started.is_set() and protocols and protocols[0]._drain is not None:
                break
            await task.deferLater(reactor, 0.01, lambda: None)
        paused_after = sum(reads)
        resume.set()
        await done
        self.assertEqual(result["digests"], [hashlib.sha256(big).hexdigest()] * count)
        self.assertEqual(result["tail"], b"f OK URLFETCH completed\r\n")
        # Paused with most of the URLs not yet read from the store.
        self.assertLess(paused_after, 4 * len(big))
