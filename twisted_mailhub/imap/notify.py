"""
The NOTIFY extension (RFC 5465): which events of which mailboxes a session
asked for, and the untagged responses they become.

For the selected mailbox the session itself pushes EXISTS, EXPUNGE (or
VANISHED) and FETCH as soon as it is not running a command (see
L{twisted_mailhub.imap.session.Session.wake}); this module says which of
them the client asked for and renders the FETCH attributes of MessageNew.
For the other mailboxes a listener is subscribed to each mailbox the event
groups match; its events become ``* STATUS`` responses (section 5.1 to
5.3).  The user's tree (L{twisted_mailhub.model.TreeKey}) tells of
created, deleted and renamed mailboxes and of subscriptions, which become
``* LIST`` responses (sections 5.4 and 5.5) and make the set of watched
mailboxes be computed again (section 6.4).

Changes made by this session are not told (section 5: the server SHOULD
omit them); those of other sessions, of deliveries and of other server
processes (through the store's notifier) are.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Iterator

from twisted.logger import Logger
from zope.interface import implementer

from twisted_mailhub.errors import MailhubError
from twisted_mailhub.imap import commands as C
from twisted_mailhub.imap import responses, wire
from twisted_mailhub.imap.grammar_notify import MESSAGE_EVENTS, SELECTED_FILTERS
from twisted_mailhub.imap.listing import list_entries
from twisted_mailhub.interfaces import IMailbox, IMailboxListener
from twisted_mailhub.model import (
    FlagsChanged,
    MailboxCreated,
    MailboxDeleted,
    MailboxRemoved,
    MailboxRenamed,
    MessagesAdded,
    MessagesExpunged,
    SubscriptionChanged,
    TreeEvent,
    TreeKey,
)
from twisted_mailhub.ranges import SequenceSet

if TYPE_CHECKING:
    from twisted_mailhub.imap.selected import SelectedMailbox
    from twisted_mailhub.imap.session import Session

log = Logger()

#: The events this server tells, in the order BADEVENT lists them.
SUPPORTED_EVENTS = ("MessageNew", "MessageExpunge", "FlagChange", "MailboxName",
                    "SubscriptionChange")
#: Mailboxes one session may watch for message events; more is refused
#: with NO [NOTIFICATIONOVERFLOW] (section 3.1), or, when the tree grows
#: past it later, ends the notifications (section 5.8).
MAX_WATCHED = 1000

_KIND = {MessagesAdded: "MessageNew", MessagesExpunged: "MessageExpunge",
         FlagsChanged: "FlagChange"}


class _Overflow(Exception):
    """More mailboxes match than L{MAX_WATCHED}."""


@implementer(IMailboxListener)
class _Watch:
    """The listener on one watched mailbox other than the selected one."""

    def __init__(self, owner: Notifications, name: str, mailbox: IMailbox,
                 events: frozenset[str]) -> None:
        self.owner = owner
        self.name = name
        self.mailbox = mailbox
        self.events = events

    def mailbox_event(self, event) -> None:
        self.owner._mailbox_changed(self, event)


@implementer(IMailboxListener)
class _TreeListener:
    """The listener on the user's tree of mailboxes."""

    def __init__(self, owner: Notifications) -> None:
        self.owner = owner

    def mailbox_event(self, event) -> None:
        self.owner._tree_changed(event)


def matches(group: C.NotifyGroup, name: str, delimiter: str, subscribed: set[str],
            names: frozenset[str] | None = None) -> bool:
    """
    Whether C{group}'s filter (other than SELECTED) names mailbox C{name}.
    C{names} is C{group.mailboxes} as a set, when the caller keeps one.
    """
    kind = group.filter
    if kind in ("PERSONAL", "INBOXES"):
        # Section 6.3: "inboxes" is "personal" where the server cannot
        # tell which mailboxes a delivery agent writes to (any, here).
        return True
    if kind == "SUBSCRIBED":
        return name in subscribed
    if names is None:
        names = frozenset(group.mailboxes)
    if kind == "MAILBOXES":
        # Section 6.6: no wildcard expansion.
        return name in names
    if kind == "SUBTREE":
        # The name or one of its superiors: a look-up per level, not a
        # comparison per name given (a client may give thousands).
        if name in names:
            return True
        cut = name.find(delimiter)
        while cut >= 0:
            if name[:cut] in names:
                return True
            cut = name.find(delimiter, cut + 1)
        return False
    return False


