"""
Copying one account from a L{SourceServer} into a store, folder by folder.

Runs on the reactor: the source's blocking calls go to a thread, the
store is used through L{IMailStore} and L{IMailbox}.  For each folder the
target mailbox takes the source's UIDVALIDITY and UIDs when it can
(L{IRestorableMailbox}, and the mailbox is new or already has that
UIDVALIDITY); otherwise messages get new UIDs and the output says so.
Messages already there are recognised (L{twisted_mailhub.sync.plan}) and
only get their flags brought up to date.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, TextIO

from twisted.internet import threads
from twisted.internet.defer import Deferred

from twisted_mailhub.errors import IdentityConflict, MailboxNotFound, MailhubError
from twisted_mailhub.interfaces import IMailbox, IMailStore, IRestorableMailbox
from twisted_mailhub.model import AppendRequest, MessageMeta
from twisted_mailhub.sync import plan
from twisted_mailhub.sync.source import (
    ConnectionLost,
    FolderState,
    SourceError,
    SourceFolder,
    SourceMessage,
    SourceServer,
)
from twisted_mailhub.sync.wire import WireError, message_id

#: Bytes of message content one batch holds at most (a larger message goes alone).
BATCH_BYTES = 8 * 2**20

#: Bytes read from the start of a target message to find its Message-ID.
HEADER_READ = 64 * 1024


@dataclass
class SyncOptions:
    """What the command line asked for."""

    folders: tuple[str, ...] = ()
    dry_run: bool = False
    batch: int = 100
    batch_bytes: int = BATCH_BYTES


@dataclass
class FolderResult:
    """What one folder's sync did (or, in a dry run, would do)."""

    copied: int = 0
    present: int = 0
    flags_updated: int = 0
    new_uids: int = 0
    vanished: int = 0


@dataclass
class Outcome:
    """The run as a whole: totals and the folders that failed."""

    folders: int = 0
    copied: int = 0
    failed: list[str] = field(default_factory=list)
    interrupted: bool = False
    lost: bool = False


