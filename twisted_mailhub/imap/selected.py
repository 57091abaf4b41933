"""
The selected mailbox as one session sees it.

A session's view is a compact UID map (message sequence number ``n`` is
``uids[n-1]``) plus the changes other sessions made that it has not been
told of yet.  RFC 3501 sections 5.2 and 7.4.1 (RFC 9051 5.2, 7.5.1) say
when those may be told: EXISTS and FETCH at the end of any command, EXPUNGE
not while a FETCH, STORE or SEARCH by sequence number is answered (the
client's numbers must keep meaning what they meant).
"""

from __future__ import annotations

import bisect
from array import array
from typing import Callable, Hashable, Sequence

from zope.interface import implementer

from twisted_mailhub import index
from twisted_mailhub.imap import responses, wire
from twisted_mailhub.interfaces import IMailbox, IMailboxListener
from twisted_mailhub.ranges import format_numbers
from twisted_mailhub.model import (
    SYSTEM_FLAGS,
    AccessKeyReset,
    FlagsChanged,
    MailboxEvent,
    MailboxRemoved,
    MessageMeta,
    MessagesAdded,
    MessagesExpunged,
)

_NOTHING: frozenset[int] = frozenset()


@implementer(IMailboxListener)
class SelectedMailbox:
    """The UID map, \\Recent set and pending updates of one session."""

    def __init__(self, mailbox: IMailbox, origin: Hashable, *, condstore: bool = False,
                 rev2: bool = False, qresync: bool = False, uidonly: bool = False) -> None:
        # The mailbox behind this process's shared index of it (see
        # twisted_mailhub.index), so metadata reads are served from memory.
        self.mailbox, self._release_index = index.wrap(mailbox)
        self.origin = origin
        self.read_only: bool = bool(mailbox.read_only)
        self.condstore = condstore
        #: QRESYNC is enabled: expunges are told as VANISHED (RFC 7162 3.2.10).
        self.qresync = qresync
        #: UIDONLY is enabled (RFC 9586): VANISHED and UIDFETCH, no numbers.
        self.uidonly = uidonly
        # IMAP4rev2 has no \Recent (RFC 9051 appendix E, item 4).
        self.rev2 = rev2
        # The compact UID map: 4 bytes per message (UIDs are 32-bit).
        self.uids: array = array("I")
        self.recent: set[int] = set()
        self.removed = False
        self._added: dict[int, MessageMeta] = {}
        self._expunged: set[int] = set()
        # The lowest MODSEQ of the expunges in _expunged (RFC 7162 3.2).
        self._expunged_modseq: int | None = None
        #: The MODSEQ of the last expunge this session made (its own event).
        self.own_expunge_modseq: int | None = None
        self._flags: dict[int, MessageMeta] = {}
        # Another session gave the mailbox a new access key (RFC 4467).
        self._key_reset = False
        # New messages this session added itself (RFC 5465 section 5.2).
        self._own_added: set[int] = set()
        #: The UIDs the last flush told with EXISTS that other sessions added.
        self.announced: list[int] = []
        self._snapshot_done = False
        #: The keywords the client was told of in FLAGS (RFC 3501 7.2.6).
        self.keywords: set[str] = set()

    async def open(self) -> None:
        """Subscribe, then take the snapshot, so no change falls in between."""
        self.mailbox.subscribe(self)
        if isinstance(self.mailbox, index.IndexedMailbox):
            await self.mailbox.validate()
        self.uids = array("I", await self.mailbox.uids())
        self.recent = set(await self.mailbox.claim_recent(not self.read_only))
        known_max = self.uids[-1] if self.uids else 0
        self._added = {uid: m for uid, m in self._added.items() if uid > known_max}
        self._expunged = {uid for uid in self._expunged if self.seq_of(uid) is not None}
        if not self._expunged:
            self._expunged_modseq = None
        self._snapshot_done = True

    def close(self) -> None:
        self.mailbox.unsubscribe(self)
        self._release_index()

    async def load_keywords(self) -> set[str]:
        """
        The keywords in use, for SELECT's FLAGS and PERMANENTFLAGS: from the
        shared index when it is complete; a mailbox of at most
        L{KEYWORDS_LOAD_LIMIT} messages is loaded into the index for it (one
        metadata read, which the usual FETCH 1:* FLAGS after SELECT reuses).
        A larger one is not read: its keywords are told as they show up
        (L{keyword_responses}).
        """
        shared = getattr(self.mailbox, "index", None)
        keywords = None
        if shared is not None:
            if not shared.complete and len(self.uids) <= KEYWORDS_LOAD_LIMIT:
                await shared.load_all()
            keywords = shared.keywords()
        elif len(self.uids) <= KEYWORDS_LOAD_LIMIT:
            metas = await self.mailbox.metadata(list(self.uids)) if self.uids else []
            keywords = {f for m in metas for f in m.flags if not f.startswith("\\")}
        self.keywords = set(keywords or ())
        return self.keywords

    def keyword_responses(self, metas) -> list[bytes]:
        """
        ``* FLAGS`` (and PERMANENTFLAGS) when C{metas} carry a keyword the
        client was not told of yet (RFC 3501 section 7.2.6: an untagged FLAGS
        whenever the applicable flags change); else nothing.
        """
        # Messages share a few flag sets: each distinct one is looked at once.
        new = {f for flags in {m.flags for m in metas} for f in flags
               if not f.startswith("\\") and f not in self.keywords}
        if not new:
            return []
        self.keywords |= new
        return flags_responses(self.keywords, self.read_only)

    async def prepare(self, uids: Sequence[int]) -> None:
        """
        A command will read the metadata of C{uids}: let the index load the
        whole mailbox at once when that is most of it.
        """
        shared = getattr(self.mailbox, "index", None)
        if shared is not None:
            await shared.prepare(len(uids), len(self.uids))

    # -- sequence numbers ----------------------------------------------------

    @property
    def exists(self) -> int:
        return len(self.uids)

    def seq_of(self, uid: int) -> int | None:
        """The sequence number of C{uid}, or None if not in the view."""
        i = bisect.bisect_left(self.uids, uid)
        if i < len(self.uids) and self.uids[i] == uid:
            return i + 1
        return None

    def seqs_of(self, uids: list[int]) -> list[int]:
        """
        The sequence numbers of C{uids}, ascending UIDs all in the view (as
        SEARCH finds them), in one pass instead of a lookup each.
        """
        view = self.uids
        if not uids:
            return []
        first = view[0]
        if view[-1] - first + 1 == len(view):
            # No gaps in the view (nothing expunged below the top): a UID's
            # sequence number is its distance from the first.
            return [uid - first + 1 for uid in uids]
        out, i, bisect_left = [], 0, bisect.bisect_left
        for uid in uids:
            i = bisect_left(view, uid, i)
            out.append(i + 1)
        return out

    def is_recent(self, uid: int) -> bool:
        """Whether FETCH FLAGS shows \\Recent for C{uid}."""
        return not self.rev2 and uid in self.recent

    def recent_test(self) -> Callable[[int], bool]:
        """L{is_recent} as one C-level call, for loops over many messages."""
        return (_NOTHING if self.rev2 else self.recent).__contains__

    def uids_for(self, numbers: list[int]) -> list[int]:
        """UIDs of ascending sequence numbers (which must be in range)."""
        return [self.uids[n - 1] for n in numbers]

    # -- events from other sessions ------------------------------------------

    def mailbox_event(self, event: MailboxEvent) -> None:
        self.changes += 1
        if isinstance(event, MessagesAdded):
            for meta in event.messages:
                self._added[meta.uid] = meta
            if event.origin == self.origin:
                self._own_added.update(meta.uid for meta in event.messages)
        elif isinstance(event, MessagesExpunged):
            if event.origin == self.origin:
                self.own_expunge_modseq = event.modseq
                return
            for uid in event.uids:
                self._added.pop(uid, None)
                self._flags.pop(uid, None)
                self._expunged.add(uid)
            if event.uids and (self._expunged_modseq is None
                               or event.modseq < self._expunged_modseq):
                self._expunged_modseq = event.modseq
        elif isinstance(event, FlagsChanged):
            if event.origin == self.origin:
                return
            for meta in event.messages:
                self._flags[meta.uid] = meta
        elif isinstance(event, MailboxRemoved):
            self.removed = True
        elif isinstance(event, AccessKeyReset):
            if event.origin == self.origin:
                # Told in the tagged OK of its RESETKEY (BASE.7.1.URLMECH).
                return
            self._key_reset = True
        if self.notify is not None:
            self.notify()

    # Called (with no arguments) after each event; IDLE sets it to flush at once.
    notify = None
    #: Mailbox events received, this session's own too: search results
    #: kept up to date (imap/contexts.py) may have changed when it moved.
    changes = 0
    #: Called with the UIDs L{forget_expunged} is about to drop, while
    #: their sequence numbers still stand (RFC 5267 section 4.3.4).
    on_expunge = None

    @property
    def has_pending(self) -> bool:
        return bool(self._added or self._expunged or self._flags or self._key_reset)

    def pending_of(self, new: bool, expunge: bool, flags: bool) -> bool:
        """Whether changes of these kinds wait to be told."""
        return bool((new and self._added) or (expunge and self._expunged)
                    or (flags and self._flags))

    def forget_expunged(self, uids: list[int]) -> list[int]:
        """
        Remove C{uids} (expunged by this session) from the view; return
        their sequence numbers as the client must be told, in the RFC 3501
        section 7.4.1 style where each EXPUNGE renumbers the following ones.
        """
        if self.on_expunge is not None:
            self.on_expunge(uids)
        told = []
        for uid in sorted(uids):
            seq = self.seq_of(uid)
            if seq is not None:
                del self.uids[seq - 1]
                self.recent.discard(uid)
                told.append(seq)
        return told

    def expunge_responses(self, uids: list[int]) -> list[bytes]:
        """
        Remove C{uids} from the view and say so: an EXPUNGE per message
        (L{forget_expunged}) or, with QRESYNC, one ``* VANISHED`` naming the
        UIDs that were in the view (RFC 7162 section 3.2.10.2: never a UID
        the client was not told of, and nothing when none was).  UIDONLY
        takes VANISHED too, QRESYNC or not (RFC 9586).
        """
        if not (self.qresync or self.uidonly):
            return [responses.expunge(seq) for seq in self.forget_expunged(uids)]
        told = sorted(uid for uid in set(uids) if self.seq_of(uid) is not None)
        if not told:
            return []
        self.forget_expunged(told)
        return [responses.untagged(b"VANISHED " + format_numbers(told).encode("ascii"))]

    async def flush(self, allow_expunge: bool, uid_in_fetch: bool = False,
                    flags: bool = True) -> list[bytes]:
        """
        The untagged responses that bring the client up to date, with the
        view updated to match.  EXPUNGEs are held back unless allowed, flag
        changes unless C{flags}.
        """
        out: list[bytes] = []
        if self._key_reset:
            # RFC 4467 BASE.6.3.RESETKEY: every session of the user with the
            # mailbox selected is told, with the URLMECH code of BASE.7.1.
            from twisted_mailhub.imap import urlauth

            self._key_reset = False
            out.append(responses.status(None, "OK", "Mailbox access key reset",
                                        f"URLMECH {urlauth.MECHANISM}"))
        if allow_expunge and self._expunged:
            gone = self._expunged
            self._expunged, self._expunged_modseq = set(), None
            out.extend(self.expunge_responses(sorted(gone)))
        told_flags = list(self._flags.values()) if flags else []
        if told_flags or self._added:
            out.extend(self.keyword_responses(told_flags + list(self._added.values())))
        if flags and self._flags:
            changed = self._flags
            self._flags = {}
            for uid in sorted(changed):
                seq = self.seq_of(uid)
                if seq is None or uid in self._expunged:
                    continue
                meta = changed[uid]
                flags = set(meta.flags)
                if self.is_recent(uid):
                    flags.add("\\Recent")
                items = [b"FLAGS " + wire.flag_list(flags)]
                # RFC 9051 section 7.5.2: in IMAP4rev2 every unsolicited
                # FETCH carries the UID.  A UIDFETCH is numbered by it.
                if (uid_in_fetch or self.condstore or self.rev2) and not self.uidonly:
                    items.insert(0, b"UID %d" % uid)
                if self.condstore:
                    items.append(b"MODSEQ (%d)" % meta.modseq)
                if self.uidonly:
                    out.append(responses.fetch(uid, items, b"UIDFETCH"))
                else:
                    out.append(responses.fetch(seq, items))
        if self._added:
            last = self.uids[-1] if self.uids else 0
            new = sorted(uid for uid in self._added if uid > last)
            self._added = {}
            if new:
                self.uids.extend(new)
                own = self._own_added
                self.announced.extend(uid for uid in new if uid not in own)
                own.difference_update(new)
                shared = getattr(self.mailbox, "index", None)
                if shared is not None:
                    # One claim per process for the sessions told together.
                    claimed = await shared.claim_recent(self.uids[-1], not self.read_only)
                else:
                    claimed = await self.mailbox.claim_recent(not self.read_only)
                self.recent.update(u for u in claimed if self.seq_of(u) is not None)
                out.append(responses.exists(len(self.uids)))
                if not self.rev2:
                    out.append(responses.recent(len(self.recent)))
        if (not allow_expunge and self.qresync and self._expunged_modseq is not None
                and any(self.seq_of(uid) is not None for uid in self._expunged)):
            # RFC 7162 section 3.2 (and the example of section 6): MODSEQs
            # may have been sent while these VANISHED wait, so a client must
            # not take the highest of those as its HIGHESTMODSEQ; this one,
            # below the waiting expunges, it must use instead.
            out.append(responses.status(
                None, "OK", "VANISHED delayed",
                f"HIGHESTMODSEQ {self._expunged_modseq - 1}"))
        return out


#: The largest mailbox SELECT reads in full to list its keywords.
KEYWORDS_LOAD_LIMIT = 20_000


def flags_responses(keywords: set[str], read_only: bool) -> list[bytes]:
    """``* FLAGS`` and ``* OK [PERMANENTFLAGS ...]`` with C{keywords}."""
    kws = sorted(keywords)
    # RFC 3501's own order of the system flags, as its section 8 sample shows.
    out = [responses.flags(("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft",
                            *kws))]
    if read_only:
        out.append(responses.status(None, "OK", "No permanent flags permitted",
                                    "PERMANENTFLAGS ()"))
    else:
        permanent = " ".join(SYSTEM_FLAGS + tuple(kws) + ("\\*",))
        out.append(responses.status(None, "OK", "Flags permitted",
                                    f"PERMANENTFLAGS ({permanent})"))
    return out
