"""
Line endings: Maildir files end lines in LF, IMAP messages in CRLF.

Mail programs that share a Maildir (mutt, procmail, Dovecot's LDA,
Courier's maildrop) write and expect files with Unix line endings, and
Dovecot serves a file with each LF not already preceded by CR turned into
CRLF.  So does this server for files other programs wrote.

A message appended here is served byte for byte as it was appended.  One
with CRLF line endings, as IMAP requires, is stored with LF endings, and
turning them back gives exactly what was appended.  One that this would
change (bare LFs sent by a careless client, a CR before a CRLF) is stored
as it came, and the server's own state (C{mailhub-state}) remembers that
its file is served unchanged.  The C{W=} size of a file name is always
Dovecot's (the file with LF turned into CRLF), so that Dovecot's view of
the file stays right.
"""

from __future__ import annotations

import re

_BARE_LF = re.compile(rb"(?<!\r)\n")


def stored_form(content: bytes) -> tuple[bytes, bool]:
    """
    C{(stored, raw)}: what goes into the file for C{content} as a client
    appended it, and whether the file is to be served unchanged.
    """
    lf = content.replace(b"\r\n", b"\n")
    if served_form(lf) == content:
        return lf, False
    return content, True


def served_form(stored: bytes) -> bytes:
    """What a file holding C{stored} is served as (unless it is raw)."""
    return _BARE_LF.sub(b"\r\n", stored)


def served_size(stored: bytes) -> int:
    """C{len(served_form(stored))}, without building it: Dovecot's virtual size."""
    return len(stored) + stored.count(b"\n") - stored.count(b"\r\n")
