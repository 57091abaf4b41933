"""
Synchronous operations on one Maildir folder.

A L{Folder} exists only inside L{open_folder}, which holds the folder's
lock within this process and first brings the folder up to date
(L{SyncedFolder.sync}).  Every change is made under
C{dovecot-uidlist.lock} (L{SyncedFolder.lock_now}).  Each operation
collects the mailbox events it causes in L{Folder.events}, after those of
the changes the sync found (L{Folder.synced}); the caller publishes them
on the reactor thread.  Everything here blocks and runs in a worker thread.
"""

from __future__ import annotations

import errno
import os
import shutil
import uuid
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from twisted_mailhub.backends.base import flag_changes
from twisted_mailhub.backends.filebackend import FolderSettings
from twisted_mailhub.backends.files import fsync_directory, write_all
from twisted_mailhub.backends.identity import next_uid, refuse_new_uidvalidity
from twisted_mailhub.backends.maildir.cache import (
    FOLDER_FILE,
    UIDLIST_FILE,
    FolderCache,
    Message,
)
from twisted_mailhub.backends.maildir.content import served_form, served_size, stored_form
from twisted_mailhub.backends.maildir.locking import LockTimeout, process_lock
from twisted_mailhub.backends.maildir.naming import (
    base_for_copy,
    filename_of,
    split_filename,
    unique_base,
)
from twisted_mailhub.backends.maildir.state import FolderState, Known, write_state
from twisted_mailhub.backends.maildir.sync import SyncedFolder, _unlink_quietly
from twisted_mailhub.backends.maildir.uidlist import Record, UidList
from twisted_mailhub.errors import MessageExpunged
from twisted_mailhub.mime.parse import header_length
from twisted_mailhub.model import (
    AppendRequest,
    FlagsChanged,
    FlagUpdate,
    MailboxRemoved,
    MailboxStatus,
    MessageMeta,
    MessagesAdded,
    MessagesExpunged,
    kept_object_id,
)

__all__ = ["Delivery", "Folder", "FolderCache", "FolderSettings", "create_folder", "open_folder"]


def now() -> datetime:
    """The current time, timezone-aware, to the second as INTERNALDATE carries it."""
    return datetime.now(UTC).replace(microsecond=0)


def now_exactly() -> datetime:
    """The current time, timezone-aware, as a save date keeps it."""
    return datetime.now(UTC)


@contextmanager
def open_folder(path: str, settings: FolderSettings, cache: FolderCache) -> Iterator[Folder]:
    """Hold the folder C{path} in this process, bring it up to date, yield it."""
    lock = process_lock(path)
    if not lock.acquire(timeout=max(settings.lock_timeout, 0.001)):
        raise LockTimeout(f"Mailbox is busy: {os.path.basename(path)}")
    try:
        with ExitStack() as stack:
            folder = Folder(path, settings, cache, stack)
            try:
                folder.sync()
                yield folder
                folder.commit()
            except BaseException:
                # What is cached may be half changed.
                cache.forget(path)
                raise
    finally:
        lock.release()


@dataclass(slots=True)
class Delivery:
    """
    One message on its way into a folder: its file is in the folder's
    tmp/ (written there, or linked there from another folder), and
    L{Folder.place} gives it its place and UID.
    """

    tmp: str
    base: str
    size: int
    flags: frozenset[str]
    date: datetime
    raw: bool = False
    wanted_uid: int | None = None
    # The identity it keeps (a copy's), written as the record's G field.
    identity: str = ""
    # Set by place().
    uid: int = 0
    subdir: str = "new"
    info: str | None = None
    extra: frozenset[str] = frozenset()

    @property
    def filename(self) -> str:
        return filename_of(self.base, self.info)


