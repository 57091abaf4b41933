"""
LMTP (RFC 2033): how an MTA such as Postfix or Exim hands mail to the
store, with one reply per recipient.

The modules, by what they hold:

  - L{replies}: reply codes with their RFC 3463 enhanced status codes.
  - L{commands}: the grammar of command lines, paths and parameters.
  - L{data}: the message text after DATA, un-stuffed and bounded.
  - L{session}: the state machine, without I/O.
  - L{protocol}: the Twisted protocol and L{LMTPServerFactory}.

What is delivered where is L{twisted_mailhub.delivery}'s business.
"""

from twisted_mailhub.lmtp.protocol import LMTPServerFactory

__all__ = ["LMTPServerFactory"]
