"""
``mailhub sync``: move an account from another IMAP server into the store,
keeping UIDVALIDITY, UIDs, flags, keywords and INTERNALDATE where the
target can keep them.

  mailhub sync --from imaps://USER@HOST[:PORT] (--config FILE | --store URL)
               [--to-user NAME] [--password-file FILE] [--cafile FILE | --insecure]
               [--folder NAME]... [--batch N] [--dry-run]

The password is read from C{--password-file} (its first line), from the
environment variable C{MAILHUB_SYNC_PASSWORD}, or asked for on the
terminal.  Running the command again after an interruption copies only
what is still missing and brings flags up to date.  The modules:
L{source} (the server read from), L{wire} (its responses), L{plan} (what
to do per folder) and L{migrate} (doing it).

Exit status: 0 when every folder was brought up to date, 1 when one
failed or the run was interrupted, 2 for a usage error.
"""

from __future__ import annotations

import argparse
import getpass
import os
import signal
import sys
import traceback
from typing import Any, Sequence

from twisted.internet import defer, task
from twisted.python import usage

PROG = "mailhub sync"
PASSWORD_VARIABLE = "MAILHUB_SYNC_PASSWORD"


def build_parser() -> argparse.ArgumentParser:
    """The options of C{mailhub sync}."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Copy an account from another IMAP server into this server's store, "
        "keeping UIDVALIDITY, UIDs, flags and dates where possible.  Safe to run again: "
        "only what is missing is copied.")
    parser.add_argument("--from", dest="source", required=True, metavar="URL",
                        help="the server to copy from: imap://USER@HOST[:PORT] (STARTTLS "
                        "when offered) or imaps://USER@HOST[:PORT]")
    parser.add_argument("--to-user", metavar="NAME",
                        help="the account to fill here (default: the source's user name)")
    parser.add_argument("--password-file", metavar="FILE",
                        help=f"read the source password from FILE's first line (default: "
                        f"${PASSWORD_VARIABLE}, else ask on the terminal)")
    trust = parser.add_mutually_exclusive_group()
    trust.add_argument("--cafile", metavar="FILE",
                       help="trust this CA or self-signed certificate for the source")
    trust.add_argument("--insecure", action="store_true",
                       help="do not check the source's certificate, and allow logging in "
                       "without TLS to a server that is not on this machine")
    parser.add_argument("--folder", action="append", default=[], metavar="NAME",
                        help="copy only this folder, named as on the source (repeatable)")
    parser.add_argument("--batch", type=int, default=100, metavar="N",
                        help="messages fetched and stored at a time (default: 100)")
    parser.add_argument("--dry-run", action="store_true",
                        help="say what would be copied and changed, change nothing")
    parser.add_argument("--config", metavar="FILE",
                        help="the server's TOML configuration file; its store is filled")
    parser.add_argument("--store", metavar="URL",
                        help="the store to fill, replacing the configuration's")
    return parser


def read_password(args: argparse.Namespace) -> str:
    """The source password, from the file, the environment or the terminal."""
    if args.password_file:
        with open(args.password_file, encoding="utf-8") as f:
            password = f.readline().rstrip("\r\n")
    elif os.environ.get(PASSWORD_VARIABLE):
        password = os.environ[PASSWORD_VARIABLE]
    elif sys.stdin.isatty():
        password = getpass.getpass(f"Password of {args.url.user} on {args.url.host}: ")
    else:
        raise ValueError(f"no password: give --password-file or set ${PASSWORD_VARIABLE}")
    if not password:
        raise ValueError("the password is empty")
    return password


def main(argv: Sequence[str] | None = None) -> int:
    """Run C{mailhub sync} with C{argv}; return the exit status."""
    from twisted_mailhub.backends.registry import UnknownStoreURL, store_kind
    from twisted_mailhub.config import settings_for_command
    from twisted_mailhub.sync.source import SourceError, SourceServer, SourceURL, tls_context

    parser = build_parser()
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        args.url = SourceURL.parse(args.source)
    except ValueError as e:
        parser.error(str(e))
    if args.batch < 1:
        parser.error("--batch must be at least 1")
    if not (args.config or args.store):
        parser.error("name the store to fill: --config FILE or --store URL")
    try:
        settings = settings_for_command(args.config, args.store)
        kind = store_kind(settings.store)
    except (usage.UsageError, UnknownStoreURL) as e:
        parser.error(str(e))
    if kind == "memory":
        parser.error("a memory: store lives only inside the process that opened it")
    try:
        password = read_password(args)
        context = tls_context(args.cafile, args.insecure)
    except (OSError, ValueError) as e:
        _fail(str(e))
        return 1
    try:
        source = SourceServer(args.url, password, context, insecure=args.insecure)
    except SourceError as e:
        _fail(str(e))
        return 1
    print(f"logged in to {args.url}" + ("" if source.encrypted else " (without TLS)"),
          flush=True)
    status: list[int] = []
    try:
        task.react(lambda reactor: defer.ensureDeferred(_run(source, settings, args, status)))
    except SystemExit:
        pass
    finally:
        source.close()
    return status[0] if status else 1


async def _run(source: Any, settings: Any, args: argparse.Namespace, status: list[int]) -> None:
    from twisted_mailhub.service import hide_password, open_configured_backend
    from twisted_mailhub.sync.migrate import Migration, SyncOptions

    try:
        backend = open_configured_backend(settings)
    except Exception as e:  # noqa: BLE001 - any failure to open is reported
        _fail(f"cannot open store {hide_password(settings.store)}: {e}")
        status.append(1)
        return
    try:
        ready = getattr(backend, "ready", None)
        if ready is not None:
            await ready()
        store = await backend.open_store(args.to_user or args.url.user)
        options = SyncOptions(folders=tuple(args.folder), dry_run=args.dry_run,
                              batch=args.batch)
        migration = Migration(source, store, options, sys.stdout, sys.stderr)
        _stop_on_interrupt(migration)
        outcome = await migration.run()
    except Exception as e:  # noqa: BLE001 - a failure outside any one folder
        if isinstance(e, (OSError, LookupError)) or type(e).__module__.startswith(
                "twisted_mailhub"):
            _fail(str(e) or type(e).__name__)
        else:
            traceback.print_exc()
        status.append(1)
        return
    finally:
        await backend.close()
    if outcome.interrupted:
        _fail("interrupted; run the same command again to continue")
    elif outcome.lost:
        _fail("the connection to the source was lost; run the same command again to continue")
    elif outcome.failed:
        _fail(f"not done: {', '.join(outcome.failed)}")
    else:
        verb = "would copy" if args.dry_run else "copied"
        print(f"done: {outcome.folders} folders, {verb} {outcome.copied} messages", flush=True)
    status.append(1 if outcome.interrupted or outcome.failed else 0)


def _stop_on_interrupt(migration: Any) -> None:
    """
    The first Ctrl-C lets the batch being stored finish and stops there;
    a second one leaves at once (what was stored stays; the next run
    continues from it).
    """

    def interrupted(signum: int, frame: Any) -> None:
        if migration.stopping:
            os._exit(130)
        migration.stopping = True
        print("stopping after this batch (Ctrl-C again to stop at once)", file=sys.stderr,
              flush=True)

    signal.signal(signal.SIGINT, interrupted)


def _fail(message: str) -> None:
    print(f"mailhub sync: {message}", file=sys.stderr, flush=True)


__all__ = ["main", "build_parser"]
