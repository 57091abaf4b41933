"""
What the admin subcommands share: the C{--config}/C{--store} options, the
check that a named user exists, and running a coroutine on the reactor
with the store opened and closed around it.

Exit statuses: 0 done, 1 the operation failed (one line on standard
error), 2 a usage error.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from typing import Any, Awaitable, Callable

from twisted.internet import defer, task
from twisted.python import usage

from twisted_mailhub.config import DEFAULT_STORE, MailhubSettings, settings_for_command
from twisted_mailhub.errors import MailhubError
from twisted_mailhub.interfaces import IBackend

PROG = "mailhub"


class AdminError(Exception):
    """A failure to report as one line on standard error (exit status 1)."""


def command_parser(name: str, description: str) -> argparse.ArgumentParser:
    """An argument parser for C{mailhub NAME} with C{--config} and C{--store}."""
    parser = argparse.ArgumentParser(prog=f"{PROG} {name}", description=description)
    parser.add_argument(
        "--config", metavar="FILE",
        help="the server's TOML configuration file; its store is used")
    parser.add_argument(
        "--store", metavar="URL",
        help=f"the store, replacing the configuration's (default: {DEFAULT_STORE})")
    return parser


def settings_of(parser: argparse.ArgumentParser, args: argparse.Namespace) -> MailhubSettings:
    """
    The settings C{args} select, as the server would read them; a usage
    error (exit status 2) for a bad file, a bad URL or the C{memory:} store,
    which exists only inside the process that opened it.
    """
    from twisted_mailhub.backends.registry import UnknownStoreURL, store_kind

    try:
        settings = settings_for_command(args.config, args.store)
        kind = store_kind(settings.store)
    except (usage.UsageError, UnknownStoreURL) as e:
        parser.error(str(e))
    if kind == "memory":
        parser.error("a memory: store lives only inside the server process that opened it; "
                     "name a persistent store")
    return settings


def run(work: Callable[[IBackend, MailhubSettings], Awaitable[int]],
        settings: MailhubSettings) -> int:
    """
    Open the store of C{settings} as the server does, run C{work(backend,
    settings)} on the reactor, close the store; return the exit status
    C{work} gave, or 1 after printing why it failed.
    """
    from twisted_mailhub.service import hide_password, open_configured_backend

    status: list[int] = []

    async def main(reactor: Any) -> None:
        try:
            backend = open_configured_backend(settings)
        except Exception as e:  # noqa: BLE001 - any failure to open is reported
            fail(f"cannot open store {hide_password(settings.store)}: {_first_line(e)}")
            status.append(1)
            return
        try:
            ready = getattr(backend, "ready", None)
            if ready is not None:
                await ready()
            status.append(await work(backend, settings))
        except AdminError as e:
            fail(str(e))
            status.append(1)
        except (MailhubError, LookupError, OSError) as e:
            fail(_first_line(e))
            status.append(1)
        except Exception:  # noqa: BLE001 - shown whole: it is a bug
            traceback.print_exc()
            status.append(1)
        finally:
            await backend.close()

    try:
        task.react(lambda reactor: defer.ensureDeferred(main(reactor)))
    except SystemExit:
        pass
    return status[0] if status else 1


def fail(message: str) -> None:
    """Print C{message} as this command's error line."""
    print(f"{PROG}: {message}", file=sys.stderr)


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]


async def require_user(backend: IBackend, settings: MailhubSettings, username: str) -> None:
    """
    Raise L{AdminError} unless C{username} is known: a trial user of the
    settings, a user of their password file, or one the store has mail or
    an account for.  (Opening a store creates the user's mail on first
    use, so a mistyped name would otherwise make a new, empty account.)
    Stores that cannot tell which users they hold accept every name.
    """
    if username in settings.users:
        return
    if settings.passwd:
        from twisted_mailhub.auth.passwd import PasswdFileChecker

        try:
            if username in PasswdFileChecker(settings.passwd).usernames():
                return
        except OSError as e:
            raise AdminError(str(e)) from None
    list_users = getattr(backend, "list_users", None)
    if list_users is None or username in await list_users():
        return
    raise AdminError(f"no such user: {username}")
