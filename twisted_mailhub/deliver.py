"""
``mailhub deliver``: deliver the message on standard input to one user,
for MTAs that hand mail to a command (Postfix's ``mailbox_command`` or a
``pipe`` transport, Exim's ``pipe`` transport, procmail, fetchmail's
``--mda``).

  mailhub deliver -u USER [-m FOLDER] [-f SENDER] [--config FILE] [--store URL]

The store and the users are those of the server's own configuration file
(C{--config}) or of C{--store}.  The exit status is what MTAs understand
(``sysexits.h``):

  - 0: delivered, and durable in the store;
  - 64 (EX_USAGE): bad arguments;
  - 65 (EX_DATAERR): the input is not a message (empty, or not starting
    with a header field), or it is larger than the server accepts;
  - 67 (EX_NOUSER): no such user;
  - 75 (EX_TEMPFAIL): the store failed or the user is over quota, or the
    configuration cannot be read: the MTA keeps the message and tries
    again later, so a broken configuration delays mail instead of
    bouncing it.

A leading mbox ``From `` line (Postfix's ``pipe`` flag F) is dropped; with
``-f`` a ``Return-Path`` field with that sender replaces any the message
had.  A running server's IMAP clients are told of the message as of any
change made by another process.
"""

from __future__ import annotations

import argparse
import re
import socket
import sys
from datetime import datetime, timezone
from typing import Any, BinaryIO, NoReturn, Sequence

EX_OK = 0
EX_USAGE = 64
EX_DATAERR = 65
EX_NOUSER = 67
EX_TEMPFAIL = 75

PROG = "mailhub deliver"

# RFC 5322 section 3.6.8: a field name is printable ASCII but the colon.
_HEADER_LINE = re.compile(rb"^[!-9;-~]+[ \t]*:")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        print(f"{PROG}: {message}", file=sys.stderr)
        sys.exit(EX_USAGE)


def build_parser() -> argparse.ArgumentParser:
    """The arguments of ``mailhub deliver``."""
    parser = _Parser(
        prog=PROG,
        description="Deliver the message on standard input to a user of the store.  Exit "
        "status: 0 delivered, 64 usage error, 65 not a usable message, 67 no such user, "
        "75 temporary failure (store failure, over quota, unreadable configuration).")
    parser.add_argument("-u", "--user", required=True, metavar="USER",
                        help="the user to deliver to")
    parser.add_argument("-m", "--mailbox", metavar="FOLDER",
                        help="deliver into this folder if it exists (default and otherwise: "
                        "INBOX)")
    parser.add_argument("-f", "--from", dest="sender", metavar="SENDER",
                        help="the envelope sender, written as the Return-Path ('' for <>)")
    parser.add_argument("--config", metavar="FILE",
                        help="the server's TOML configuration file (its store and users)")
    parser.add_argument("--store", metavar="URL",
                        help="the mail store, replacing the configuration file's")
    return parser


def read_message(stream: BinaryIO, limit: int) -> bytes | None:
    """Up to C{limit} octets of C{stream}; C{None} if it holds more."""
    chunks = []
    size = 0
    while size <= limit:
        chunk = stream.read(min(1 << 20, limit + 1 - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return None if size > limit else b"".join(chunks)


def without_from_line(content: bytes) -> bytes:
    """C{content} without a leading mbox C{From } separator line."""
    if content.startswith(b"From "):
        _, _, rest = content.partition(b"\n")
        return rest
    return content


def usable(content: bytes) -> bool:
    """Whether C{content} looks like a message: not empty, a header field first."""
    return bool(_HEADER_LINE.match(content))


def main(argv: Sequence[str], stdin: BinaryIO | None = None) -> int:
    """Run ``mailhub deliver`` with C{argv}; return the exit status."""
    args = build_parser().parse_args(list(argv))
    from twisted.python import usage

    from twisted_mailhub.config import settings_for_command

    try:
        settings = settings_for_command(args.config, args.store)
    except usage.UsageError as e:
        return _fail(EX_TEMPFAIL, str(e))
    limit = settings.policy().max_literal_size
    stream = stdin if stdin is not None else sys.stdin.buffer
    content = read_message(stream, limit)
    if content is None:
        return _fail(EX_DATAERR, f"message too big: the limit is {limit} bytes")
    content = without_from_line(content)
    if not usable(content):
        return _fail(EX_DATAERR, "standard input holds no message (it must start with a "
                     "header field)")

    from twisted.internet import defer, task

    status: list[int] = []

    def run(reactor: Any) -> defer.Deferred:
        return defer.ensureDeferred(_deliver(settings, args, content, status))

    try:
        task.react(run)
    except SystemExit as e:
        if not status:
            return EX_TEMPFAIL if e.code else EX_OK
    return status[0] if status else EX_TEMPFAIL


async def _deliver(settings: Any, args: argparse.Namespace, content: bytes,
                   status: list[int]) -> None:
    from twisted_mailhub.auth.directory import directory_for
    from twisted_mailhub.service import open_configured_backend
    from twisted_mailhub.watch import IWatchableBackend

    try:
        backend = open_configured_backend(settings)
    except Exception as e:
        status.append(_fail(EX_TEMPFAIL, f"cannot open the mail store: {_first_line(e)}"))
        return
    try:
        ready = getattr(backend, "ready", None)
        try:
            if ready is not None:
                await ready()
            if IWatchableBackend.providedBy(backend):
                # The running servers are told of the new message as of any
                # change by another process (PostgreSQL: a NOTIFY this sends).
                backend.watch_changes()
        except Exception as e:
            status.append(_fail(EX_TEMPFAIL, f"the mail store is unusable: {_first_line(e)}"))
            return
        status.append(await deliver_message(
            backend, directory_for(settings, backend), args.user, content,
            folder=args.mailbox, sender=args.sender))
    finally:
        try:
            await backend.close()
        except Exception:
            pass


async def deliver_message(backend: Any, users: Any, username: str, content: bytes, *,
                          folder: str | None = None, sender: str | None = None) -> int:
    """
    Deliver C{content} to C{username} of C{backend} if C{users} (an
    L{twisted_mailhub.auth.directory.IUserDirectory}) knows the name, into
    C{folder} if it exists; return the exit status, having said why on
    standard error when it is not 0.
    """
    from twisted_mailhub.delivery import Destination, LocalDelivery, Outcome, received_field

    try:
        known = await users.exists(username)
    except Exception as e:
        return _fail(EX_TEMPFAIL, f"cannot look the user up: {_first_line(e)}")
    if not known:
        return _fail(EX_NOUSER, f"no such user: {username}")
    received = received_field(by=socket.getfqdn() or "localhost",
                              when=datetime.now(timezone.utc).astimezone(),
                              comment="twisted_mailhub deliver", recipient=username)
    result = await LocalDelivery(backend, users).deliver(
        Destination(username, folder), content, sender=sender, received=received)
    if result.outcome is Outcome.DELIVERED:
        return EX_OK
    if result.outcome is Outcome.OVER_QUOTA:
        return _fail(EX_TEMPFAIL, f"{username} is over quota: {result.reason}")
    if result.outcome is Outcome.TOO_BIG:
        return _fail(EX_DATAERR, f"message too big: {result.reason}")
    return _fail(EX_TEMPFAIL, f"the store failed: {result.reason}")


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _fail(code: int, message: str) -> int:
    print(f"{PROG}: {message}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
