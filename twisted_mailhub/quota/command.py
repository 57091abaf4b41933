"""
``mailhub quota USER``: show a user's quota, or set it.

  mailhub quota USER [--config FILE] [--store URL]
  mailhub quota USER --storage SIZE --messages N [--config FILE] [--store URL]

Without ``--storage`` or ``--messages`` it prints the user's usage and
limits, and where each limit comes from.  With them it sets the user's own
limits in the store (the SQL store keeps them in its users table): a size
such as ``2G`` or a count, ``unlimited`` for none whatever the default, or
``default`` to follow the server's default again.  Other stores keep no
per-user limits; those go in the configuration file, ``[quota.users.NAME]``.

Exit status: 0 done, 1 the operation failed, 2 a usage error.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Sequence

from twisted.internet import defer, task
from twisted.python import usage

from twisted_mailhub.errors import MailhubError
from twisted_mailhub.interfaces import IBackend, IQuotaLimits
from twisted_mailhub.quota.limits import (
    RESOURCES,
    QuotaLimits,
    format_octets,
    parse_message_limit,
    parse_storage_limit,
)
from twisted_mailhub.quota.usage import measure

PROG = "mailhub quota"
DEFAULT_WORD = "default"


class QuotaCommandError(Exception):
    """A failure to report as one line on standard error (exit status 1)."""


def build_parser() -> argparse.ArgumentParser:
    """The arguments of ``mailhub quota``."""
    from twisted_mailhub.config import DEFAULT_STORE

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Show a user's quota usage and limits, or set the user's own limits.")
    parser.add_argument("user", metavar="USER", help="the user name")
    parser.add_argument(
        "--storage", metavar="SIZE",
        help="total size of the user's messages: e.g. 500M or 2G, 'unlimited', or "
             "'default' to follow the server's default")
    parser.add_argument(
        "--messages", metavar="N",
        help="number of messages: a count, 'unlimited', or 'default'")
    parser.add_argument(
        "--config", metavar="FILE",
        help="the server's TOML configuration file (its store and default quota)")
    parser.add_argument(
        "--store", metavar="URL",
        help=f"the store, replacing the configuration's (default: {DEFAULT_STORE})")
    return parser


def parse_changes(args: argparse.Namespace, parser: argparse.ArgumentParser,
                  ) -> tuple[dict[str, int | None], list[str]]:
    """C{(limits, reset)} from C{--storage}/C{--messages}; a usage error if malformed."""
    limits: dict[str, int | None] = {}
    reset: list[str] = []
    for name, parse in (("storage", parse_storage_limit), ("messages", parse_message_limit)):
        value = getattr(args, name)
        if value is None:
            continue
        if value.strip().lower() == DEFAULT_WORD:
            reset.append(name)
            continue
        try:
            limits[name] = parse(value)
        except ValueError as e:
            parser.error(f"--{name}: {e}")
    return limits, reset


async def show(backend: Any, settings: Any, username: str) -> list[str]:
    """The lines describing C{username}'s quota: one per resource."""
    from twisted_mailhub.quota.proxy import QuotaBackend

    own = IQuotaLimits(backend, None)
    kept = await own.quota_limits(username) if own is not None else {}
    configured = settings.quota.users.get(username, {})
    limits: QuotaLimits = settings.quota.limits_for(username, kept)
    raw = backend.inner if isinstance(backend, QuotaBackend) else backend
    usage = await measure(await raw.open_store(username))
    lines = []
    for name in RESOURCES:
        used = usage.storage if name == "storage" else usage.messages
        limit = getattr(limits, name)
        if name in kept:
            source = "set with 'mailhub quota'"
        elif name in configured:
            source = "configuration file"
        else:
            source = "server default"
        if name == "storage":
            text = f"{used} octets"
            text += " of unlimited" if limit is None else f" of {limit} ({format_octets(limit)})"
        else:
            text = f"{used} of " + ("unlimited" if limit is None else str(limit))
        lines.append(f"{name}: {text}, {source}")
    return lines


async def run(backend: IBackend, settings: Any, args: argparse.Namespace,
              limits: dict[str, int | None], reset: list[str]) -> list[str]:
    """Check the user, apply the changes, and return the lines to print."""
    list_users = getattr(backend, "list_users", None)
    if list_users is not None and args.user not in await list_users():
        raise QuotaCommandError(f"no such user: {args.user}")
    if limits or reset:
        own = IQuotaLimits(backend, None)
        if own is None:
            raise QuotaCommandError(
                f"the store {settings.store} keeps no per-user limits; set them in the "
                f"configuration file under [quota.users.{args.user}]")
        try:
            await own.set_quota_limits(args.user, limits, reset)
        except LookupError:
            raise QuotaCommandError(f"no such user: {args.user}") from None
    return await show(backend, settings, args.user)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``mailhub quota``; returns the exit status."""
    from twisted_mailhub.backends.registry import UnknownStoreURL, store_kind
    from twisted_mailhub.config import settings_for_command
    from twisted_mailhub.service import hide_password, open_configured_backend

    parser = build_parser()
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        settings = settings_for_command(args.config, args.store)
        kind = store_kind(settings.store)
    except (usage.UsageError, UnknownStoreURL) as e:
        parser.error(str(e))
    if kind == "memory":
        parser.error("a memory: store lives only inside the server process that opened it; "
                     "name a persistent store")
    limits, reset = parse_changes(args, parser)
    status: list[int] = []

    async def work(reactor: Any) -> None:
        try:
            backend = open_configured_backend(settings)
        except Exception as e:  # noqa: BLE001 - any failure to open is reported
            _fail(f"cannot open store {hide_password(settings.store)}: {e}")
            status.append(1)
            return
        try:
            ready = getattr(backend, "ready", None)
            if ready is not None:
                try:
                    await ready()
                except Exception as e:  # noqa: BLE001 - unreachable, schema too new, ...
                    raise QuotaCommandError(
                        f"cannot open store {hide_password(settings.store)}: {_first_line(e)}")
            for line in await run(backend, settings, args, limits, reset):
                print(line)
            status.append(0)
        except (QuotaCommandError, MailhubError, LookupError, OSError) as e:
            _fail(_first_line(e))
            status.append(1)
        finally:
            await backend.close()

    try:
        task.react(lambda reactor: defer.ensureDeferred(work(reactor)))
    except SystemExit:
        pass
    return status[0] if status else 1


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]


def _fail(message: str) -> None:
    print(f"mailhub: {message}", file=sys.stderr)
