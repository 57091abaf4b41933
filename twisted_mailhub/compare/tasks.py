"""
The user tasks, each done the natural way over IMAP and over POP3.

Every task opens its own connection(s), logs in and logs out, so the
figures include the cost of getting in.  A task a protocol cannot do at all
returns a L{Result} whose C{impossible} says why.
"""

from __future__ import annotations

import email
import email.policy
import re
import time
from dataclasses import dataclass, field
from typing import Callable

from twisted_mailhub.compare.counting import Counter


@dataclass
class Result:
    """What one protocol did for one task."""

    counter: Counter = field(default_factory=Counter)
    seconds: float = 0.0
    outcome: str = ""
    impossible: str | None = None


@dataclass
class Clients:
    """How tasks connect: callables taking a L{Counter}, returning logged-in clients."""

    imap: Callable[[Counter], object]
    pop3: Callable[[Counter], object]
    # An uncounted IMAP connection, for the "someone else" side of a task.
    imap_uncounted: Callable[[], object]
    sender: str


def _timed(fn: Callable[[Counter], str]) -> Result:
    result = Result()
    start = time.perf_counter()
    result.outcome = fn(result.counter)
    result.seconds = time.perf_counter() - start
    return result


def _uids(data) -> list[bytes]:
    return data[0].split() if data and data[0] else []


# -- 1. download all new mail ------------------------------------------------------


def download_new_imap(clients: Clients) -> Result:
    def run(counter: Counter) -> str:
        c = clients.imap(counter)
        c.select("INBOX", readonly=True)
        _, data = c.uid("SEARCH", "UNSEEN")
        uids = _uids(data)
        total = 0
        if uids:
            _, fetched = c.uid("FETCH", b",".join(uids).decode(), "(BODY.PEEK[])")
            total = sum(len(part[1]) for part in fetched if isinstance(part, tuple))
        c.logout()
        return f"{len(uids)} unseen messages, {total} octets"

    return _timed(run)


def download_new_pop3(clients: Clients) -> Result:
    def run(counter: Counter) -> str:
        c = clients.pop3(counter)
        # POP3 has no \Seen: "new" is whatever is not in the client's own
        # UIDL cache, which on a first run is everything.
        listing = c.uidl()[1]
        total = 0
        for line in listing:
            number = int(line.split()[0])
            total += sum(len(l) + 2 for l in c.retr(number)[1])
        c.quit()
        return f"{len(listing)} messages (no server-side unseen state), {total} octets"

    return _timed(run)


# -- 2. read only the text of messages with large attachments ---------------------

LARGE = 100_000


def text_of_large_imap(clients: Clients) -> Result:
    def run(counter: Counter) -> str:
        c = clients.imap(counter)
        c.select("INBOX", readonly=True)
        _, data = c.uid("SEARCH", "LARGER", str(LARGE))
        uids = _uids(data)
        text = 0
        if uids:
            # BODYSTRUCTURE tells which part is the text; the generated
            # messages (and most mail) carry it as part 1.
            c.uid("FETCH", b",".join(uids).decode(), "(BODYSTRUCTURE)")
            _, fetched = c.uid("FETCH", b",".join(uids).decode(), "(BODY.PEEK[1])")
            text = sum(len(part[1]) for part in fetched if isinstance(part, tuple))
        c.logout()
        return f"{len(uids)} messages, {text} octets of text"

    return _timed(run)


def _first_part_complete(lines: list[bytes]) -> bool:
    message = email.message_from_bytes(b"\r\n".join(lines), policy=email.policy.compat32)
    boundary = message.get_boundary()
    if not boundary:
        return False
    marker = b"--" + boundary.encode()
    return sum(1 for line in lines if line.startswith(marker)) >= 2


def text_of_large_pop3(clients: Clients) -> Result:
    def run(counter: Counter) -> str:
        c = clients.pop3(counter)
        sizes = [tuple(map(int, line.split())) for line in c.list()[1]]
        large = [n for n, size in sizes if size > LARGE]
        topped = retrieved = 0
        for number in large:
            # The best a POP3 client can do: TOP with a guess at how many
            # lines the text part takes, and RETR everything if it was not
            # enough.
            lines = c.top(number, 60)[1]
            if _first_part_complete(lines):
                topped += 1
            else:
                c.retr(number)
                retrieved += 1
        c.quit()
        return f"{len(large)} messages: {topped} by TOP, {retrieved} by full RETR"

    return _timed(run)


# -- 3. find messages from one sender --------------------------------------------------


