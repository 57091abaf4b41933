"""
UTF8=ACCEPT (RFC 6855): what changes once a client sent ``ENABLE
UTF8=ACCEPT``, and what a client that did not may not do.

Enabling it (section 3) makes the parser read quoted strings as UTF-8 and
mailbox names as UTF-8 rather than modified UTF-7; names sent back (LIST,
LSUB, STATUS, QUOTAROOT) are UTF-8 too.  Such a client may no longer give
SEARCH a CHARSET: the RFC says the server SHOULD answer BAD, "due to the
conflicting charset labels".  The names it creates must be Net-Unicode, as
in IMAP4rev2.

A client that did not enable it may not APPEND a message whose header
holds 8-bit octets: section 4 says the server MUST answer NO.  An
IMAP4rev2 session may (RFC 9051 section 6.3.12 permits 8-bit characters in
the message), as may one that enabled UTF8=ACCEPT, with or without the
``UTF8 (literal8)`` form of section 4.
"""

from __future__ import annotations

import re

from twisted_mailhub.imap import commands as C
from twisted_mailhub.imap.session import CommandFailed

CAPABILITY = "UTF8=ACCEPT"

# The end of a message header: the first empty line.
_HEADER_END = re.compile(rb"\r?\n\r?\n")


def check(command: C.Command) -> None:
    """Raise L{CommandFailed} if C{command} is not allowed once UTF8=ACCEPT is on."""
    from twisted_mailhub.imap import rev2

    if isinstance(command, C.Search) and command.charset is not None:
        raise CommandFailed("SEARCH CHARSET is not allowed after ENABLE UTF8=ACCEPT "
                            "(RFC 6855 section 3); strings are UTF-8", condition="BAD")
    if isinstance(command, C.Create):
        rev2.check_new_name(command.mailbox)
    elif isinstance(command, C.Rename):
        rev2.check_new_name(command.new)


def header(content: bytes) -> bytes:
    """The header section of a message (all of it if there is no body)."""
    found = _HEADER_END.search(content)
    return content if found is None else content[:found.start()]


def check_append(command: C.Append, *, selected: bool = False) -> None:
    """
    RFC 6855 section 4, for a session that enabled neither UTF8=ACCEPT nor
    IMAP4rev2: NO for an APPEND with 8-bit octets in a message header.
    C{selected} says a mailbox is selected, where an ENABLE UTF8=ACCEPT
    would be ignored (section 3), so the text does not suggest one.
    """
    if selected:
        advice = ("ENABLE UTF8=ACCEPT in the authenticated state, before SELECT or EXAMINE "
                  "(RFC 6855 sections 3 and 4)")
    else:
        advice = "ENABLE UTF8=ACCEPT first (RFC 6855 section 4)"
    for number, message in enumerate(command.messages, 1):
        if not header(message.content).isascii():
            which = f"Message {number} has" if len(command.messages) > 1 else "Message has"
            raise CommandFailed(f"{which} 8-bit header fields; {advice}", "CANNOT")
