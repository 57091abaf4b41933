"""
A deterministic generator of mixed, realistic messages for the benchmarks.

Message C{i} of seed C{s} is always the same bytes, whatever else was
generated before, so the mailbox given to twisted_mailhub and the Maildir
given to Dovecot hold the same messages, and extra messages (APPEND) can be
made on demand.  The mix, by share of messages:

  - 46% plain text (some in quoted-printable, some with encoded-word headers);
  - 28% multipart/alternative, a text and an HTML part;
  - 18% multipart/mixed with one or two base64 attachments (8-40 KB each);
  - 7% replies with a quoted thread (In-Reply-To, References);
  - 1% large: a base64 attachment of 0.3-1 MB.

The average message is about 20 KB, so 10,000 messages are about 200 MB.
Lines end in CRLF.  About 1% of the messages have L{SEARCH_WORD} in a text
part (never in a header), a third are unseen, 5% are flagged.
"""

from __future__ import annotations

import base64
import quopri
import random
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

#: A word that appears in the text body of about 1% of the messages.
SEARCH_WORD = "zanzibar"

_WORDS = (
    "the of and to in is that for it as with was on be by this are or from at an have not "
    "which but all were when we there can more one has been if their will would so what "
    "meeting report budget schedule project release server mailbox review draft invoice "
    "customer quarter update change request deadline team office travel contract design "
    "network storage backup version feature question answer thanks regards please attached "
    "tomorrow monday friday morning afternoon week month agenda minutes notes summary plan"
).split()
_FIRST = ("Alice Bob Carol Dave Erin Frank Grace Heidi Ivan Judy Mallory Niaj Olivia Peggy "
          "Rupert Sybil Trent Victor Walter Zoe").split()
_LAST = ("Smith Jones Brown Garcia Miller Davis Martin Lefebvre Rossi Novak Tanaka Kowalski "
         "Andersen Silva Murphy Weber").split()
_ACCENTED = ("Jos\u00e9 Garc\u00eda", "Bj\u00f6rn \u00c5str\u00f6m", "Zo\u00eb M\u00fcller",
             "Fran\u00e7ois C\u00f4t\u00e9", "\u0141ukasz W\u00f3jcik")
_DOMAINS = ("example.org", "example.com", "example.net", "mail.example.org", "corp.example")


def _corpus() -> str:
    """About 200 KB of prose-like text, the same every run."""
    rng = random.Random(20240508)
    sentences = []
    for _ in range(3000):
        words = [rng.choice(_WORDS) for _ in range(rng.randint(6, 16))]
        sentences.append(" ".join(words).capitalize() + ".")
    return " ".join(sentences)


_CORPUS = _corpus()


@dataclass(frozen=True, slots=True)
class GeneratedMessage:
    """One generated message: its bytes, IMAP flags and INTERNALDATE."""

    content: bytes
    flags: frozenset[str]
    internaldate: datetime


def _text(rng: random.Random, size: int, word: bool) -> str:
    """Wrapped prose of about C{size} characters, lines joined by CRLF."""
    start = rng.randrange(0, len(_CORPUS) - size - 1) if size < len(_CORPUS) else 0
    chunk = _CORPUS[start:start + size]
    if word:
        at = rng.randrange(0, max(1, len(chunk) - 1))
        at = chunk.find(" ", at) + 1
        chunk = chunk[:at] + SEARCH_WORD + " " + chunk[at:]
    lines, line = [], []
    width = 0
    for w in chunk.split(" "):
        if width + len(w) > 72 and line:
            lines.append(" ".join(line))
            line, width = [], 0
        line.append(w)
        width += len(w) + 1
    lines.append(" ".join(line))
    return "\r\n".join(lines) + "\r\n"


def _address(rng: random.Random, encoded: bool) -> str:
    domain = rng.choice(_DOMAINS)
    if encoded:
        name = rng.choice(_ACCENTED)
        local = name.split()[0].lower().encode("ascii", "ignore").decode() or "user"
        coded = base64.b64encode(name.encode()).decode()
        return f"=?UTF-8?B?{coded}?= <{local}@{domain}>"
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    return f"{first} {last} <{first.lower()}.{last.lower()}@{domain}>"


def _subject(rng: random.Random, i: int, encoded: bool) -> str:
    words = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(2, 7)))
    if encoded:
        text = f"R\u00e9sum\u00e9 {words} \u2014 #{i}"
        q = quopri.encodestring(text.encode(), header=True).decode()
        return f"=?UTF-8?Q?{q}?="
    return f"{words.capitalize()} #{i}"


def _qp(text: str) -> str:
    return quopri.encodestring(text.replace("\r\n", "\n").encode()).decode().replace(
        "\n", "\r\n")


def _b64(data: bytes) -> str:
    return base64.encodebytes(data).decode().replace("\n", "\r\n")


