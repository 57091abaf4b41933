"""
IMAP URLs naming a message or a part of one, the subset that CATENATE (RFC
4469 section 3) and URLAUTH (RFC 4467 sections 3 and 9) use:

    imap://user[;AUTH=...]@host[:port]/mailbox[;UIDVALIDITY=n]/;UID=n
        [/;SECTION=s][/;PARTIAL=o[.l]][;EXPIRE=date-time]
        [;URLAUTH=access[:mech:token]]

and the relative forms ``/mailbox...`` (base ``imap://user@server/``) and
``;UID=n...`` (base the selected mailbox) that CATENATE allows.  Keywords
are case-insensitive; the mailbox name, user and section are
percent-encoded.  The mailbox name's octets are modified UTF-7, or UTF-8
when the session enabled UTF8=ACCEPT or IMAP4rev2.

Pure: text in, an L{ImapUrl} out, or L{UrlError} saying what is wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from twisted_mailhub.mime.sections import Section


class UrlError(ValueError):
    """The text is not an IMAP URL of a message or message part."""


@dataclass(frozen=True, slots=True)
class ImapUrl:
    """
    One message (part) URL.  C{user} and C{host} are None for a relative
    URL; C{mailbox} is None for one relative to the selected mailbox.
    C{partial} is C{(offset, length)}, C{length} None for "to the end".
    C{access} is ``anonymous``, ``authuser``, ``user+<id>`` or
    ``submit+<id>`` (the prefix lower case); C{rump} the URL's text through
    the access identifier (RFC 4467 section 6), set whenever C{access} is.
    """

    text: str
    user: str | None
    host: str | None
    mailbox: str | None
    uidvalidity: int | None
    uid: int
    section: Section = Section()
    partial: tuple[int, int | None] | None = None
    expire: datetime | None = None
    access: str | None = None
    mechanism: str | None = None
    token: str | None = None
    rump: str | None = None

    @property
    def absolute(self) -> bool:
        return self.host is not None


# RFC 3986 unreserved / sub-delims-sh / pct-encoded, and RFC 5092 achar
# ("&", "=") and bchar (":", "@", "/").
_UCHAR = r"A-Za-z0-9\-._~!$'()*+,"
_ACHAR = re.compile(rf"(?:[{_UCHAR}&=]|%[0-9A-Fa-f]{{2}})+")
_BCHAR = re.compile(rf"(?:[{_UCHAR}&=:@/]|%[0-9A-Fa-f]{{2}})+")
_NZ_NUMBER = re.compile(r"[1-9][0-9]{0,9}")
_NUMBER = re.compile(r"[0-9]{1,10}")
_HOST = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|(?:[A-Za-z0-9\-._~!$&'()*+,;=]|%[0-9A-Fa-f]{2})+)"
                   r"(?::[0-9]{1,5})?")
_DATE_TIME = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]+)?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})")
_MECHANISM = re.compile(r"[A-Za-z0-9\-.]+")
_TOKEN = re.compile(r"[0-9A-Fa-f]{32,}")
_MAX_UINT32 = 2**32 - 1


def parse(text: str | bytes) -> ImapUrl:
    """
    Parse a message (part) URL.  Raises L{UrlError}.

    The mailbox name is percent-encoded UTF-8 whatever the session's mode
    (RFC 5092 replaced RFC 2192's modified UTF-7 there), so the same URL
    names the same mailbox for every session that fetches it.
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("ascii")
        except UnicodeDecodeError:
            raise UrlError("URL holds 8-bit characters") from None
    if not text:
        raise UrlError("Empty URL")
    s = _Scanner(text)
    user = host = None
    mailbox: str | None = None
    if s.keyword("imap://"):
        user, host = _server(s)
        if not s.skip("/"):
            raise UrlError("URL names no mailbox")
        mailbox = _mailbox(s)
    elif s.skip("/"):
        mailbox = _mailbox(s)
    elif ":" in text.split(";", 1)[0].split("/", 1)[0]:
        raise UrlError("Not an IMAP URL")
    elif not s.at(";"):
        raise UrlError("Relative URL must start with / or ;UID=")
    uidvalidity = None
    if mailbox is not None and s.keyword(";UIDVALIDITY="):
        uidvalidity = _number(s, "UIDVALIDITY", nonzero=True)
        if not s.keyword("/"):
            raise UrlError("URL names no message (;UID=)")
    if not s.keyword(";UID="):
        raise UrlError("URL names no message (;UID=)")
    uid = _number(s, "UID", nonzero=True)
    section = Section()
    if s.keyword("/;SECTION="):
        section = _section(s)
    partial = None
    if s.keyword("/;PARTIAL="):
        offset = _number(s, "PARTIAL offset")
        length = None
        if s.skip("."):
            length = _number(s, "PARTIAL length", nonzero=True)
        partial = (offset, length)
    expire = None
    if s.keyword(";EXPIRE="):
        expire = _expire(s)
    access = mechanism = token = rump = None
    if s.keyword(";URLAUTH="):
        access = _access(s)
        rump = text[:s.pos]
        if s.skip(":"):
            mechanism = s.take(_MECHANISM, "URLAUTH mechanism").upper()
            if not s.skip(":"):
                raise UrlError("Missing URLAUTH token")
            token = s.take(_TOKEN, "URLAUTH token (32 or more hex digits)").lower()
    if not s.done():
        raise UrlError(f"Unexpected text in URL: {text[s.pos:s.pos + 20]}")
    return ImapUrl(text, user, host, mailbox, uidvalidity, uid, section, partial, expire,
                   access, mechanism, token, rump)


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def at(self, prefix: str) -> bool:
        return self.text.startswith(prefix, self.pos)

    def skip(self, prefix: str) -> bool:
        if self.at(prefix):
            self.pos += len(prefix)
            return True
        return False

    def keyword(self, word: str) -> bool:
        """Consume C{word}, compared case-insensitively."""
        end = self.pos + len(word)
        if self.text[self.pos:end].upper() == word.upper():
            self.pos = end
            return True
        return False

    def take(self, pattern: re.Pattern[str], what: str) -> str:
        found = pattern.match(self.text, self.pos)
        if not found:
            raise UrlError(f"Missing or invalid {what} in URL")
        self.pos = found.end()
        return found.group()

    def done(self) -> bool:
        return self.pos == len(self.text)


def _percent_decode(text: str) -> bytes:
    out = bytearray()
    i = 0
    while i < len(text):
        if text[i] == "%":
            out.append(int(text[i + 1:i + 3], 16))
            i += 3
        else:
            out.append(ord(text[i]))
            i += 1
    return bytes(out)


def _server(s: _Scanner) -> tuple[str | None, str]:
    """RFC 5092 ``iserver``: ``[enc-user [;AUTH=...] "@"] host [":" port]``."""
    user = None
    slash = s.text.find("/", s.pos)
    at = s.text.find("@", s.pos, len(s.text) if slash < 0 else slash)
    if at >= 0:
        userinfo = s.text[s.pos:at]
        name, _, auth = userinfo.partition(";")
        if auth and not auth.upper().startswith("AUTH="):
            raise UrlError("Invalid user information in URL")
        if name:
            if not _ACHAR.fullmatch(name):
                raise UrlError("Invalid user name in URL")
            try:
                user = _percent_decode(name).decode("utf-8")
            except UnicodeDecodeError:
                raise UrlError("User name in URL is not UTF-8") from None
        s.pos = at + 1
    host = s.take(_HOST, "host")
    return user, host.lower()


def _mailbox(s: _Scanner) -> str:
    """
    RFC 5092 ``enc-mailbox``: bchars up to the first ``;``.  Without
    ``;UIDVALIDITY`` the ``/`` before ``;UID`` ends the name.
    """
    end = s.text.find(";", s.pos)
    if end < 0:
        raise UrlError("URL names no message (;UID=)")
    raw = s.text[s.pos:end]
    s.pos = end
    if not s.text[end:].upper().startswith(";UIDVALIDITY="):
        if not raw.endswith("/"):
            raise UrlError("Expected / before ;UID= in URL")
        raw = raw[:-1]
    if not raw or not _BCHAR.fullmatch(raw):
        raise UrlError("Missing or invalid mailbox name in URL")
    octets = _percent_decode(raw)
    try:
        name = octets.decode("utf-8")
    except ValueError:
        raise UrlError("Invalid mailbox name encoding in URL") from None
    head = name[:6].upper()
    if head in ("INBOX", "INBOX/"):
        name = head + name[6:]
    return name


def _number(s: _Scanner, what: str, nonzero: bool = False) -> int:
    value = int(s.take(_NZ_NUMBER if nonzero else _NUMBER, what))
    if value > _MAX_UINT32:
        raise UrlError(f"{what} too large in URL")
    return value


def _section(s: _Scanner) -> Section:
    """RFC 5092 ``enc-section``: a FETCH section-spec, percent-encoded."""
    end = s.text.find(";", s.pos)
    end = len(s.text) if end < 0 else end
    raw = s.text[s.pos:end]
    s.pos += len(raw)
    if raw.endswith("/") and s.text[end:].upper().startswith(";PARTIAL="):
        raw = raw[:-1]
        s.pos -= 1  # the "/" of "/;PARTIAL="
    if not raw or not _BCHAR.fullmatch(raw):
        raise UrlError("Missing or invalid SECTION in URL")
    from twisted_mailhub.imap.framing import ParseError
    from twisted_mailhub.imap.parser import parse_section

    try:
        return parse_section(_percent_decode(raw))
    except ParseError as e:
        raise UrlError(f"Invalid SECTION in URL: {e.message}") from None


def _expire(s: _Scanner) -> datetime:
    """RFC 3339 ``date-time`` (RFC 4467 section 9 ``expire``)."""
    found = _DATE_TIME.match(s.text, s.pos)
    if not found:
        raise UrlError("Invalid EXPIRE date-time in URL")
    s.pos = found.end()
    value = found.group().upper().replace("Z", "+00:00")
    # RFC 3339 section 5.6: time-second may be 60, a leap second (at any
    # minute of a zone offset, section 5.7), which datetime cannot hold.
    # The URL then expires at the end of second 59: not later than asked,
    # and less than a second early.
    leap = found.group(6) == "60"
    if leap:
        value = value[:17] + "59" + value[19:]
    try:
        expire = datetime.fromisoformat(value)
    except ValueError:
        raise UrlError("Invalid EXPIRE date-time in URL") from None
    return expire.replace(microsecond=999999) if leap else expire


def _access(s: _Scanner) -> str:
    """RFC 4467 section 9 ``access``."""
    for prefix in ("submit+", "user+"):
        if s.keyword(prefix):
            name = s.take(_ACHAR, "user in URLAUTH access")
            try:
                return prefix + _percent_decode(name).decode("utf-8")
            except UnicodeDecodeError:
                raise UrlError("User in URLAUTH access is not UTF-8") from None
    for word in ("authuser", "anonymous"):
        if s.keyword(word):
            return word
    raise UrlError("Invalid URLAUTH access identifier")