class Folder(SyncedFolder):
    """One Maildir folder, held by this thread: reading and changing it."""

    # -- reading -----------------------------------------------------------------

    def status(self) -> MailboxStatus:
        """The counters of the mailbox."""
        state = self.state
        unseen = deleted = size = recent = 0
        for message in self.messages:
            if "\\Seen" not in message.flags:
                unseen += 1
            if "\\Deleted" in message.flags:
                deleted += 1
            if message.uid > state.recent_after:
                recent += 1
            size += message.size
        return MailboxStatus(
            messages=len(self.messages),
            uidnext=self.uidlist.nextuid,
            uidvalidity=self.uidlist.uidvalidity,
            unseen=unseen,
            highestmodseq=state.highestmodseq,
            recent=recent,
            size=size,
            deleted=deleted,
            # The mailbox GUID of dovecot-uidlist, which moves with the folder.
            identity=self.uidlist.guid,
        )

    def metadata(self, uids: Iterable[int] | None = None) -> list[MessageMeta]:
        """Metas of the existing messages among C{uids} (all when C{None})."""
        if uids is None:
            return [message.meta() for message in self.messages]
        wanted = set(uids)
        return [message.meta() for message in self.messages if message.uid in wanted]

    def identities(self) -> list[tuple[int, str | None]]:
        """The (UID, identity) of every message, without making their metas."""
        return [(message.uid, message.identity) for message in self.messages]

    def content(self, uid: int) -> tuple[MessageMeta, bytes]:
        """The meta and the content of message C{uid}, as served to clients."""
        message = self.by_uid().get(uid)
        if message is None:
            raise MessageExpunged(f"Message {uid} no longer exists")
        for _ in range(2):
            try:
                with open(os.path.join(self.path, message.subdir, message.filename), "rb") as f:
                    data = f.read()
                return message.meta(), data if message.raw else served_form(data)
            except FileNotFoundError:
                found = self._locate(message.base)
                if found is None:
                    break
                message.subdir, message.filename = found
        # Gone: record the expunge now, so that the caller's events say so.
        self.sync(relist=True)
        raise MessageExpunged(f"Message {uid} no longer exists")

    def header(self, uid: int) -> bytes | None:
        """
        The top-level header of message C{uid} as served (through the blank
        line that ends it); C{None} when it is gone.
        """
        try:
            _, content = self.content(uid)
        except MessageExpunged:
            return None
        return content[: header_length(content)]

    def claim_recent(self, claim: bool) -> list[int]:
        """UIDs not yet reported to any session; C{claim} reports them."""
        if claim and self.state.recent_after != self.uidlist.nextuid - 1:
            self.lock_now()
            self.state.recent_after, after = self.uidlist.nextuid - 1, self.state.recent_after
            self._state_dirty = True
            return [m.uid for m in self.messages if m.uid > after]
        return [m.uid for m in self.messages if m.uid > self.state.recent_after]

    def changes_since(self, modseq: int) -> tuple[list[MessageMeta], list[int]]:
        """Metas changed after C{modseq} and UIDs expunged after it."""
        metas = [m.meta() for m in self.messages if m.modseq > modseq]
        expunged = sorted(uid for uid, when in self.state.expunged if when > modseq)
        return metas, expunged

    # -- writing -------------------------------------------------------------------

    def append(self, requests: list[AppendRequest]) -> list[MessageMeta]:
        """
        Deliver C{requests}: each is written to tmp/ and fsynced (outside
        the uidlist lock), then placed (L{place}).
        """
        written: list[Delivery] = []
        try:
            for request in requests:
                written.append(self._write_tmp(request))
        except BaseException:
            for delivery in written:
                _unlink_quietly(delivery.tmp)
            raise
        return self.place(written)

    def place(self, deliveries: list[Delivery]) -> list[MessageMeta]:
        """
        Under the lock, link each file of C{deliveries} from tmp/ into new/
        (no flags) or cur/ (with its flags in the name), fsync the
        directories, then record the UIDs.  A crash before the UIDs are
        recorded leaves whole files, which the next sync takes in.  All are
        placed, or none; the tmp/ names are gone afterwards either way.
        """
        try:
            self.lock_now()
            uidlist, state = self.uidlist, self.state
            uid = uidlist.nextuid
            for delivery in deliveries:
                uid = delivery.uid = next_uid(uid, delivery.wanted_uid)
                uid += 1
                flags = self._normalised(delivery.flags)
                info, delivery.extra = self._info_for(flags, None)
                delivery.info = info if flags else None
                delivery.subdir = "cur" if flags else "new"
            self._save_keywords()
            linked: list[str] = []
            try:
                for delivery in deliveries:
                    target = os.path.join(self.path, delivery.subdir, delivery.filename)
                    _link(delivery.tmp, target)
                    linked.append(target)
                for subdir in {delivery.subdir for delivery in deliveries}:
                    fsync_directory(os.path.join(self.path, subdir))
            except BaseException:
                for target in linked:
                    _unlink_quietly(target)
                raise
            modseq = state.next_modseq()
            # RFC 8514 section 3: saved now, whatever the INTERNALDATE.
            saved = now_exactly()
            for delivery in deliveries:
                uidlist.records.append(Record(delivery.uid, delivery.base,
                                              (f"G{kept_object_id(delivery.identity)}",)))
                state.known[delivery.uid] = Known(
                    modseq, self._flags_of(delivery.info, delivery.extra), delivery.date,
                    delivery.size, delivery.extra, delivery.raw, saved)
                self._c.listing[delivery.base] = (delivery.subdir, delivery.filename)
            uidlist.nextuid = uid
            self._uidlist_dirty = self._state_dirty = True
            self._c.messages = None
            self._invalidate()
            by_uid = self.by_uid()
            metas = [by_uid[delivery.uid].meta() for delivery in deliveries]
            self.events.append(MessagesAdded(tuple(metas)))
            return metas
        finally:
            for delivery in deliveries:
                _unlink_quietly(delivery.tmp)

    def link_out(self, uids: Iterable[int], directory: str) -> list[tuple[int, Delivery]]:
        """
        For COPY: a hard link of the file of each existing message among
        C{uids} in the tmp/ of the folder C{directory}, as a L{Delivery}
        keeping its flags, INTERNALDATE and size, with the source UID.
        Where a link cannot be made (another file system), the file is
        copied.
        """
        wanted = set(uids)
        out: list[tuple[int, Delivery]] = []
        try:
            for message in self.messages:
                if message.uid not in wanted:
                    continue
                delivery = self._link_to(message, os.path.join(directory, "tmp"))
                if delivery is not None:
                    out.append((message.uid, delivery))
        except BaseException:
            for _, delivery in out:
                _unlink_quietly(delivery.tmp)
            raise
        return out

    def _link_to(self, message: Message, tmp: str) -> Delivery | None:
        for _ in range(2):
            source = os.path.join(self.path, message.subdir, message.filename)
            base = base_for_copy(message.base)
            target = os.path.join(tmp, base)
            try:
                try:
                    os.link(source, target)
                except OSError as e:
                    if e.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                        raise
                    _copy_file(source, target)
            except FileNotFoundError:
                if not os.path.isdir(tmp):
                    raise
                found = self._locate(message.base)
                if found is None:
                    return None
                message.subdir, message.filename = found
                continue
            return Delivery(target, base, message.size, message.flags, message.internaldate,
                            message.raw, identity=message.identity)
        return None

    def _write_tmp(self, request: AppendRequest) -> Delivery:
        stored, raw = stored_form(request.content)
        date = request.internaldate or now()
        while True:
            base = unique_base(len(stored), served_size(stored))
            tmp = os.path.join(self.path, "tmp", base)
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                break
            except FileExistsError:
                continue
        try:
            try:
                write_all(fd, stored)
                os.fsync(fd)
            finally:
                os.close(fd)
            stamp = int(date.timestamp())
            os.utime(tmp, (stamp, stamp))
        except BaseException:
            _unlink_quietly(tmp)
            raise
        return Delivery(tmp, base, len(request.content), frozenset(request.flags), date, raw,
                        request.uid, request.identity or "")

    def store_flags(self, uids: Iterable[int], mode: str, flags: Iterable[str],
                    unchangedsince: int | None = None) -> FlagUpdate:
        """Change flags by renaming the files; one new MODSEQ for all that change."""
        self.lock_now()
        update = FlagUpdate()
        pending = flag_changes(self.messages, set(uids), mode, self._normalised(flags),
                               unchangedsince, update)
        if not pending:
            return update
        planned = [(message, new, *self._info_for(new, message.info)) for message, new in pending]
        self._save_keywords()
        state = self.state
        modseq = state.next_modseq()
        done = []
        touched = set()
        for message, new, info, extra in planned:
            placed = self._rename(message, new, info)
            if placed is None:
                continue
            touched.update({message.subdir, placed[0]})
            message.subdir, message.filename = placed
            message.info = split_filename(placed[1])[1]
            known = state.known[message.uid]
            known.extra = extra
            known.flags = message.flags = self._flags_of(message.info, extra)
            known.modseq = message.modseq = modseq
            self._c.listing[message.base] = placed
            done.append(message.meta())
        for subdir in touched:
            fsync_directory(os.path.join(self.path, subdir))
        if done:
            self._state_dirty = True
            update.changed = done
            self.events.append(FlagsChanged(tuple(done)))
        return update

    def _rename(self, message: Message, flags: frozenset[str], info: str
                ) -> tuple[str, str] | None:
        """Give the file of C{message} the name for C{info}; C{None} if it is gone."""
        source = (message.subdir, message.filename)
        for _ in range(3):
            target = ("cur", filename_of(message.base, info))
            if source == target:
                return target
            try:
                os.rename(os.path.join(self.path, *source), os.path.join(self.path, *target))
                return target
            except FileNotFoundError:
                # Another program renamed it: this change wins, but the
                # letters it does not manage come from the current name.
                found = self._locate(message.base)
                if found is None:
                    return None
                source = found
                info, _ = self._info_for(flags, split_filename(found[1])[1])
        return None

    def expunge(self, uids: Iterable[int] | None = None, deleted_only: bool = True) -> list[int]:
        """
        Remove the \\Deleted messages (among C{uids} when given; all of
        C{uids} whatever their flags when not C{deleted_only}): their files
        are unlinked and the directories fsynced, then the UIDs recorded as
        expunged.
        """
        self.lock_now()
        wanted = None if uids is None else set(uids)
        gone = [
            message for message in self.messages
            if (not deleted_only or "\\Deleted" in message.flags)
            and (wanted is None or message.uid in wanted)
        ]
        if not gone:
            return []
        touched = set()
        for message in gone:
            touched.add(self._unlink(message))
        for subdir in touched - {None}:
            fsync_directory(os.path.join(self.path, subdir))
        uidlist, state = self.uidlist, self.state
        removed = {message.uid for message in gone}
        uidlist.records = [record for record in uidlist.records if record.uid not in removed]
        modseq = state.next_modseq()
        for message in gone:
            del state.known[message.uid]
            self._c.listing.pop(message.base, None)
        uids_gone = [message.uid for message in gone]
        state.expunged.extend((uid, modseq) for uid in uids_gone)
        self._uidlist_dirty = self._state_dirty = True
        self._c.messages = None
        self._invalidate()
        self.events.append(MessagesExpunged(tuple(uids_gone), modseq))
        return uids_gone

    def _unlink(self, message: Message) -> str | None:
        where = (message.subdir, message.filename)
        for _ in range(3):
            try:
                os.unlink(os.path.join(self.path, *where))
                return where[0]
            except FileNotFoundError:
                found = self._locate(message.base)
                if found is None:
                    return None
                where = found
        return None

    def restore_identity(self, name: str, uidvalidity: int, uidnext: int) -> MailboxStatus:
        """
        Take C{uidvalidity} if this folder never held a message (then
        UIDNEXT is C{uidnext}), or raise UIDNEXT to C{uidnext}.
        """
        self.lock_now()
        uidlist, state = self.uidlist, self.state
        if uidvalidity != uidlist.uidvalidity:
            if uidlist.records or state.expunged or state.highestmodseq != 1:
                raise refuse_new_uidvalidity(name, uidlist.uidvalidity, uidvalidity)
            uidlist.uidvalidity = state.uidvalidity = uidvalidity
            uidlist.nextuid = uidnext
            state.recent_after = min(state.recent_after, uidnext - 1)
            self.events.append(MailboxRemoved())
        elif uidnext > uidlist.nextuid:
            uidlist.nextuid = uidnext
        else:
            return self.status()
        self._uidlist_dirty = self._state_dirty = True
        return self.status()


