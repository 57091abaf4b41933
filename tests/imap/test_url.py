"""The IMAP URL parser (imap/url.py): the forms CATENATE and URLAUTH use."""

from __future__ import annotations

from datetime import datetime, timezone

from twisted.trial import unittest

from twisted_mailhub.imap.url import ImapUrl, UrlError, parse
from twisted_mailhub.mime.sections import Section


class ParseTests(unittest.TestCase):
    def test_relative_urls_of_rfc_4469(self) -> None:
        url = parse("/Drafts;UIDVALIDITY=385759045/;UID=20/;section=1.MIME")
        self.assertEqual(url, ImapUrl("/Drafts;UIDVALIDITY=385759045/;UID=20/;section=1.MIME",
                                      None, None, "Drafts", 385759045, 20, Section((1,), "MIME")))
        self.assertFalse(url.absolute)
        self.assertEqual(parse("/INBOX;UIDVALIDITY=785799047/;UID=113330/;section=1.5.9").section,
                         Section((1, 5, 9)))
        self.assertEqual(parse("/Drafts;UIDVALIDITY=1/;UID=20/;Section=HEADER").section,
                         Section(text="HEADER"))

    def test_relative_to_the_selected_mailbox(self) -> None:
        url = parse(";UID=3/;PARTIAL=0.10")
        self.assertEqual((url.mailbox, url.uid, url.partial), (None, 3, (0, 10)))

    def test_absolute_url_with_urlauth(self) -> None:
        """The URL of RFC 4467's GENURLAUTH and URLFETCH examples."""
        text = ("imap://joe@example.com/INBOX/;uid=20/;section=1.2;urlauth=submit+fred"
                ":internal:91354a473744909de610943775f92038")
        url = parse(text)
        self.assertTrue(url.absolute)
        self.assertEqual((url.user, url.host, url.mailbox, url.uidvalidity, url.uid),
                         ("joe", "example.com", "INBOX", None, 20))
        self.assertEqual(url.section, Section((1, 2)))
        self.assertEqual((url.access, url.mechanism, url.token),
                         ("submit+fred", "INTERNAL", "91354a473744909de610943775f92038"))
        self.assertEqual(url.rump, text[:text.index(":internal")])
        rump = parse(url.rump)
        self.assertEqual((rump.access, rump.mechanism, rump.token), ("submit+fred", None, None))

    def test_expire_and_server_parts(self) -> None:
        url = parse("imap://j%40x;AUTH=*@Mail.Example.com:143/INBOX;UIDVALIDITY=3/;UID=4"
                    ";EXPIRE=2026-01-01T10:00:00+02:00;URLAUTH=anonymous")
        self.assertEqual((url.user, url.host), ("j@x", "mail.example.com:143"))
        self.assertEqual(url.expire, datetime(2026, 1, 1, 8, 0, tzinfo=timezone.utc))
        self.assertEqual(url.access, "anonymous")
        self.assertEqual(parse("imap://a@h/INBOX/;UID=1;expire=2026-01-01t00:00:00z"
                               ";urlauth=authuser").expire,
                         datetime(2026, 1, 1, tzinfo=timezone.utc))

    def test_expire_in_a_leap_second(self) -> None:
        # RFC 3339 section 5.6: time-second may be 60 (a leap second), also
        # shifted by a zone offset.  No datetime holds it: the expiry is the
        # last instant of second 59, never later than the URL asked.
        last = datetime(2016, 12, 31, 23, 59, 59, 999999, tzinfo=timezone.utc)
        for expire in ("2016-12-31T23:59:60Z", "2016-12-31t23:59:60.25z",
                       "2017-01-01T05:29:60+05:30"):
            url = parse(f"imap://a@h/INBOX/;UID=1;EXPIRE={expire};URLAUTH=anonymous")
            self.assertEqual(url.expire, last, expire)
            # The rump is signed as sent.
            self.assertIn(f";EXPIRE={expire};", url.rump)
        with self.assertRaisesRegex(UrlError, "^Invalid EXPIRE date-time in URL$"):
            parse("imap://a@h/INBOX/;UID=1;EXPIRE=2016-12-31T23:59:61Z;URLAUTH=anonymous")

    def test_mailbox_names(self) -> None:
        # Hierarchy, percent-encoding, and UTF-8 (RFC 5092), not modified
        # UTF-7 (RFC 2192), in every session: "&" is an ampersand.
        self.assertEqual(parse("/a/b%20c/;UID=3").mailbox, "a/b c")
        self.assertEqual(parse("/%E2%98%BA/;UID=1").mailbox, "\u263a")
        self.assertEqual(parse("/&Jjo-/;UID=1").mailbox, "&Jjo-")
        self.assertEqual(parse("/inbox/;UID=1").mailbox, "INBOX")
        self.assertEqual(parse("/Inbox/sub/;UID=1").mailbox, "INBOX/sub")

    def test_section_and_partial(self) -> None:
        url = parse("/a/;UID=3/;SECTION=HEADER.FIELDS%20(FROM%20TO)/;partial=5")
        self.assertEqual(url.section, Section(text="HEADER.FIELDS", fields=("FROM", "TO")))
        self.assertEqual(url.partial, (5, None))

    def test_errors(self) -> None:
        for text, message in [
            ("", "Empty URL"),
            ("http://example.com/", "Not an IMAP URL"),
            ("INBOX/;UID=1", "Relative URL must start with / or ;UID="),
            ("/INBOX", "URL names no message (;UID=)"),
            ("/INBOX;UIDVALIDITY=1", "URL names no message (;UID=)"),
            ("/INBOX;UID=1", "Expected / before ;UID= in URL"),
            ("/INBOX/;UID=0", "Missing or invalid UID in URL"),
            ("/INBOX/;UID=4294967296", "UID too large in URL"),
            ("/INBOX/;UID=1/;SECTION=1.FOO", "Invalid SECTION in URL: Invalid section: FOO"),
            ("/INBOX/;UID=1/;SECTION=", "Missing or invalid SECTION in URL"),
            ("/INBOX/;UID=1/;PARTIAL=1.0", "Missing or invalid PARTIAL length in URL"),
            ("/INBOX/;UID=1;EXPIRE=tomorrow", "Invalid EXPIRE date-time in URL"),
            ("/INBOX/;UID=1;URLAUTH=anon", "Invalid URLAUTH access identifier"),
            ("/INBOX/;UID=1;URLAUTH=anonymous:internal", "Missing URLAUTH token"),
            ("/INBOX/;UID=1;URLAUTH=anonymous:internal:abc",
             "Missing or invalid URLAUTH token (32 or more hex digits) in URL"),
            ("/%FF/;UID=1", "Invalid mailbox name encoding in URL"),
            ("/INBOX/;UID=1 x", "Unexpected text in URL:  x"),
            (b"/\xe9/;UID=1", "URL holds 8-bit characters"),
        ]:
            with self.assertRaises(UrlError, msg=text) as caught:
                parse(text)
            self.assertEqual(str(caught.exception), message, text)
