"""The IMAP4rev1/IMAP4rev2 protocol: a sans-IO core and a thin Twisted layer."""