def create_folder(path: str, uidvalidity: int, special_use: frozenset[str],
                  scratch: str) -> str:
    """
    Make the folder C{path} whole in one step: built in the directory
    C{scratch} (the tree's C{tmp/}) with C{cur/ new/ tmp/}, C{maildirfolder},
    C{dovecot-uidlist} and C{mailhub-state}, then renamed into place.
    Returns the new folder's GUID.  Raises C{FileExistsError} when C{path}
    is a folder already (an empty directory, which marks a name without
    messages, is replaced).
    """
    build = os.path.join(scratch, f"mailhub-folder.{uuid.uuid4().hex}")
    os.makedirs(build, 0o700)
    try:
        for sub in ("cur", "new", "tmp"):
            os.mkdir(os.path.join(build, sub), 0o700)
        with open(os.path.join(build, FOLDER_FILE), "wb") as f:
            os.fsync(f.fileno())
        uidlist = UidList(uidvalidity)
        with open(os.path.join(build, UIDLIST_FILE), "wb") as f:
            f.write(uidlist.render())
            os.fsync(f.fileno())
        write_state(build, FolderState(uidvalidity, special_use=frozenset(special_use)))
        fsync_directory(build)
        try:
            os.rename(build, path)
        except OSError as e:
            if e.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR, errno.EISDIR):
                raise FileExistsError(path) from e
            raise
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)
        raise
    fsync_directory(os.path.dirname(path))
    return uidlist.guid



def _copy_file(source: str, target: str) -> None:
    """Copy C{source} to the new file C{target}, fsynced, keeping its mtime."""
    with open(source, "rb") as f:
        data = f.read()
        st = os.fstat(f.fileno())
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))


def _link(source: str, target: str) -> None:
    """Give C{source} the name C{target}, never replacing a file there."""
    try:
        os.link(source, target)
    except OSError as e:
        if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise
        # A file system without hard links: the unique name makes rename safe.
        os.rename(source, target)