def from_sender_imap(clients: Clients) -> Result:
    def run(counter: Counter) -> str:
        c = clients.imap(counter)
        c.select("INBOX", readonly=True)
        _, data = c.uid("SEARCH", "FROM", f'"{clients.sender}"')
        c.logout()
        return f"{len(_uids(data))} messages from {clients.sender} (server-side SEARCH)"

    return _timed(run)


def from_sender_pop3(clients: Clients) -> Result:
    def run(counter: Counter) -> str:
        c = clients.pop3(counter)
        count = int(c.stat()[0])
        found = 0
        for number in range(1, count + 1):
            header = email.message_from_bytes(b"\r\n".join(c.top(number, 0)[1]))
            if clients.sender.lower() in str(header.get("From", "")).lower():
                found += 1
        c.quit()
        return f"{found} messages from {clients.sender} (TOP n 0 of all {count})"

    return _timed(run)


# -- 4. keep read/unread state consistent between two clients ----------------------------


def read_state_imap(clients: Clients) -> Result:
    def run(counter: Counter) -> str:
        first = clients.imap(counter)
        first.select("INBOX")
        _, data = first.uid("SEARCH", "UNSEEN")
        uids = _uids(data)
        if not uids:
            first.logout()
            return "no unseen message to mark"
        target = uids[0].decode()
        first.uid("STORE", target, "+FLAGS", "(\\Seen)")
        first.logout()
        second = clients.imap(counter)
        second.select("INBOX", readonly=True)
        _, flags = second.uid("FETCH", target, "(FLAGS)")
        second.logout()
        seen = b"\\Seen" in flags[0]
        return f"client A marked UID {target} read; client B sees it {'read' if seen else 'UNREAD'}"

    return _timed(run)


def read_state_pop3(clients: Clients) -> Result:
    return Result(impossible="not possible: POP3 has no read/unread flags to share")


# -- 5. learn that a new message arrived -----------------------------------------------------

_EXISTS = re.compile(rb"^\* (\d+) EXISTS")


def _deliver(clients: Clients, subject: str) -> None:
    other = clients.imap_uncounted()
    body = (f"From: newsdesk@example.com\r\nTo: you@example.org\r\nSubject: {subject}\r\n"
            "\r\nJust arrived.\r\n").encode()
    other.append("INBOX", None, None, body)
    other.logout()


def new_mail_imap(clients: Clients) -> Result:
    def run(counter: Counter) -> str:
        c = clients.imap(counter)
        c.select("INBOX", readonly=True)
        tag = c._new_tag()
        c.send(tag + b" IDLE\r\n")
        if not c.readline().startswith(b"+"):
            raise RuntimeError("server refused IDLE")
        _deliver(clients, "pushed over IDLE")
        while True:
            line = c.readline()
            if _EXISTS.match(line):
                break
        c.send(b"DONE\r\n")
        while not c.readline().startswith(tag):
            pass
        c.logout()
        return "IDLE pushed EXISTS at once (one connection held open)"

    return _timed(run)


def new_mail_pop3(clients: Clients) -> Result:
    def poll(counter: Counter) -> set[bytes]:
        c = clients.pop3(counter)
        ids = {line.split()[1] for line in c.uidl()[1]}
        c.quit()
        return ids

    def run(counter: Counter) -> str:
        before = poll(counter)
        _deliver(clients, "found by polling")
        after = poll(counter)
        return (f"2 polls (login+UIDL+QUIT each); found {len(after - before)} new; "
                "delay = the poll interval")

    return _timed(run)


# -- 6. work with several folders ------------------------------------------------------------

_LIST_NAME = re.compile(rb'\) "(?:[^"]*)" (.+)$')


def folders_imap(clients: Clients) -> Result:
    def run(counter: Counter) -> str:
        c = clients.imap(counter)
        _, listing = c.list()
        names = [m.group(1).decode() for m in (_LIST_NAME.search(l) for l in listing) if m]
        for name in names:
            c.status(name, "(MESSAGES UNSEEN)")
        c.logout()
        return f"LIST + STATUS of {len(names)} folders"

    return _timed(run)


def folders_pop3(clients: Clients) -> Result:
    return Result(impossible="not possible: POP3 has no folders (only INBOX)")


TASKS: list[tuple[str, Callable[[Clients], Result], Callable[[Clients], Result]]] = [
    ("download all new mail", download_new_imap, download_new_pop3),
    ("text of messages with large attachments", text_of_large_imap, text_of_large_pop3),
    ("find messages from one sender", from_sender_imap, from_sender_pop3),
    ("read/unread state shared by two clients", read_state_imap, read_state_pop3),
    ("learn that a new message arrived", new_mail_imap, new_mail_pop3),
    ("work with several folders", folders_imap, folders_pop3),
]
