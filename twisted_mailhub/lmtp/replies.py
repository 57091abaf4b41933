"""
LMTP replies: a three-digit code, an enhanced status code and text.

Reply codes are those of RFC 5321 section 4.2; enhanced status codes
(``class.subject.detail``) those of RFC 3463, carried as RFC 2034
(ENHANCEDSTATUSCODES) says: right after the code, on every line of every
2xx, 4xx and 5xx reply except the greeting and the reply to LHLO.
"""

from __future__ import annotations

from dataclasses import dataclass

#: RFC 5321 section 4.5.3.1.5: a reply line is at most 512 octets with CRLF.
MAX_REPLY_LINE = 512


@dataclass(frozen=True, slots=True)
class Reply:
    """
    One reply.  C{lines} are its text lines (more than one make a multiline
    reply, RFC 5321 section 4.2.1); C{enhanced} is the RFC 3463 code, or
    C{""} where none is sent.
    """

    code: int
    enhanced: str
    lines: tuple[str, ...]

    @classmethod
    def of(cls, code: int, enhanced: str, *lines: str) -> "Reply":
        """C{Reply.of(250, "2.1.5", "OK")}."""
        return cls(code, enhanced, tuple(lines) or ("",))

    @property
    def positive(self) -> bool:
        """A 2xx (or 3xx) reply."""
        return self.code < 400

    @property
    def temporary(self) -> bool:
        """A 4xx reply: the client should try again later."""
        return 400 <= self.code < 500

    def to_bytes(self) -> bytes:
        """The reply on the wire: UTF-8 text, CRLF line ends, lines cut to 512 octets."""
        out = []
        last = len(self.lines) - 1
        for i, text in enumerate(self.lines):
            separator = " " if i == last else "-"
            prefix = f"{self.code}{separator}{self.enhanced + ' ' if self.enhanced else ''}"
            # No CR or LF may end up inside a line.
            clean = " ".join(text.splitlines()) if text else ""
            line = (prefix + clean).rstrip().encode("utf-8", "replace")
            out.append(line[: MAX_REPLY_LINE - 2] + b"\r\n")
        return b"".join(out)


def reply(code: int, enhanced: str, text: str) -> Reply:
    """A one-line reply."""
    return Reply.of(code, enhanced, text)


# -- the replies the session sends itself ------------------------------------------

OK = reply(250, "2.0.0", "OK")
SENDER_OK = reply(250, "2.1.0", "Sender OK")
RECIPIENT_OK = reply(250, "2.1.5", "Recipient OK")
START_DATA = reply(354, "", "Start mail input; end with <CRLF>.<CRLF>")
BYE = reply(221, "2.0.0", "Bye")
VRFY = reply(252, "2.5.0", "Cannot verify the user; send some mail and I will try my best")

LINE_TOO_LONG = reply(500, "5.5.2", "Line too long")
UNKNOWN_COMMAND = reply(500, "5.5.1", "Command not recognized")
USE_LHLO = reply(500, "5.5.1", "This is LMTP: say LHLO, not HELO or EHLO (RFC 2033)")
NEED_LHLO = reply(503, "5.5.1", "Say LHLO first")
NESTED_MAIL = reply(503, "5.5.1", "A transaction is already open; RSET first")
NEED_MAIL = reply(503, "5.5.1", "Need MAIL before RCPT")
NO_RECIPIENTS = reply(503, "5.5.1", "No valid recipients")
TOO_MANY_RECIPIENTS = reply(452, "4.5.3", "Too many recipients")
TOO_BIG = reply(552, "5.3.4", "Message too big for this system")
NON_ASCII_ADDRESS = reply(553, "5.6.7", "Non-ASCII address needs SMTPUTF8 (RFC 6531)")
TOO_MANY_ERRORS = reply(421, "4.7.0", "Too many errors; closing the connection")
TIMEOUT = reply(421, "4.4.2", "Timeout; closing the connection")
SHUTTING_DOWN = reply(421, "4.3.2", "Server shutting down")
TOO_MANY_CONNECTIONS = reply(421, "4.7.0", "Too many connections from your address")

# -- per-recipient replies after DATA (RFC 2033 section 4.2) ------------------------

DELIVERED = reply(250, "2.0.0", "Delivered")
NO_SUCH_USER = reply(550, "5.1.1", "No such user here")
MAILBOX_FULL = reply(452, "4.2.2", "Mailbox full; try again later")
REFUSED_TOO_BIG = reply(552, "5.2.3", "Message length exceeds this mailbox's limit")
TRY_LATER = reply(451, "4.3.0", "Temporary failure storing the message; try again later")