class Notifications:
    """The NOTIFY state of one session."""

    def __init__(self, session: Session) -> None:
        self.session = session
        #: The event groups of the last NOTIFY SET; None before any, or after NONE.
        self.groups: tuple[C.NotifyGroup, ...] | None = None
        self._watches: dict[str, _Watch] = {}
        self._tree: tuple[object, TreeKey, _TreeListener] | None = None
        self._subscribed: set[str] = set()
        # Names whose STATUS is due (a dict keeps their order).
        self._status: dict[str, None] = {}
        self._lists: list[TreeEvent] = []
        self._rewatch = False
        self._own: set[str] = set()
        # The mailbox names of each group in self.groups, as sets.
        self._names: dict[int, frozenset[str]] = {}

    # -- what the client asked for ---------------------------------------------

    @property
    def active(self) -> bool:
        return self.groups is not None

    @property
    def selected_group(self) -> C.NotifyGroup | None:
        for group in self.groups or ():
            if group.filter in SELECTED_FILTERS:
                return group
        return None

    @property
    def selected_events(self) -> frozenset[str]:
        """The message events to push at once for the selected mailbox."""
        group = self.selected_group
        return frozenset(group.events) if group is not None else frozenset()

    @property
    def delayed(self) -> bool:
        """SELECTED-DELAYED: expunges wait for a command that allows them (6.1.2)."""
        group = self.selected_group
        return group is not None and group.filter == "SELECTED-DELAYED"

    @property
    def pending(self) -> bool:
        return bool(self._status or self._lists or self._rewatch)

    # -- NOTIFY SET and NONE ---------------------------------------------------

    async def set(self, groups: tuple[C.NotifyGroup, ...], status: bool) -> None:
        """
        Replace what is watched by C{groups}; with C{status}, write the
        STATUS of every watched mailbox (section 3.1).  Raises
        L{CommandFailed} with BADEVENT or NOTIFICATIONOVERFLOW, leaving the
        notifications as they were.
        """
        from twisted_mailhub.imap.session import CommandFailed

        unsupported = sorted({e for g in groups for e in g.events} - set(SUPPORTED_EVENTS))
        if unsupported:
            # Section 3.1: NO, with every event the server does support.
            raise CommandFailed("Unsupported NOTIFY event: " + " ".join(unsupported),
                                "BADEVENT (" + " ".join(SUPPORTED_EVENTS) + ")")
        previous, previous_names = self.groups, self._names
        self.groups = groups
        self._names = {id(g): frozenset(g.mailboxes) for g in groups}
        try:
            await self._compute_watches()
        except _Overflow:
            self.groups, self._names = previous, previous_names
            await self._compute_watches()
            raise CommandFailed("Too many mailboxes to watch", "NOTIFICATIONOVERFLOW")
        # Changes before this command are not told again.
        self._status.clear()
        self._lists.clear()
        self._rewatch = False
        self._listen_to_tree()
        if self._tree is not None:
            notifier, key, _ = self._tree
            watching = getattr(notifier, "watching", None)
            if watching is not None:
                # A notifier that spans processes (twisted_mailhub.watch)
                # first learns the tree as it is, so that what another
                # process changes after this command is told.
                await watching(key)
        if status:
            for name in list(self._watches):
                if not self._is_selected(name):
                    await self._write_status(name)

    def clear(self) -> None:
        """NOTIFY NONE, or the session ends: watch nothing, tell nothing."""
        self.groups = None
        self._names = {}
        for watch in self._watches.values():
            watch.mailbox.unsubscribe(watch)
        self._watches.clear()
        if self._tree is not None:
            notifier, key, listener = self._tree
            notifier.unsubscribe(key, listener)
            self._tree = None
        self._status.clear()
        self._lists.clear()
        self._rewatch = False

    @contextmanager
    def own_change(self, *names: str) -> Iterator[None]:
        """
        This session is changing C{names} (CREATE, DELETE, RENAME,
        SUBSCRIBE): the tree events naming them are its own, not told.
        """
        self._own.update(names)
        try:
            yield
        finally:
            self._own.difference_update(names)

    # -- the watched mailboxes ------------------------------------------------------

    def _other_groups(self) -> list[C.NotifyGroup]:
        return [g for g in self.groups or () if g.filter not in SELECTED_FILTERS]

    def events_for(self, name: str) -> frozenset[str]:
        """The events asked for mailbox C{name} by the groups other than SELECTED."""
        delimiter = self.session.store.delimiter
        out: set[str] = set()
        for group in self._other_groups():
            if matches(group, name, delimiter, self._subscribed, self._names.get(id(group))):
                out.update(group.events)
        return frozenset(out)

    async def _compute_watches(self) -> None:
        store = self.session.store
        groups = self._other_groups()
        wanted: dict[str, frozenset[str]] = {}
        if groups:
            if any(g.filter == "SUBSCRIBED" for g in groups) or any(
                    "SubscriptionChange" in g.events for g in groups):
                self._subscribed = set(await store.subscriptions())
            infos = await store.list_mailboxes()
            for info in infos:
                if not info.selectable:
                    continue
                events = self.events_for(info.name) & MESSAGE_EVENTS
                if events:
                    wanted[info.name] = events
            if len(wanted) > MAX_WATCHED:
                raise _Overflow()
        for name in list(self._watches):
            if name not in wanted:
                watch = self._watches.pop(name)
                watch.mailbox.unsubscribe(watch)
        for name, events in wanted.items():
            watch = self._watches.get(name)
            if watch is not None:
                watch.events = events
                continue
            try:
                mailbox = await store.get_mailbox(name, read_only=True)
            except MailhubError:
                # Section 3.1: a name that is no mailbox is ignored.
                continue
            watch = _Watch(self, name, mailbox, events)
            mailbox.subscribe(watch)
            self._watches[name] = watch

    def _listen_to_tree(self) -> None:
        """Listen to the user's tree while a group other than SELECTED needs it."""
        if not self._other_groups():
            if self._tree is not None:
                notifier, key, listener = self._tree
                notifier.unsubscribe(key, listener)
                self._tree = None
            return
        notifier = getattr(self.session.store, "notifier", None)
        if self._tree is not None or notifier is None:
            return
        key = TreeKey(self.session.store.username)
        listener = _TreeListener(self)
        notifier.subscribe(key, listener)
        self._tree = (notifier, key, listener)

    def _is_selected(self, name: str) -> bool:
        selected = self.session.selected
        return selected is not None and selected.mailbox.name == name

    # -- events ----------------------------------------------------------------------

    def _mailbox_changed(self, watch: _Watch, event) -> None:
        if self._watches.get(watch.name) is not watch:
            return
        if isinstance(event, MailboxRemoved):
            # Deleted, renamed, or given a new UIDVALIDITY (which section
            # 5.1 says to tell): look at the tree again, and tell the
            # STATUS of whatever has this name then.
            self._rewatch = True
            if watch.events & {"FlagChange", "MessageNew"}:
                self._status[watch.name] = None
            self.session.wake()
            return
        if getattr(event, "origin", None) is self.session:
            return
        kind = _KIND.get(type(event))
        if kind is None or kind not in watch.events or self._is_selected(watch.name):
            # Section 3.1: the SELECTED group alone says what the selected
            # mailbox tells.
            return
        self._status[watch.name] = None
        self.session.wake()

    def _tree_changed(self, event: TreeEvent) -> None:
        if self.groups is None:
            return
        self._rewatch = True
        names = {getattr(event, "name", None), getattr(event, "old", None),
                 getattr(event, "new", None)}
        if not (names & self._own):
            self._lists.append(event)
        self.session.wake()

    # -- responses -------------------------------------------------------------------

    async def deliver(self) -> None:
        """
        Write what is due: LIST of tree changes, then STATUS of mailboxes.
        A store that fails costs those responses, not the session (nor the
        tagged response of the command whose end this is).
        """
        from twisted_mailhub.connection import ClientGone

        try:
            await self._deliver()
        except ClientGone:
            raise
        except Exception:
            log.failure("Telling NOTIFY events")
            self._status.clear()
            self._lists.clear()
            self._rewatch = False

    async def _deliver(self) -> None:
        write = self.session.io.write
        if self._rewatch:
            self._rewatch = False
            try:
                await self._compute_watches()
            except _Overflow:
                # Section 5.8: as if NOTIFY NONE had been received.
                self.clear()
                write(responses.status(None, "OK", "Too many mailboxes to watch; "
                                       "notifications ended", "NOTIFICATIONOVERFLOW"))
                return
        if self._lists:
            events, self._lists = self._lists, []
            await self._write_lists(events)
        while self._status:
            names = list(self._status)
            self._status.clear()
            for name in names:
                if name in self._watches:
                    await self._write_status(name)

    async def _write_status(self, name: str) -> None:
        """
        ``* STATUS``: MESSAGES, UIDNEXT and UIDVALIDITY (sections 5.2 and
        5.3), UNSEEN when flag changes are asked for (5.1, which allows it
        so that a client without CONDSTORE learns of them), and
        HIGHESTMODSEQ then too (3.1: the server supports CONDSTORE) or
        once CONDSTORE is enabled.
        """
        from twisted_mailhub.imap.handlers.mailboxes import encode_name

        watch = self._watches[name]
        try:
            st = await watch.mailbox.status()
        except MailhubError:
            # Gone meanwhile: its MailboxRemoved makes the watches be
            # looked at again.
            return
        items = [b"MESSAGES %d" % st.messages, b"UIDNEXT %d" % st.uidnext,
                 b"UIDVALIDITY %d" % st.uidvalidity]
        if "FlagChange" in watch.events:
            items.append(b"UNSEEN %d" % st.unseen)
        if self.session.condstore or "FlagChange" in watch.events:
            items.append(b"HIGHESTMODSEQ %d" % st.highestmodseq)
        self.session.io.write(responses.untagged(
            b"STATUS " + encode_name(self.session, name) + b" " + wire.plist(items)))

    async def _write_lists(self, events: list[TreeEvent]) -> None:
        """Sections 5.4 and 5.5: a LIST per affected name, attributes as now."""
        store = self.session.store
        delimiter = store.delimiter
        infos = await store.list_mailboxes()
        subscribed = set(await store.subscriptions())
        before = self._subscribed
        self._subscribed = subscribed
        lines: list[tuple[str, str | None]] = []
        for event in events:
            if isinstance(event, MailboxRenamed):
                if self._wants("MailboxName", event.new, event.old):
                    lines.append((event.new, event.old))
            elif isinstance(event, (MailboxCreated, MailboxDeleted)):
                # The mailbox and its direct parent are affected (5.4).
                affected = [event.name]
                parent = event.name.rpartition(delimiter)[0]
                if parent and parent != event.name:
                    affected.append(parent)
                for name in affected:
                    if self._wants("MailboxName", name):
                        lines.append((name, None))
            elif isinstance(event, SubscriptionChanged):
                if self._wants("SubscriptionChange", event.name, subscribed=before | subscribed):
                    lines.append((event.name, None))
        for name, old in lines:
            self.session.io.write(self._list_line(infos, subscribed, name, old))

    def _wants(self, event: str, *names: str, subscribed: set[str] | None = None) -> bool:
        delimiter = self.session.store.delimiter
        subs = self._subscribed if subscribed is None else subscribed
        return any(event in g.events
                   and matches(g, name, delimiter, subs, self._names.get(id(g)))
                   for g in self._other_groups() for name in names)

    def _list_line(self, infos, subscribed: set[str], name: str, old: str | None) -> bytes:
        from twisted_mailhub.imap.handlers.mailboxes import encode_name

        delimiter = self.session.store.delimiter
        entries = list_entries(infos, [name], delimiter, subscribed=subscribed,
                               return_subscribed=True)
        if entries:
            attributes = list(entries[0].attributes)
        else:
            # 5.4: a name that no longer refers to a mailbox.
            attributes = ["\\NonExistent"]
            if name in subscribed:
                attributes.append("\\Subscribed")
        line = (b"LIST (" + " ".join(attributes).encode("ascii") + b") "
                + wire.string(delimiter) + b" " + encode_name(self.session, name))
        if old is not None:
            line += b' ("OLDNAME" (' + encode_name(self.session, old) + b"))"
        return responses.untagged(line)

    # -- the selected mailbox --------------------------------------------------------

    async def fetch_new(self, selected: SelectedMailbox) -> None:
        """
        Section 5.2: after the EXISTS of new messages (that this session
        did not add) and the ESEARCH ADDTO of search contexts, a FETCH of
        the attributes MessageNew asked for, with those of each context
        the message joined (section 7), in one response per message.
        """
        new, selected.announced = selected.announced, []
        contexts = self.session.contexts
        joined, contexts.new_fetch = contexts.new_fetch, {}
        if not new:
            return
        group = self.selected_group
        base: tuple[C.FetchAttr, ...] = ()
        if group is not None and "MessageNew" in group.events:
            base = group.fetch
        by_attrs: dict[tuple[C.FetchAttr, ...], list[int]] = {}
        for uid in new:
            # Each attribute once (section 5.2: no duplicate data).
            attrs = tuple(dict.fromkeys(base + tuple(joined.get(uid, ()))))
            if attrs:
                by_attrs.setdefault(attrs, []).append(uid)
        from twisted_mailhub.imap.handlers.messages import fetch
        from twisted_mailhub.imap.session import CommandFailed

        from twisted_mailhub.connection import ClientGone

        for attrs, uids in by_attrs.items():
            command = C.Fetch("", SequenceSet.from_numbers(uids), attrs, uid=True)
            try:
                await fetch(self.session, command)
            except (CommandFailed, MailhubError):
                # Expunged meanwhile: its EXPUNGE will follow.
                pass
            except ClientGone:
                raise
            except Exception:
                log.failure("Fetching new messages for NOTIFY")
