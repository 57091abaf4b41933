"""
Bringing a Maildir folder's records up to date with its files.

L{SyncedFolder} is the part of a L{twisted_mailhub.backends.maildir.folder.Folder}
that reads: L{SyncedFolder.sync} compares what is on disk with what this
process last read (L{twisted_mailhub.backends.maildir.cache}) and records
what other programs did: files they delivered get UIDs, files they removed
are expunged, renames that changed flags are flag changes, each with a new
MODSEQ and an event in L{SyncedFolder.synced}.  Recording takes
C{dovecot-uidlist.lock} (L{SyncedFolder.lock_now}), which Dovecot and
other server processes take too; reading an unchanged folder takes no lock.

A directory listing is trusted again only while both C{new/} and C{cur/}
are unchanged and their last change lies a second or more before the
listing was made: file times are coarse, and a delivery in the same tick as
the listing would otherwise go unseen.  Everything here blocks.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
import uuid
from collections.abc import Iterable
from contextlib import ExitStack
from datetime import UTC, datetime

from twisted.logger import Logger

from twisted_mailhub.backends.filebackend import FolderSettings
from twisted_mailhub.backends.maildir import flags as maildir_flags
from twisted_mailhub.backends.maildir.cache import (
    KEYWORDS_FILE,
    MESSAGE_DIRECTORIES,
    SETTLE_SECONDS,
    TMP_MAX_AGE,
    UIDLIST_FILE,
    FolderCache,
    Message,
    Signature,
    signature_of,
)
from twisted_mailhub.backends.maildir.content import served_size
from twisted_mailhub.backends.maildir.locking import DotLock, dotlocked
from twisted_mailhub.backends.maildir.naming import (
    KEYWORD_LETTERS,
    is_message_file,
    split_filename,
)
from twisted_mailhub.backends.maildir.state import (
    STATE_FILE,
    FolderState,
    Known,
    parse_state,
    write_state,
)
from twisted_mailhub.backends.maildir.uidlist import (
    Keywords,
    Record,
    UidList,
    UnreadableUidList,
    parse_keywords,
    parse_uidlist,
)
from twisted_mailhub.errors import MailboxNotFound
from twisted_mailhub.model import (
    FlagsChanged,
    MailboxEvent,
    MailboxRemoved,
    MessagesAdded,
    MessagesExpunged,
    is_object_id,
)

log = Logger()

class SyncedFolder:
    """One Maildir folder held by this thread: its records, kept up to date."""

    def __init__(self, path: str, settings: FolderSettings, cache: FolderCache,
                 stack: ExitStack) -> None:
        self.path = path
        # Events of what other programs did, found while syncing, then
        # those of this operation.
        self.synced: list[MailboxEvent] = []
        self.events: list[MailboxEvent] = []
        self._settings = settings
        self._cache = cache
        self._stack = stack
        self._lock: DotLock | None = None
        self._c = cache.entry(path)
        self._uidlist_dirty = False
        self._state_dirty = False
        self._keywords_dirty = False
        self._by_uid: dict[int, Message] | None = None

    # -- what the folder holds -------------------------------------------------

    @property
    def uidlist(self) -> UidList:
        assert self._c.uidlist is not None
        return self._c.uidlist

    @property
    def state(self) -> FolderState:
        assert self._c.state is not None
        return self._c.state

    @property
    def guid(self) -> str:
        """The mailbox GUID of C{dovecot-uidlist}: the folder's identity."""
        return self.uidlist.guid

    @property
    def uidvalidity(self) -> int:
        return self.uidlist.uidvalidity

    @property
    def messages(self) -> list[Message]:
        if self._c.messages is None:
            self._build()
        assert self._c.messages is not None
        return self._c.messages

    def by_uid(self) -> dict[int, Message]:
        if self._by_uid is None:
            self._by_uid = {m.uid: m for m in self.messages}
        return self._by_uid

    # -- bringing it up to date --------------------------------------------------

    def sync(self, relist: bool = False) -> None:
        """Take in whatever other programs did since this process last looked."""
        if self._cache.first_visit(self.path):
            self._tidy_tmp()
        sigs = self._signatures()
        c = self._c
        if not relist and c.messages is not None and self._trusted(sigs):
            return
        self._load(sigs, relist)
        if self._lock is not None or not self._consistent():
            # Something to record: UIDs to give, expunges, flag changes.
            if self._lock is None:
                self.lock_now()
            else:
                self._reconcile()
        self._invalidate()

    def lock_now(self) -> None:
        """
        Take C{dovecot-uidlist.lock} (if not yet held) and bring the folder
        up to date under it; every change is made after this.
        """
        if self._lock is not None:
            return
        self._lock = self._stack.enter_context(dotlocked(
            os.path.join(self.path, UIDLIST_FILE), self._settings.lock_timeout,
            self._settings.stale_lock_after, self._settings.on_lock_wait))
        self._load(self._signatures(), relist=False)
        self._reconcile()
        self._invalidate()

    def _signatures(self) -> tuple[Signature, ...]:
        join = os.path.join
        sigs = (
            signature_of(join(self.path, UIDLIST_FILE)),
            signature_of(join(self.path, KEYWORDS_FILE)),
            signature_of(join(self.path, STATE_FILE)),
            signature_of(join(self.path, "new")),
            signature_of(join(self.path, "cur")),
        )
        if sigs[4] is None:
            raise MailboxNotFound(f"Mailbox does not exist: {self.path}")
        if sigs[3] is None:
            # Some programs leave out new/ or tmp/; a folder has all three.
            for sub in ("new", "tmp"):
                os.makedirs(join(self.path, sub), 0o700, exist_ok=True)
            sigs = sigs[:3] + (signature_of(join(self.path, "new")), sigs[4])
        return sigs

    def _trusted(self, sigs: tuple[Signature, ...]) -> bool:
        c = self._c
        if not c.loaded or c.dirs_sig is None:
            return False
        if sigs != (c.uidlist_sig, c.keywords_sig, c.state_sig) + c.dirs_sig:
            return False
        return self._settled()

    def _settled(self) -> bool:
        c = self._c
        limit = (c.listed_at - SETTLE_SECONDS) * 1e9
        return c.dirs_sig is not None and all(
            sig is not None and sig[1] < limit for sig in c.dirs_sig)

    def _load(self, sigs: tuple[Signature, ...], relist: bool) -> None:
        c = self._c
        uidlist_sig, keywords_sig, state_sig, new_sig, cur_sig = sigs
        if not c.loaded or uidlist_sig != c.uidlist_sig:
            c.uidlist, c.uidlist_sig = self._read_uidlist(), uidlist_sig
            c.messages = None
        if not c.loaded or keywords_sig != c.keywords_sig:
            c.keywords, c.keywords_sig = self._read_keywords(), keywords_sig
            c.messages = None
        if not c.loaded or state_sig != c.state_sig:
            c.state, c.state_sig = self._read_state(), state_sig
            c.messages = None
        if relist or not c.loaded or (new_sig, cur_sig) != c.dirs_sig or not self._settled():
            self._relist()
            c.dirs_sig = (new_sig, cur_sig)
        c.loaded = True

    def _relist(self) -> None:
        c = self._c
        c.listed_at = time.time()
        listing: dict[str, tuple[str, str]] = {}
        for subdir in MESSAGE_DIRECTORIES:
            try:
                with os.scandir(os.path.join(self.path, subdir)) as entries:
                    # Regular files only: a symbolic link is nobody's message.
                    names = [entry.name for entry in entries
                             if entry.is_file(follow_symlinks=False)]
            except FileNotFoundError:
                if subdir == "cur":
                    raise MailboxNotFound(f"Mailbox does not exist: {self.path}")
                names = []
            for filename in names:
                if not is_message_file(filename):
                    continue
                base, _ = split_filename(filename)
                # The same message in both: the one in cur/ is the later.
                if subdir == "cur" or base not in listing:
                    listing[base] = (subdir, filename)
        c.listing = listing
        c.messages = None

    def _read_uidlist(self) -> UidList | None:
        path = os.path.join(self.path, UIDLIST_FILE)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return None
        try:
            return parse_uidlist(data)
        except UnreadableUidList as e:
            log.warn("Unreadable {path} ({why}); UIDs start again", path=path, why=e)  # noqa: G010
            return None

    def _read_keywords(self) -> Keywords:
        try:
            with open(os.path.join(self.path, KEYWORDS_FILE), "rb") as f:
                return parse_keywords(f.read())
        except FileNotFoundError:
            return Keywords()

    def _read_state(self) -> FolderState | None:
        path = os.path.join(self.path, STATE_FILE)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return None
        try:
            return parse_state(data)
        except (ValueError, KeyError, TypeError):
            log.warn("Unreadable {path}; it is rebuilt", path=path)  # noqa: G010
            return None

    def _consistent(self) -> bool:
        """Whether the files agree with the records: nothing to write."""
        c = self._c
        uidlist, state = c.uidlist, c.state
        if uidlist is None or not uidlist.guid or state is None:
            return False
        if state.uidvalidity != uidlist.uidvalidity:
            return False
        if not len(uidlist.records) == len(c.listing) == len(state.known):
            return False
        for record in uidlist.records:
            found = c.listing.get(record.base)
            known = state.known.get(record.uid)
            if found is None or known is None:
                return False
            if self._flags_of(split_filename(found[1])[1], known.extra) != known.flags:
                return False
        return True

    def _reconcile(self) -> None:
        """Under the lock: make the records agree with the files, with events."""
        c = self._c
        uidlist, state = c.uidlist, c.state
        if uidlist is None:
            if state is not None and (state.known or state.expunged):
                log.warn("{path} lost its UID list; new UIDVALIDITY",  # noqa: G010
                         path=self.path)
            uidlist = UidList(self._settings.new_uidvalidity())
            self._uidlist_dirty = True
        if not uidlist.guid:
            uidlist.guid = uuid.uuid4().hex
            self._uidlist_dirty = True
        if state is None and (uidlist.records or uidlist.nextuid > 1):
            # UIDs survived their state: MODSEQs must not start again.
            log.warn("{path} lost {state}; MODSEQs go on from the clock",  # noqa: G010
                     path=self.path, state=STATE_FILE)
            state = FolderState.rebuilt(uidlist.uidvalidity)
            self._state_dirty = True
        elif state is None or state.uidvalidity != uidlist.uidvalidity:
            if state is not None:
                # UIDs were given again: sessions must start over.
                self.synced.append(MailboxRemoved())
            special = state.special_use if state is not None else frozenset()
            state = FolderState(uidlist.uidvalidity, special_use=special)
            self._state_dirty = True
        c.uidlist, c.state = uidlist, state
        self._drop_missing(uidlist)
        self._record_expunges(uidlist, state)
        added = self._take_new(uidlist, state)
        changed = self._take_flag_changes(uidlist, state, set(added))
        c.messages = None
        metas = {m.uid: m.meta() for m in self.messages}
        if changed:
            self.synced.append(FlagsChanged(tuple(metas[uid] for uid in changed)))
        if added:
            self.synced.append(MessagesAdded(tuple(metas[uid] for uid in sorted(added)
                                                   if uid in metas)))

    def _drop_missing(self, uidlist: UidList) -> None:
        listing = self._c.listing
        if any(record.base not in listing for record in uidlist.records):
            # A directory read racing a rename may miss a file: look again.
            self._relist()
            listing = self._c.listing
        kept, bases = [], set()
        for record in uidlist.records:
            if record.base in listing and record.base not in bases:
                kept.append(record)
                bases.add(record.base)
        if len(kept) != len(uidlist.records):
            uidlist.records = kept
            self._uidlist_dirty = True

    def _record_expunges(self, uidlist: UidList, state: FolderState) -> None:
        present = {record.uid for record in uidlist.records}
        gone = sorted(uid for uid in state.known if uid not in present)
        if not gone:
            return
        for uid in gone:
            del state.known[uid]
        self._state_dirty = True
        # A UID at or above UIDNEXT was never in the list: an append that
        # did not finish, which no client was told of.
        expunged = tuple(uid for uid in gone if uid < uidlist.nextuid)
        if expunged:
            modseq = state.next_modseq()
            state.expunged.extend((uid, modseq) for uid in expunged)
            self.synced.append(MessagesExpunged(expunged, modseq))

    def _take_new(self, uidlist: UidList, state: FolderState) -> list[int]:
        """UIDs for files no record names, and records no state knows."""
        listing = self._c.listing
        named = {record.base for record in uidlist.records}
        fresh = sorted((base for base in listing if base not in named), key=_delivery_order)
        added: list[int] = []
        modseq = None
        for record in uidlist.records:
            if record.uid in state.known:
                continue
            examined = self._examine(record.base)
            if examined is None:
                continue
            modseq = modseq or state.next_modseq()
            state.known[record.uid] = self._known_from(examined, modseq)
            added.append(record.uid)
        for base in fresh:
            examined = self._examine(base)
            if examined is None:
                continue
            uid = uidlist.nextuid
            uidlist.nextuid += 1
            uidlist.records.append(Record(uid, base, _size_fields(base, examined)))
            modseq = modseq or state.next_modseq()
            state.known[uid] = self._known_from(examined, modseq)
            added.append(uid)
        if added:
            self._uidlist_dirty = True
            self._state_dirty = True
        # Records whose file vanished while being examined wait for the next sync.
        known = set(state.known)
        if any(record.uid not in known for record in uidlist.records):
            uidlist.records = [r for r in uidlist.records if r.uid in known]
            self._uidlist_dirty = True
        return added

    def _examine(self, base: str) -> tuple[str | None, os.stat_result, bytes] | None:
        """Info, stat and content of the file of C{base}; C{None} if it is gone."""
        for _ in range(2):
            found = self._c.listing.get(base)
            if found is None:
                return None
            subdir, filename = found
            try:
                with open(os.path.join(self.path, subdir, filename), "rb") as f:
                    st = os.fstat(f.fileno())
                    data = f.read()
            except FileNotFoundError:
                # Renamed meanwhile (its flags changed): look again.
                self._relist()
                continue
            return split_filename(filename)[1], st, data
        return None

    def _known_from(self, examined: tuple[str | None, os.stat_result, bytes],
                    modseq: int) -> Known:
        info, st, data = examined
        date = datetime.fromtimestamp(int(st.st_mtime), UTC).astimezone()
        return Known(modseq, self._flags_of(info, frozenset()), date, served_size(data))

    def _take_flag_changes(self, uidlist: UidList, state: FolderState,
                           added: set[int]) -> list[int]:
        listing = self._c.listing
        changed = []
        modseq = None
        for record in uidlist.records:
            if record.uid in added:
                continue
            found = listing.get(record.base)
            if found is None:
                # Gone since it was listed: the next sync records it.
                continue
            known = state.known[record.uid]
            flags = self._flags_of(split_filename(found[1])[1], known.extra)
            if flags != known.flags:
                modseq = modseq or state.next_modseq()
                known.flags, known.modseq = flags, modseq
                changed.append(record.uid)
        if changed:
            self._state_dirty = True
        return changed

    def _build(self) -> None:
        c = self._c
        messages = []
        if c.uidlist is not None and c.state is not None:
            for record in c.uidlist.records:
                found = c.listing.get(record.base)
                known = c.state.known.get(record.uid)
                if found is None or known is None:
                    continue
                subdir, filename = found
                messages.append(Message(
                    record.uid, record.base, subdir, filename, split_filename(filename)[1],
                    known.flags, known.modseq, known.internaldate, known.size, known.raw,
                    _identity_of(record), known.saved))
        c.messages = messages
        self._by_uid = None

    def _invalidate(self) -> None:
        self._by_uid = None

    def _locate(self, base: str) -> tuple[str, str] | None:
        """Where the file of C{base} is now (after another program renamed it)."""
        self._relist()
        self._by_uid = None
        return self._c.listing.get(base)

    def _tidy_tmp(self) -> None:
        """Remove what crashes left in tmp/ (older than L{TMP_MAX_AGE})."""
        tmp = os.path.join(self.path, "tmp")
        limit = time.time() - TMP_MAX_AGE
        try:
            entries = list(os.scandir(tmp))
        except (FileNotFoundError, NotADirectoryError):
            return
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
                if st.st_mtime >= limit:
                    continue
                if entry.is_dir(follow_symlinks=False):
                    if entry.name.startswith("mailhub-"):
                        shutil.rmtree(entry.path, ignore_errors=True)
                else:
                    os.unlink(entry.path)
            except OSError:
                continue

    # -- flags and keywords ------------------------------------------------------

    def _flags_of(self, info: str | None, extra: frozenset[str]) -> frozenset[str]:
        return maildir_flags.flags_of(info, self._c.keywords, extra)

    def _normalised(self, flags: Iterable[str]) -> frozenset[str]:
        return maildir_flags.normalised(flags, self._c.keywords)

    def _info_for(self, flags: frozenset[str], old_info: str | None
                  ) -> tuple[str, frozenset[str]]:
        """
        The info letters and the keywords kept aside for C{flags} on a file
        whose info was C{old_info}; new keywords get a free letter, which
        the caller writes with L{_save_keywords} before using it.
        """
        return maildir_flags.info_for(flags, old_info, self._c.keywords, self._allocate)

    def _allocate(self, keyword: str) -> str | None:
        assert self._lock is not None, "keywords are added under the uidlist lock"
        keywords = self._c.keywords
        # Letters other programs left on files without naming them stay theirs.
        taken = maildir_flags.unnamed_letters(
            (filename for _, filename in self._c.listing.values()), keywords)
        for index, name in enumerate(keywords.names):
            if name is None and KEYWORD_LETTERS[index] not in taken:
                keywords.names[index] = keyword
                self._keywords_dirty = True
                return KEYWORD_LETTERS[index]
        return None

    def _save_keywords(self) -> None:
        if not self._keywords_dirty:
            return
        path = os.path.join(self.path, KEYWORDS_FILE)
        # The uidlist lock keeps other writers out; a lock left on the
        # keywords file itself is a leftover (Dovecot removes it too).
        try:
            os.unlink(path + ".lock")
        except FileNotFoundError:
            pass
        with dotlocked(path, self._settings.lock_timeout, self._settings.stale_lock_after) as lock:
            st = lock.replace(self._c.keywords.render())
        self._c.keywords_sig = (st.st_size, st.st_mtime_ns, st.st_ino)
        self._keywords_dirty = False


    # -- the end of an operation ---------------------------------------------------

    def commit(self) -> None:
        """Write what changed: the state, then the UID list (which releases the lock)."""
        c = self._c
        if self._state_dirty:
            st = write_state(self.path, self.state)
            c.state_sig = (st.st_size, st.st_mtime_ns, st.st_ino)
            self._state_dirty = False
        if self._uidlist_dirty:
            assert self._lock is not None
            st = self._lock.replace(self.uidlist.render())
            c.uidlist_sig = (st.st_size, st.st_mtime_ns, st.st_ino)
            self._uidlist_dirty = False



def _identity_of(record: Record) -> str:
    guid = record.guid
    return guid if guid is not None and is_object_id(guid) else derived_identity(record.base)


def derived_identity(base: str) -> str:
    """
    The identity of a message whose record has no C{G} field (a file
    another program delivered): from its base name, which is unique in the
    folder and never changes (Dovecot too takes the base name as the GUID
    of such a file).  Hashed, since a base name holds dots and commas.
    """
    return hashlib.sha256(base.encode("utf-8", "surrogateescape")).hexdigest()[:32]


def _delivery_order(base: str) -> tuple:
    """Files delivered earlier first: the names start with the time in seconds."""
    seconds, _, rest = base.partition(".")
    if seconds.isdigit():
        return (0, int(seconds), rest)
    return (1, 0, base)


def _size_fields(base: str, examined: tuple[str | None, os.stat_result, bytes]) -> tuple[str, ...]:
    """C{W} and C{S} fields for a file whose name does not carry its sizes."""
    fields = []
    _, st, data = examined
    if ",W=" not in base:
        fields.append(f"W{served_size(data)}")
    if ",S=" not in base:
        fields.append(f"S{st.st_size}")
    return tuple(fields)



def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
