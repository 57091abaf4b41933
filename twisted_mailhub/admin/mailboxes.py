"""
``mailhub mailboxes`` and ``mailhub mailbox``: a user's mailboxes.

  mailhub mailboxes USER                     list them, with their counts
  mailhub mailbox create USER NAME [--special-use FLAG]...
  mailhub mailbox delete USER NAME
  mailhub mailbox rename USER OLD NEW
  mailhub mailbox stats USER NAME            every counter of one mailbox

Names are full names with ``/`` between levels (``Archive/2024``).  The
rules are the IMAP ones (RFC 3501 section 6.3): creating a name creates its
missing superiors, deleting a mailbox that has inferiors leaves its name as
a hierarchy-only node, renaming moves the inferiors along, and renaming
INBOX moves its messages into the new mailbox and leaves INBOX empty.
Sessions that have the mailbox selected are told, as for the same command
over IMAP.
"""

from __future__ import annotations

import argparse
from typing import Sequence

from twisted_mailhub.admin.common import command_parser, require_user, run, settings_of
from twisted_mailhub.config import MailhubSettings
from twisted_mailhub.interfaces import IBackend, IMailStore, IStatusQuery
from twisted_mailhub.model import MailboxStatus


def list_main(argv: Sequence[str]) -> int:
    """C{mailhub mailboxes USER}: one line per mailbox, with its counts."""
    parser = command_parser(
        "mailboxes", "List a user's mailboxes: messages, unseen messages, size in bytes "
        "and name; '-' marks a name that is only a level of the hierarchy.")
    parser.add_argument("user", metavar="USER")
    args = parser.parse_args(argv)
    settings = settings_of(parser, args)

    async def work(backend: IBackend, settings: MailhubSettings) -> int:
        await require_user(backend, settings, args.user)
        store = await backend.open_store(args.user)
        rows = [("MESSAGES", "UNSEEN", "SIZE", "MAILBOX")]
        for info in await store.list_mailboxes():
            name = info.name + (" " + " ".join(sorted(info.special_use))
                                if info.special_use else "")
            if not info.selectable:
                rows.append(("-", "-", "-", name))
                continue
            status = await mailbox_status(store, info.name)
            rows.append((str(status.messages), str(status.unseen), str(status.size), name))
        widths = [max(len(row[i]) for row in rows) for i in range(3)]
        for row in rows:
            print("  ".join(cell.rjust(width) for cell, width in zip(row, widths)) + "  " + row[3])
        return 0

    return run(work, settings)


async def mailbox_status(store: IMailStore, name: str) -> MailboxStatus:
    """STATUS of C{name}, in one step where the store offers it (L{IStatusQuery})."""
    query = IStatusQuery(store, None)
    if query is not None:
        return await query.mailbox_status(name)
    return await (await store.get_mailbox(name, read_only=True)).status()


def mailbox_main(argv: Sequence[str]) -> int:
    """C{mailhub mailbox ACTION USER NAME [NEW]}."""
    parser = argparse.ArgumentParser(
        prog="mailhub mailbox",
        description="Create, delete, rename a user's mailbox, or show its counters.")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    def action(name: str, summary: str) -> argparse.ArgumentParser:
        sub = command_parser(f"mailbox {name}", summary)
        sub = actions.add_parser(name, help=summary, description=summary,
                                 parents=[sub], add_help=False)
        sub.add_argument("user", metavar="USER")
        sub.add_argument("name", metavar="NAME", help="full mailbox name, e.g. Archive/2024")
        return sub

    create = action("create", "create a mailbox (and its missing superiors)")
    create.add_argument(
        "--special-use", action="append", default=[], metavar="FLAG",
        help="an RFC 6154 attribute such as \\Sent, \\Drafts, \\Trash, \\Junk, "
        "\\Archive (repeatable)")
    action("delete", "delete a mailbox and its messages")
    rename = action("rename", "rename a mailbox and its inferiors")
    rename.add_argument("new", metavar="NEW", help="the new full name")
    action("stats", "show a mailbox's counters")
    args = parser.parse_args(argv)
    settings = settings_of(parser, args)

    async def work(backend: IBackend, settings: MailhubSettings) -> int:
        await require_user(backend, settings, args.user)
        store = await backend.open_store(args.user)
        if args.action == "create":
            special = frozenset(flag if flag.startswith("\\") else "\\" + flag
                                for flag in args.special_use)
            await store.create_mailbox(args.name, special)
            print(f"created {args.name}")
        elif args.action == "delete":
            await store.delete_mailbox(args.name)
            print(f"deleted {args.name}")
        elif args.action == "rename":
            await store.rename_mailbox(args.name, args.new)
            print(f"renamed {args.name} to {args.new}")
        else:
            status = await mailbox_status(store, args.name)
            for label, value in (
                ("mailbox", args.name),
                ("messages", status.messages),
                ("unseen", status.unseen),
                ("recent", status.recent),
                ("deleted", status.deleted),
                ("size", status.size),
                ("uidvalidity", status.uidvalidity),
                ("uidnext", status.uidnext),
                ("highestmodseq", status.highestmodseq),
            ):
                print(f"{label}: {value}")
        return 0

    return run(work, settings)