def _attachment(rng: random.Random, boundary: str, size: int, n: int) -> str:
    kind, ext = rng.choice((("application/pdf", "pdf"), ("image/png", "png"),
                            ("application/zip", "zip"), ("image/jpeg", "jpg")))
    return (f"--{boundary}\r\nContent-Type: {kind}; name=\"file{n}.{ext}\"\r\n"
            f"Content-Disposition: attachment; filename=\"file{n}.{ext}\"\r\n"
            f"Content-Transfer-Encoding: base64\r\n\r\n{_b64(rng.randbytes(size))}")


def generate(i: int, seed: int = 1, user: str = "bench") -> GeneratedMessage:
    """Message number C{i} (from 0) of the set of C{seed}."""
    rng = random.Random(seed * 1_000_003 + i)
    kind = rng.random()
    word = rng.random() < 0.01
    encoded = rng.random() < 0.12
    date = datetime(2023, 1, 2, 8, 0, tzinfo=timezone.utc) + timedelta(minutes=7 * i)
    headers = [
        ("Return-Path", f"<bounce{i}@{rng.choice(_DOMAINS)}>"),
        ("Received", f"from mx{rng.randint(1, 9)}.example.net (mx.example.net [192.0.2."
                     f"{rng.randint(1, 254)}]) by mail.example.com with ESMTPS id "
                     f"{rng.getrandbits(48):012x}; {date.strftime('%a, %d %b %Y %H:%M:%S +0000')}"),
        ("From", _address(rng, encoded)),
        ("To", f"Bench User <{user}@example.com>"),
        ("Subject", _subject(rng, i, encoded)),
        ("Date", date.strftime("%a, %d %b %Y %H:%M:%S +0000")),
        ("Message-ID", f"<{i}.{seed}.{rng.getrandbits(32):08x}@bench.example.org>"),
        ("MIME-Version", "1.0"),
    ]
    if rng.random() < 0.3:
        headers.append(("Cc", ", ".join(_address(rng, False) for _ in range(rng.randint(1, 4)))))
    if rng.random() < 0.2:
        headers.append(("List-Id", f"<list{rng.randint(1, 20)}.example.org>"))
    boundary = f"=_bench_{i}_{rng.getrandbits(40):010x}"
    if kind < 0.46:
        text = _text(rng, rng.randint(800, 9000), word)
        if rng.random() < 0.3:
            headers += [("Content-Type", "text/plain; charset=utf-8"),
                        ("Content-Transfer-Encoding", "quoted-printable")]
            body = _qp(text.replace("Thanks", "Thanks \u2014 caf\u00e9"))
        else:
            headers += [("Content-Type", "text/plain; charset=us-ascii; format=flowed")]
            body = text
    elif kind < 0.74:
        text = _text(rng, rng.randint(1500, 8000), word)
        html = "<html><body><p>" + text.replace("\r\n", "</p>\r\n<p>") + "</p></body></html>\r\n"
        headers.append(("Content-Type", f"multipart/alternative; boundary=\"{boundary}\""))
        body = (f"This is a multi-part message in MIME format.\r\n\r\n"
                f"--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n"
                f"Content-Transfer-Encoding: 7bit\r\n\r\n{text}"
                f"--{boundary}\r\nContent-Type: text/html; charset=utf-8\r\n"
                f"Content-Transfer-Encoding: quoted-printable\r\n\r\n{_qp(html)}\r\n"
                f"--{boundary}--\r\n")
    elif kind < 0.92 or kind >= 0.99:
        large = kind >= 0.99
        text = _text(rng, rng.randint(300, 2500), word)
        headers.append(("Content-Type", f"multipart/mixed; boundary=\"{boundary}\""))
        parts = [f"--{boundary}\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n{text}"]
        count = 1 if large else rng.randint(1, 2)
        for n in range(count):
            size = rng.randint(250_000, 700_000) if large else rng.randint(6_000, 30_000)
            parts.append(_attachment(rng, boundary, size, n))
        body = "".join(parts) + f"--{boundary}--\r\n"
    else:
        quoted = _text(rng, rng.randint(1000, 6000), False)
        text = _text(rng, rng.randint(200, 1500), word)
        parent = f"<{max(0, i - 1)}.{seed}.parent@bench.example.org>"
        headers += [("In-Reply-To", parent), ("References", parent),
                    ("Content-Type", "text/plain; charset=utf-8")]
        headers[4] = ("Subject", "Re: " + headers[4][1])
        body = text + "\r\nOn an earlier day, someone wrote:\r\n" + "".join(
            "> " + line + "\r\n" for line in quoted.split("\r\n") if line)
    head = "".join(f"{name}: {value}\r\n" for name, value in headers)
    flags = set()
    r = rng.random()
    if r >= 1 / 3:
        flags.add("\\Seen")
    if rng.random() < 0.05:
        flags.add("\\Flagged")
    if "\\Seen" in flags and rng.random() < 0.1:
        flags.add("\\Answered")
    return GeneratedMessage((head + "\r\n" + body).encode("utf-8"), frozenset(flags), date)


def extra_mailbox_names(count: int = 50) -> list[str]:
    """The names of the small extra mailboxes (flat, no hierarchy)."""
    return [f"Folder{n:02d}" for n in range(1, count + 1)]


#: Messages in each extra mailbox (taken from after the INBOX's own).
EXTRA_MESSAGES = 4