class Migration:
    """One run of C{mailhub sync}: the source connection, the target tree, the options."""

    def __init__(self, source: SourceServer, store: IMailStore, options: SyncOptions,
                 out: TextIO, err: TextIO,
                 in_thread: Callable[..., Deferred] = threads.deferToThread) -> None:
        self.source = source
        self.store = store
        self.options = options
        self.out = out
        self.err = err
        self._in_thread = in_thread
        #: Set (by a first Ctrl-C) to stop at the end of the current batch.
        self.stopping = False

    def say(self, line: str) -> None:
        self.out.write(line + "\n")
        self.out.flush()

    def warn(self, line: str) -> None:
        self.err.write(f"mailhub sync: {line}\n")
        self.err.flush()

    async def _source(self, method: Callable[..., Any], *args: Any) -> Any:
        return await self._in_thread(method, *args)

    # -- the whole account ---------------------------------------------------

    async def run(self) -> Outcome:
        """Every chosen folder, then the subscriptions."""
        outcome = Outcome()
        folders = await self._source(self.source.folders)
        chosen = self._chosen(folders, outcome)
        for folder in chosen:
            if self.stopping:
                outcome.interrupted = True
                break
            if not folder.selectable:
                continue
            target = self._target_name(folder)
            if target is None:
                outcome.failed.append(folder.name)
                continue
            try:
                result = await self.folder(folder, target)
            except ConnectionLost as e:
                self.warn(f"{folder.name}: {e}")
                outcome.failed.append(folder.name)
                outcome.lost = True
                break
            except (SourceError, WireError, MailhubError, OSError, ValueError) as e:
                self.warn(f"{folder.name}: {e}")
                outcome.failed.append(folder.name)
                continue
            outcome.folders += 1
            outcome.copied += result.copied
        if self.stopping:
            outcome.interrupted = True
        elif not outcome.lost:
            await self._hierarchy_only(chosen)
            await self._subscriptions(chosen, outcome)
        return outcome

    def _chosen(self, folders: list[SourceFolder], outcome: Outcome) -> list[SourceFolder]:
        wanted = {name.upper() if name.upper() == "INBOX" else name
                  for name in self.options.folders}
        if wanted:
            known = {folder.name for folder in folders}
            for name in sorted(wanted - known):
                self.warn(f"{name}: no such folder on the source")
                outcome.failed.append(name)
            folders = [folder for folder in folders if folder.name in wanted]
        # INBOX first, then parents before their children.
        return sorted(folders, key=lambda f: (f.levels[0] != "INBOX", f.levels))

    def _target_name(self, folder: SourceFolder) -> str | None:
        delimiter = self.store.delimiter
        if len(folder.levels) > 1 and any(delimiter in level for level in folder.levels):
            self.warn(f"{folder.name}: a level of this name holds {delimiter!r}, the hierarchy "
                      "delimiter here; rename it on the source first")
            return None
        return delimiter.join(folder.levels)

    # -- one folder ------------------------------------------------------------

    async def folder(self, folder: SourceFolder, name: str) -> FolderResult:
        """Bring the target's mailbox C{name} up to date with C{folder}."""
        state: FolderState = await self._source(self.source.examine, folder)
        listing: list[SourceMessage] = await self._source(self.source.listing, state.exists)
        label = folder.name if folder.name == name else f"{folder.name} -> {name}"
        mailbox = await self._mailbox(name, folder)
        targets = [] if mailbox is None else await mailbox.metadata(await mailbox.uids())
        keep, reason, uidnext = await self._identity(mailbox, state, listing, targets)
        if keep:
            self.say(f"{label}: {len(listing)} messages; UIDVALIDITY {state.uidvalidity} "
                     "and UIDs kept")
        else:
            self.say(f"{label}: {len(listing)} messages; UIDs not kept ({reason}): "
                     "copies get new UIDs")
        if keep:
            pairs, missing, others = plan.match_by_uid(listing, targets)
        else:
            pairs, missing, others = [], listing, targets
        if missing and others and mailbox is not None:
            found, missing = plan.match_by_fingerprint(
                missing, await self._with_message_ids(mailbox, others))
            pairs += found
        result = FolderResult(present=len(pairs))
        for flags, uids in sorted(plan.flag_changes(pairs).items(), key=lambda kv: kv[1][0]):
            if mailbox is not None and not self.options.dry_run:
                await mailbox.store_flags(uids, "set", flags)
            result.flags_updated += len(uids)
        items = plan.assign_uids(missing, keep, uidnext)
        result.new_uids = sum(1 for _, wanted in items if wanted is None) if keep else 0
        await self._copy(label, mailbox, items, result)
        if keep and mailbox is not None and not self.options.dry_run and not self.stopping:
            highest = max((m.uid for m in listing), default=0)
            await IRestorableMailbox(mailbox).restore_identity(
                state.uidvalidity, max(state.uidnext or 1, highest + 1))
        verb = "would be " if self.options.dry_run else ""
        line = (f"{label}: {result.copied} {verb}copied, {result.present} already there, "
                f"{result.flags_updated} {verb}with flags updated")
        if result.new_uids:
            line += f", {result.new_uids} under new UIDs"
        if result.vanished:
            line += f", {result.vanished} gone from the source meanwhile"
        self.say(line + (" (interrupted)" if self.stopping else ""))
        return result

    async def _mailbox(self, name: str, folder: SourceFolder) -> IMailbox | None:
        """The target mailbox, created when missing (C{None} in a dry run)."""
        try:
            return await self.store.get_mailbox(name, read_only=self.options.dry_run)
        except MailboxNotFound:
            if self.options.dry_run:
                return None
        await self.store.create_mailbox(name, special_use=folder.special_use)
        return await self.store.get_mailbox(name)

    async def _identity(self, mailbox: IMailbox | None, state: FolderState,
                        listing: list[SourceMessage], targets: list[MessageMeta],
                        ) -> tuple[bool, str, int]:
        """Whether UIDs are kept, why not, and the target's UIDNEXT."""
        if mailbox is None:
            return True, "", 1
        restorable = IRestorableMailbox(mailbox, None)
        status = await mailbox.status()
        if restorable is None:
            return False, "this store cannot take another server's UIDs", status.uidnext
        if status.uidvalidity == state.uidvalidity:
            clashes = plan.uid_clashes(listing, targets)
            if clashes:
                return (False, f"UIDVALIDITY {status.uidvalidity} is the same here by chance: "
                        f"{clashes} messages here hold the source's UIDs", status.uidnext)
            return True, "", status.uidnext
        if status.messages:
            return (False, f"the mailbox here already holds {status.messages} messages "
                    f"under UIDVALIDITY {status.uidvalidity}", status.uidnext)
        if self.options.dry_run:
            return True, "", 1
        try:
            status = await restorable.restore_identity(state.uidvalidity, 1)
        except IdentityConflict:
            return (False, f"the mailbox here has held messages under UIDVALIDITY "
                    f"{status.uidvalidity}", status.uidnext)
        return True, "", status.uidnext

    async def _with_message_ids(self, mailbox: IMailbox, metas: list[MessageMeta],
                                ) -> list[tuple[MessageMeta, str | None]]:
        out = []
        for meta in metas:
            try:
                head = await (await mailbox.open_message(meta.uid)).read(0, HEADER_READ)
            except MailhubError:
                continue
            out.append((meta, message_id(head)))
        return out

    async def _copy(self, label: str, mailbox: IMailbox | None,
                    items: list[tuple[SourceMessage, int | None]], result: FolderResult) -> None:
        """Fetch and append C{items} batch by batch, fetching the next while storing one."""
        total = len(items)
        if self.options.dry_run:
            result.copied = total
            return
        runs = list(plan.batches(items, self.options.batch, self.options.batch_bytes))
        if not runs:
            return
        assert mailbox is not None
        pending: Deferred | None = self._fetch(runs[0])
        for i, run in enumerate(runs):
            bodies = await pending
            pending = self._fetch(runs[i + 1]) if i + 1 < len(runs) and not self.stopping else None
            requests = []
            for message, wanted in run:
                body = bodies.get(message.uid)
                if body is None:
                    result.vanished += 1
                    continue
                requests.append(AppendRequest(body, message.flags, message.internaldate, wanted))
            try:
                await mailbox.append(requests)
            except BaseException:
                if pending is not None:
                    await _quietly(pending)
                raise
            result.copied += len(requests)
            self.say(f"{label}: {result.copied} of {total} copied")
            if self.stopping:
                if pending is not None:
                    await _quietly(pending)
                return

    def _fetch(self, run: list[tuple[SourceMessage, int | None]]) -> Deferred:
        return self._in_thread(self.source.bodies, [message.uid for message, _ in run])

    # -- after the folders -------------------------------------------------------

    async def _hierarchy_only(self, chosen: list[SourceFolder]) -> None:
        """
        Names that are only hierarchy on the source (\\Noselect) become
        hierarchy-only here too when they were made only as superiors of
        others, empty and never used (RFC 3501 section 6.3.4: DELETE of a
        mailbox with inferiors leaves the name, not selectable).
        """
        if self.options.dry_run:
            return
        for folder in chosen:
            if folder.selectable:
                continue
            name = self._target_name(folder)
            if name is None:
                continue
            infos = {info.name: info for info in await self.store.list_mailboxes()}
            info = infos.get(name)
            has_children = any(other.startswith(name + self.store.delimiter) for other in infos)
            if info is None or not info.selectable or not has_children:
                continue
            status = await (await self.store.get_mailbox(name)).status()
            if status.messages == 0 and status.uidnext == 1:
                await self.store.delete_mailbox(name)

    async def _subscriptions(self, chosen: list[SourceFolder], outcome: Outcome) -> None:
        wanted = {folder.name for folder in chosen} if self.options.folders else None
        try:
            subscribed = await self._source(self.source.subscriptions)
        except (SourceError, WireError) as e:
            self.warn(f"subscriptions: {e}")
            outcome.failed.append("subscriptions")
            return
        have = await self.store.subscriptions()
        added = 0
        for folder in subscribed:
            if wanted is not None and folder.name not in wanted:
                continue
            name = self._target_name(folder)
            if name is None or name in have:
                continue
            if not self.options.dry_run:
                await self.store.subscribe(name)
            added += 1
        verb = "would be " if self.options.dry_run else ""
        self.say(f"subscriptions: {added} {verb}added")


async def _quietly(pending: Deferred) -> None:
    try:
        await pending
    except Exception:  # noqa: BLE001 - the first failure is the one reported
        pass
