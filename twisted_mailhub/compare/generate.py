"""
Filling a mailbox with a reproducible mix for the comparison: several
senders, some messages already read, every fifth with a large attachment,
and a few folders, all through IMAP APPEND.
"""

from __future__ import annotations

import random
from email.message import EmailMessage
from email.utils import format_datetime
from datetime import datetime, timedelta, timezone

SENDERS = [
    "alice@example.org",
    "bob@example.com",
    "carol@example.net",
    "dave@example.org",
    "erin@example.com",
]
FOLDERS = ["Archive", "Lists", "Receipts"]
ATTACHMENT_SIZE = 300_000


def make_message(index: int, rng: random.Random) -> bytes:
    """Message number C{index} of the generated mix."""
    sender = SENDERS[index % len(SENDERS)]
    message = EmailMessage()
    message["From"] = sender
    message["To"] = "you@example.org"
    message["Subject"] = f"Generated message {index}"
    when = datetime(2024, 1, 1, tzinfo=timezone.utc) + timedelta(hours=index)
    message["Date"] = format_datetime(when)
    message["Message-ID"] = f"<gen-{index}@example.org>"
    words = " ".join(rng.choice(["tea", "party", "hatter", "rabbit", "queen", "croquet"])
                     for _ in range(60))
    message.set_content(f"Hello,\n\n{words}\n\nRegards,\n{sender}\n")
    if index % 5 == 0:
        blob = rng.randbytes(ATTACHMENT_SIZE)
        message.add_attachment(blob, maintype="application", subtype="octet-stream",
                               filename=f"data-{index}.bin")
    return message.as_bytes(policy=message.policy.clone(linesep="\r\n"))


def generate(client, count: int, seed: int = 1) -> int:
    """
    Append C{count} messages to INBOX (every third one read) and two to
    each of L{FOLDERS} (created if missing) with the logged-in imaplib
    C{client}.  Returns the number of messages appended.
    """
    rng = random.Random(seed)
    appended = 0
    for index in range(count):
        flags = "(\\Seen)" if index % 3 == 1 else None
        typ, _ = client.append("INBOX", flags, None, make_message(index, rng))
        if typ != "OK":
            raise RuntimeError("APPEND to INBOX failed")
        appended += 1
    for folder in FOLDERS:
        client.create(folder)  # fails harmlessly when it exists
        for index in range(2):
            client.append(folder, "(\\Seen)", None, make_message(count + index + 1, rng))
            appended += 1
    return appended


__all__ = ["generate", "make_message", "SENDERS", "FOLDERS"]
