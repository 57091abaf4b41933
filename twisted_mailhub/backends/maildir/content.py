"""
Line endings: Maildir files end lines in LF, IMAP messages in CRLF.

Mail programs that share a Maildir (mutt, procmail, Dovecot's LDA,
Courier's maildrop) write and expect files with Unix line endings.  A
message is therefore stored with each CRLF turned into LF, and served with
each LF that is not already preceded by CR turned into CRLF, as Dovecot
does.  A message appended with CRLF line endings, as IMAP requires, is
served byte for byte as it was appended; a file another program wrote with
CRLF endings is served unchanged.  The size of a message (RFC822.SIZE, and
the C{W=} of its file name) is that of its served form.
"""

from __future__ import annotations

import re

_BARE_LF = re.compile(rb"(?<!\r)\n")


def stored_form(content: bytes) -> bytes:
    """What goes into the file for C{content} as a client appended it."""
    return content.replace(b"\r\n", b"\n")


def served_form(stored: bytes) -> bytes:
    """What clients are served for a file holding C{stored}."""
    return _BARE_LF.sub(b"\r\n", stored)


def served_size(stored: bytes) -> int:
    """C{len(served_form(stored))}, without building it."""
    return len(stored) + stored.count(b"\n") - stored.count(b"\r\n")
