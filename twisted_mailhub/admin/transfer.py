"""
``mailhub import`` and ``mailhub export``: mail between a store and mbox
files or Maildir folders.

  mailhub import USER (--mbox FILE | --maildir DIR) [--folder NAME] [--quiet]
  mailhub export USER (--mbox FILE | --maildir DIR) [--folder NAME] [--quiet]

An mbox file is one mailbox: C{--folder} names it (default INBOX).  A
Maildir is a tree: its top folder is INBOX, or C{--folder}; its Maildir++
folders (C{.Sent}, C{.Archive.2024}) become the mailboxes of the same
names, below C{--folder} when one is given.  Export writes the same
shapes: a new mbox file of one mailbox, or a Maildir++ tree of every
mailbox (of C{--folder} and its inferiors).  Flags, keywords and
INTERNALDATE travel with each message (see L{twisted_mailhub.admin.mboxfile}
and L{twisted_mailhub.admin.maildir}).

Messages stream: import appends batches of at most L{BATCH} messages or
L{BATCH_BYTES} bytes (each batch is durable when its APPEND returns), and
export reads and writes a batch at a time, so memory does not grow with
the mailbox.  File work runs in threads, off the reactor.
"""

from __future__ import annotations

import argparse
import os
from typing import Any, AsyncIterator, Callable, Iterator, Sequence

from twisted.internet.threads import deferToThread

from twisted_mailhub.admin.common import (
    AdminError,
    command_parser,
    require_user,
    run,
    settings_of,
)
from twisted_mailhub.admin.progress import Progress
from twisted_mailhub.config import MailhubSettings
from twisted_mailhub.errors import MailboxExists, MailboxNotFound, MailhubError, MessageExpunged
from twisted_mailhub.interfaces import IBackend, IBulkMessageAccess, IMailbox, IMailStore
from twisted_mailhub.model import AppendRequest

#: Messages per APPEND on import, and per read on export.
BATCH = 100
#: Bytes of content per APPEND (one larger message goes alone).
BATCH_BYTES = 4 * 1024 * 1024


def _parser(name: str, description: str, direction: str) -> argparse.ArgumentParser:
    parser = command_parser(name, description)
    parser.add_argument("user", metavar="USER")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--mbox", metavar="FILE", help=f"an mbox file {direction}")
    source.add_argument("--maildir", metavar="DIR",
                        help=f"a Maildir (with its Maildir++ folders) {direction}")
    parser.add_argument(
        "--folder", metavar="NAME",
        help="the mailbox: of the mbox file (default INBOX), or of the top of the Maildir, "
        "its folders below it (default: INBOX, its folders at the top level)")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="print neither progress nor summary")
    return parser


# -- import ---------------------------------------------------------------------


def import_main(argv: Sequence[str]) -> int:
    """C{mailhub import}: returns the exit status."""
    parser = _parser(
        "import", "Import mail from an mbox file or a Maildir tree into a user's mailboxes, "
        "keeping flags and dates.  Mailboxes are created as needed; messages are added "
        "to what they already hold.", "to read")
    args = parser.parse_args(argv)
    settings = settings_of(parser, args)

    async def work(backend: IBackend, settings: MailhubSettings) -> int:
        await require_user(backend, settings, args.user)
        store = await backend.open_store(args.user)
        plan = await deferToThread(_import_plan, args, store.delimiter)
        progress = Progress("imported", quiet=args.quiet)
        try:
            for name, open_reader in plan:
                await _import_one(store, name, open_reader, progress)
        finally:
            progress.finish(f"into {progress.mailboxes} mailbox(es) of {args.user}")
        return 0

    return run(work, settings)


def _import_plan(args: argparse.Namespace, delimiter: str
                 ) -> list[tuple[str, Callable[[], Any]]]:
    """C{(mailbox name, reader factory)} for each folder of the source."""
    from twisted_mailhub.admin import maildir
    from twisted_mailhub.admin.mboxfile import MboxReader

    if args.mbox is not None:
        if not os.path.isfile(args.mbox):
            raise AdminError(f"no such mbox file: {args.mbox}")
        return [(args.folder or "INBOX", lambda: MboxReader(args.mbox))]
    if not os.path.isdir(args.maildir):
        raise AdminError(f"no such directory: {args.maildir}")
    folders = maildir.tree(args.maildir)
    if not folders:
        raise AdminError(f"{args.maildir} is not a Maildir (it has no cur and new directories)")
    plan = []
    for levels, path in folders:
        top = [args.folder] if args.folder else ([] if levels else ["INBOX"])
        plan.append((delimiter.join(top + levels),
                     lambda path=path: maildir.MaildirReader(path)))
    return plan


async def _import_one(store: IMailStore, name: str, open_reader: Callable[[], Any],
                      progress: Progress) -> None:
    try:
        reader = await deferToThread(open_reader)
    except (OSError, ValueError) as e:
        raise AdminError(str(e)) from None
    try:
        mailbox = await _target(store, name)
        progress.mailbox(name, getattr(reader, "count", None), reader.size)
        messages = iter(reader)
        while True:
            batch = await deferToThread(_take, messages)
            if not batch:
                return
            try:
                await mailbox.append([
                    AppendRequest(m.content, m.flags, m.internaldate) for m in batch])
            except MailhubError as e:
                raise AdminError(f"{name}: {e.message} (stopped after "
                                 f"{progress.messages} imported messages)") from None
            progress.advance(len(batch), sum(m.stored_size for m in batch))
    finally:
        await deferToThread(reader.close)


