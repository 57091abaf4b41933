"""
The ``mailhub`` command: manage the user accounts of an SQL store and make
TLS certificates.

  mailhub adduser NAME [--password P] [--store URL] [--scheme S]
  mailhub passwd NAME [--password P] [--store URL] [--scheme S]
  mailhub deluser NAME [--store URL]
  mailhub users [--store URL]
  mailhub gencert --cert FILE --key FILE [--hostname H]... [--days N]

Without ``--password`` the password is asked for twice on a terminal, or
read as one line from standard input otherwise (``echo pw | mailhub adduser
bob``).  Exit status: 0 on success, 1 when the operation failed, 2 for a
usage error.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any, Sequence

from twisted.internet import defer, task

from twisted_mailhub.backends.registry import UnknownStoreURL, store_kind
from twisted_mailhub.config import DEFAULT_STORE

PROG = "mailhub"

#: Subcommands that parse their own arguments: name -> ("module:function",
#: one-line summary).  The function takes the arguments after the name and
#: returns the exit status.  Their modules are imported only when used.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "deliver": ("twisted_mailhub.deliver:main", "deliver the message on stdin to a user"),
    "compare": (
        "twisted_mailhub.compare:main",
        "run the same tasks over IMAP and POP3 and compare the cost",
    ),
    "quota": ("twisted_mailhub.quota.command:main", "show or set a user's quota"),
    "sync": ("twisted_mailhub.sync:main", "copy an account from another IMAP server"),
    "mailboxes": ("twisted_mailhub.admin.mailboxes:list_main", "list a user's mailboxes"),
    "mailbox": ("twisted_mailhub.admin.mailboxes:mailbox_main",
                "create, delete, rename a mailbox or show its counters"),
    "import": ("twisted_mailhub.admin.transfer:import_main", "import mbox or Maildir mail"),
    "export": ("twisted_mailhub.admin.transfer:export_main", "export mail as mbox or Maildir"),
    "check": ("twisted_mailhub.admin.check:main", "check a store's consistency (and repair)"),
}


class CommandError(Exception):
    """A failure to report as one line on standard error (exit status 1)."""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``mailhub`` command."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Manage twisted_mailhub user accounts and TLS certificates, and "
        "compare IMAP with POP3 on a running server.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def with_store(sub: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sub.add_argument(
            "--store",
            default=DEFAULT_STORE,
            metavar="URL",
            help=f"SQL store holding the accounts (default: {DEFAULT_STORE})",
        )
        return sub

    def with_password(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("name", metavar="NAME", help="user name")
        sub.add_argument(
            "--password",
            metavar="P",
            help="the password (default: ask on the terminal, or read a line from stdin)",
        )
        sub.add_argument(
            "--scheme",
            default=None,
            metavar="S",
            help="password hashing scheme, e.g. ARGON2ID, BCRYPT, SHA512-CRYPT, "
            "SCRAM-SHA-256 (default: ARGON2ID)",
        )

    with_password(with_store(commands.add_parser("adduser", help="add a user")))
    with_password(with_store(commands.add_parser("passwd", help="change a user's password")))
    deluser = with_store(commands.add_parser("deluser", help="delete a user"))
    deluser.add_argument("name", metavar="NAME", help="user name")
    with_store(commands.add_parser("users", help="list the users, one per line"))

    gencert = commands.add_parser(
        "gencert", help="write a self-signed certificate and its private key"
    )
    gencert.add_argument(
        "--cert", required=True, metavar="FILE", help="certificate (PEM) to write"
    )
    gencert.add_argument("--key", required=True, metavar="FILE", help="private key (PEM) to write")
    gencert.add_argument(
        "--hostname",
        action="append",
        default=[],
        metavar="H",
        help="a host name or address the certificate is valid for "
        "(repeatable; default: localhost and 127.0.0.1)",
    )
    gencert.add_argument(
        "--days", type=int, default=365, metavar="N", help="validity in days (default: 365)"
    )
    for name, (_, summary) in SUBCOMMANDS.items():
        sub = commands.add_parser(
            name, add_help=False, help=f"{summary} ('mailhub {name} --help' for its options)"
        )
        sub.add_argument("rest", nargs=argparse.REMAINDER)
    return parser


def read_password(stdin: Any = None) -> str:
    """
    Ask for a new password twice on a terminal; read one line when standard
    input is not a terminal.  Raises L{CommandError} on mismatch or empty.
    """
    stdin = sys.stdin if stdin is None else stdin
    if stdin.isatty():
        password = getpass.getpass("New password: ")
        if password != getpass.getpass("Repeat password: "):
            raise CommandError("the passwords do not match")
    else:
        password = stdin.readline().rstrip("\r\n")
    if not password:
        raise CommandError("empty password")
    return password


async def run_account_command(args: argparse.Namespace) -> list[str]:
    """
    Run an account command (adduser, passwd, deluser, users) against
    C{args.store}; return the lines to print.  Needs a running reactor.
    """
    from twisted_mailhub.backends.registry import open_backend

    backend = open_backend(args.store)
    try:
        if args.command == "users":
            return [_user_name(user) for user in await backend.list_users()]
        if args.command == "deluser":
            if await backend.lookup_password(args.name) is None:
                raise CommandError(f"no such user: {args.name}")
            await backend.delete_user(args.name)
            return []
        hashed = args.hashed
        exists = await backend.lookup_password(args.name) is not None
        if args.command == "adduser":
            if exists:
                raise CommandError(f"user {args.name} already exists (use 'passwd')")
            await backend.add_user(args.name, hashed)
        else:
            if not exists:
                raise CommandError(f"no such user: {args.name} (use 'adduser')")
            await backend.set_password(args.name, hashed)
        return []
    finally:
        await backend.close()


def _user_name(user: Any) -> str:
    return user if isinstance(user, str) else getattr(user, "username", str(user))


def gencert(args: argparse.Namespace) -> None:
    """Write a self-signed certificate and key as C{args} says."""
    from twisted_mailhub.auth.tls import generate_self_signed

    if args.hostname:
        generate_self_signed(args.cert, args.key, hostnames=args.hostname, days=args.days)
    else:
        generate_self_signed(args.cert, args.key, days=args.days)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``mailhub`` console script; exits the process."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] and argv[0] in SUBCOMMANDS:
        import importlib

        module, _, function = SUBCOMMANDS[argv[0]][0].partition(":")
        sys.exit(getattr(importlib.import_module(module), function)(argv[1:]))
    args = parser.parse_args(argv)

    if args.command == "gencert":
        if args.days <= 0:
            parser.error("--days must be positive")
        try:
            gencert(args)
        except (OSError, ValueError) as e:
            _fail(str(e))
        print(f"wrote {args.cert} and {args.key}")
        sys.exit(0)

    try:
        kind = store_kind(args.store)
    except UnknownStoreURL as e:
        parser.error(str(e))
    if kind != "sql":
        parser.error(f"accounts are kept in an SQL store; {args.store!r} is not one")
    if args.command in ("adduser", "passwd") and args.password is None:
        try:
            args.password = read_password()
        except CommandError as e:
            _fail(str(e))
        except (EOFError, KeyboardInterrupt):
            _fail("no password given")
    if args.command in ("adduser", "passwd"):
        args.hashed = _hash(args.password, args.scheme)

    async def run(reactor: Any) -> None:
        try:
            lines = await run_account_command(args)
        except CommandError as e:
            _fail(str(e))
        for line in lines:
            print(line)

    task.react(lambda reactor: defer.ensureDeferred(run(reactor)))


def _hash(password: str, scheme: str | None) -> str:
    from twisted_mailhub.auth.schemes import DEFAULT_SCHEME, UnknownScheme, hash_password

    try:
        return hash_password(password, scheme or DEFAULT_SCHEME)
    except (UnknownScheme, ValueError) as e:
        _fail(f"cannot hash the password with {scheme or DEFAULT_SCHEME}: {e}")
        raise  # not reached: _fail exits


def _fail(message: str) -> None:
    print(f"{PROG}: {message}", file=sys.stderr)
    sys.exit(1)


if __name__ == "__main__":
    main()
