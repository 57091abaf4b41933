"""twisted_mailhub: a pluggable IMAP4 mail server framework built on Twisted."""

__version__ = "0.1.0"