def _take(messages: Iterator[Any]) -> list[Any]:
    batch, size = [], 0
    for message in messages:
        batch.append(message)
        size += len(message.content)
        if len(batch) >= BATCH or size >= BATCH_BYTES:
            break
    return batch


async def _target(store: IMailStore, name: str) -> IMailbox:
    """The mailbox C{name}, created (with its superiors) if missing."""
    try:
        return await store.get_mailbox(name)
    except MailboxNotFound:
        pass
    try:
        await store.create_mailbox(name)
    except MailboxExists:
        pass  # created meanwhile, or a name of the hierarchy only
    return await store.get_mailbox(name)


# -- export ---------------------------------------------------------------------


def export_main(argv: Sequence[str]) -> int:
    """C{mailhub export}: returns the exit status."""
    parser = _parser(
        "export", "Export a user's mail, with flags and dates, as a new mbox file (one "
        "mailbox) or into a Maildir tree (every mailbox, or one and its inferiors).",
        "to write (an mbox file must not exist yet)")
    args = parser.parse_args(argv)
    settings = settings_of(parser, args)

    async def work(backend: IBackend, settings: MailhubSettings) -> int:
        await require_user(backend, settings, args.user)
        store = await backend.open_store(args.user)
        plan = await _export_plan(store, args)
        progress = Progress("exported", quiet=args.quiet)
        target = args.mbox if args.mbox is not None else args.maildir
        try:
            for name, open_writer in plan:
                await _export_one(store, name, open_writer, progress)
        finally:
            progress.finish(f"from {progress.mailboxes} mailbox(es) of {args.user} to {target}")
        return 0

    return run(work, settings)


async def _export_plan(store: IMailStore, args: argparse.Namespace
                       ) -> list[tuple[str, Callable[[], Any]]]:
    """C{(mailbox name, writer factory)} for each mailbox to export."""
    from twisted_mailhub.admin import maildir
    from twisted_mailhub.admin.mboxfile import MboxWriter

    infos = {info.name: info for info in await store.list_mailboxes()}
    if args.mbox is not None:
        name = args.folder or "INBOX"
        if name not in infos or not infos[name].selectable:
            raise MailboxNotFound(f"Mailbox does not exist: {name}")
        if os.path.lexists(args.mbox):
            raise AdminError(f"{args.mbox} exists; export writes a new mbox file")
        return [(name, lambda: MboxWriter(args.mbox))]
    delimiter = store.delimiter
    base = args.folder
    if base is not None and base not in infos:
        raise MailboxNotFound(f"Mailbox does not exist: {base}")
    plan = []
    for name, info in sorted(infos.items()):
        if not info.selectable:
            continue
        if base is not None:
            if name == base:
                levels: list[str] = []
            elif name.startswith(base + delimiter):
                levels = name[len(base) + 1:].split(delimiter)
            else:
                continue
        else:
            levels = [] if name == "INBOX" else name.split(delimiter)
        try:
            path = (args.maildir if not levels
                    else os.path.join(args.maildir, maildir.folder_entry(levels)))
        except ValueError as e:
            raise AdminError(f"{e}; export that mailbox alone with --folder") from None
        plan.append((name, lambda path=path, levels=levels:
                     maildir.MaildirWriter(path, folder=bool(levels))))
    return plan


async def _export_one(store: IMailStore, name: str, open_writer: Callable[[], Any],
                      progress: Progress) -> None:
    mailbox = await store.get_mailbox(name, read_only=True)
    status = await mailbox.status()
    uids = await mailbox.uids()
    try:
        writer = await deferToThread(open_writer)
    except OSError as e:
        raise AdminError(str(e)) from None
    try:
        progress.mailbox(name, len(uids), status.size)
        bulk = IBulkMessageAccess(mailbox, None)
        for start in range(0, len(uids), BATCH):
            wanted = uids[start:start + BATCH]
            pending: list[tuple[bytes, Any]] = []
            held = 0
            async for message in _opened(mailbox, bulk, wanted):
                try:
                    content = await message.read()
                except MessageExpunged:
                    continue  # expunged meanwhile
                pending.append((content, message.meta))
                held += len(content)
                if held >= BATCH_BYTES:
                    await deferToThread(_write_all, writer, pending)
                    progress.advance(len(pending), held)
                    pending, held = [], 0
            if pending:
                await deferToThread(_write_all, writer, pending)
                progress.advance(len(pending), held)
    finally:
        await deferToThread(writer.close)


async def _opened(mailbox: IMailbox, bulk: Any, uids: list[int]) -> AsyncIterator[Any]:
    """
    The messages of C{uids} that still exist: opened together where the
    store can (L{IBulkMessageAccess}, which reads only small contents up
    front), else one at a time, so that at most one content is held.
    """
    if bulk is not None:
        for message in await bulk.open_messages(uids):
            yield message
        return
    for uid in uids:
        try:
            message = await mailbox.open_message(uid)
        except MessageExpunged:
            continue
        yield message


def _write_all(writer: Any, pending: list[tuple[bytes, Any]]) -> None:
    for content, meta in pending:
        writer.write(content, meta.flags, meta.internaldate)
