"""
A small mailbox for SORT and THREAD tests: replies with and without
References, subject artifacts, encoded words, dates in several zones or
missing, a duplicate and a quoted Message-ID, a References loop, groups, empty
subjects.
Sequence number N is C{MESSAGES[N - 1]}.
"""

from __future__ import annotations

from datetime import datetime, timezone


def _message(headers: list[str], body: str = "Text.") -> bytes:
    return ("\r\n".join(headers) + "\r\n\r\n" + body + "\r\n").encode("utf-8")


def _at(day: int, hour: int = 12) -> datetime:
    return datetime(2022, 3, day, hour, 0, 0, tzinfo=timezone.utc)


# (content, INTERNALDATE)
MESSAGES: list[tuple[bytes, datetime]] = [
    # 1: the start of a thread.
    (_message(["From: Alice Archer <alice@example.org>", "To: bob@example.net",
               "Subject: Meeting notes", "Date: Tue, 1 Mar 2022 10:00:00 +0000",
               "Message-ID: <a@example.org>"]), _at(1)),
    # 2: a reply forwarded through a list, every artifact at once.
    (_message(["From: bob@example.net", "To: Alice Archer <alice@example.org>",
               "Cc: carol@example.com", "Subject: Re: [list] Fwd: Meeting notes (fwd)",
               "Date: Wed, 2 Mar 2022 10:00:00 +0000", "Message-ID: <b@example.net>",
               "References: <a@example.org>"]), _at(2)),
    # 3: a reply to 2, In-Reply-To only.
    (_message(["From: Carol <carol@example.com>", "To: bob@example.net",
               "Subject: RE: Meeting notes", "Date: Thu, 3 Mar 2022 09:00:00 +0100",
               "Message-ID: <c@example.com>", "In-Reply-To: <b@example.net>"]), _at(3)),
    # 4: a reply to a message not in the mailbox.
    (_message(["From: dave@example.com", "To: alice@example.org",
               "Subject: Re: Meeting notes", "Date: Fri, 4 Mar 2022 10:00:00 +0000",
               "Message-ID: <d@example.com>", "References: <gone@example.org>"]), _at(4)),
    # 5: encoded words in the subject and the display name, a zone west of UTC
    # (2 Mar 21:00 -0800 is 3 Mar 05:00 UTC).
    (_message(["From: =?UTF-8?Q?J=C3=BCrgen_Ober?= <juergen@example.de>",
               "To: =?UTF-8?Q?Zo=C3=AB?= <zoe@example.org>",
               "Subject: =?UTF-8?Q?=C3=A9t=C3=A9?= plans",
               "Date: Wed, 2 Mar 2022 21:00:00 -0800",
               "Message-ID: <\"quoted.id\"@example.de>"]), _at(5)),
    # 6: no Date (the INTERNALDATE, 1 Mar 08:00, stands in), no Message-ID;
    # replies to 5 by its ID without the quotes.
    (_message(["From: Erin <erin@example.net>", "To: juergen@example.de",
               "Subject: Re: =?UTF-8?Q?=C3=89T=C3=89?= plans",
               "In-Reply-To: <quoted.id@example.de>"]), _at(1, 8)),
    # 7: the same Message-ID as 1, and the same subject.
    (_message(["From: alice@example.org", "To: bob@example.net",
               "Subject: Meeting notes", "Date: Sat, 5 Mar 2022 10:00:00 +0000",
               "Message-ID: <a@example.org>"]), _at(5, 13)),
    # 8 and 9: a forward and the message it forwards, not linked by IDs.
    (_message(["From: frank@example.org", "To: undisclosed-recipients:;",
               "Subject: [fwd: Budget]", "Date: Sun, 6 Mar 2022 10:00:00 +0000",
               "Message-ID: <f@example.org>"]), _at(6)),
    (_message(["From: grace@example.org", "To: frank@example.org",
               "Subject: Budget", "Date: Mon, 7 Mar 2022 10:00:00 +0000",
               "Message-ID: <g@example.org>"]), _at(7)),
    # 10 and 11: References that name each other.
    (_message(["From: heidi@example.org", "To: ivan@example.org",
               "Subject: Loop", "Date: Tue, 8 Mar 2022 10:00:00 +0000",
               "Message-ID: <h@example.org>", "References: <i@example.org>"]), _at(8)),
    (_message(["From: ivan@example.org", "To: heidi@example.org",
               "Subject: Re: Loop", "Date: Tue, 8 Mar 2022 11:00:00 +0000",
               "Message-ID: <i@example.org>", "References: <h@example.org>"]), _at(9)),
    # 12: no subject; an unknown zone name (read as UTC); a group in From.
    (_message(["From: Team: judy@example.org;", "To: Bob <bob@example.net>",
               "Date: Wed, 9 Mar 2022 10:00:00 XYZ", "Message-ID: <j@example.org>"]), _at(10)),
    # 13: a reply to 1 and 2 with truncated References, sent before them.
    (_message(["From: Mallory <mallory@example.org>", "To: alice@example.org",
               "Subject: Re: Meeting notes", "Date: Mon, 28 Feb 2022 10:00:00 +0000",
               "Message-ID: <m@example.org>", "References: <a@example.org> <b@example.net>",
               "In-Reply-To: <b@example.net>"]), _at(11)),
    # 14: a subject that is only an artifact: an empty base subject, like 12's.
    (_message(["From: Peggy <peggy@example.org>", "To: bob@example.net", "Subject: Re:",
               "Date: Sat, 12 Mar 2022 10:00:00 +0000", "Message-ID: <p@example.org>"]),
     _at(12)),
]
