"""
POP3 (RFC 1939, with CAPA of RFC 2449, STLS of RFC 2595 and AUTH of
RFC 5034) over the same stores as IMAP.

The modules, by what they hold:

  - L{wire}: status lines, multi-line responses, dot-stuffing, TOP filter.
  - L{maildrop}: the INBOX snapshot, deletion marks, UIDL values, the lock.
  - L{session}: the states and the running of one command.
  - L{commands}: the TRANSACTION commands and the command table;
    L{login}: USER, PASS, AUTH and STLS.
  - L{protocol}: the Twisted protocol and L{POP3ServerFactory}.
"""

from twisted_mailhub.pop3.protocol import POP3ServerFactory

__all__ = ["POP3ServerFactory"]
