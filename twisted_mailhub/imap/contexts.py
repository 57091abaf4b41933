"""
Updating search and sort contexts (RFC 5267 section 4.3: CONTEXT=SEARCH
and CONTEXT=SORT).

A SEARCH or SORT with the UPDATE return option leaves a context behind:
its search program and the result it gave, as UIDs in the requested order
(mailbox order for SEARCH, the sort order for SORT).  Whenever untagged
updates may be sent, the session asks L{Contexts.refresh} for the changes
of each result as ``ESEARCH (TAG ...) ADDTO/REMOVEFROM`` responses; the
selected mailbox calls L{Contexts.expunging} before it forgets expunged
messages, so that a REMOVEFROM naming them by sequence number comes before
their EXPUNGE (section 4.3.4).

Contexts live as long as the mailbox is selected, or until CANCELUPDATE.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from twisted.logger import Logger

from twisted_mailhub import criteria as sk
from twisted_mailhub.connection import ClientGone
from twisted_mailhub.imap import responses
from twisted_mailhub.ranges import SequenceSet, format_numbers

if TYPE_CHECKING:
    from twisted_mailhub.imap.selected import SelectedMailbox
    from twisted_mailhub.imap.session import Session
    from twisted_mailhub.imap.sort import Criterion

log = Logger()

#: Updating contexts one session may hold (section 4.3.1 asks for at least
#: one); a searching command past them gets ``NO [NOUPDATE "tag"]``.
MAX_CONTEXTS = 16


@dataclass(slots=True)
class UpdateContext:
    """One updating context: what the client holds, as UIDs."""

    tag: str
    uid: bool
    key: sk.SearchKey
    #: The sort criteria of a SORT; None for a SEARCH.
    criteria: tuple[Criterion, ...] | None
    #: 4 bytes a message, whatever the size of the result.
    results: array = field(default_factory=lambda: array("I"))
    #: RFC 5465 section 7: what to FETCH of a new message that joins.
    fetch: tuple = ()


class Contexts:
    """The updating contexts of one session's selected mailbox."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.active: dict[str, UpdateContext] = {}
        # The mailbox changes counted when the results were last computed.
        self._seen = -1
        # The tag and fixed search program of the command starting one.
        self._starting: tuple[str, sk.SearchKey] | None = None
        #: New messages that joined a result with FETCH attributes (RFC
        #: 5465 section 7), and those attributes, for the FETCH that
        #: follows the ADDTO (imap/notify.py).
        self.new_fetch: dict[int, list] = {}

    def __bool__(self) -> bool:
        return bool(self.active)

    @property
    def stale(self) -> bool:
        """Whether the mailbox changed since the results were last told."""
        selected = self.session.selected
        return bool(self.active) and selected is not None and selected.changes != self._seen

    def check_tag(self, tag: str, key: sk.SearchKey) -> None:
        """
        A searching command C{tag} with UPDATE begins: reusing the tag of a
        live context is BAD (section 4.3).  C{key} is fixed now, before a
        SAVE of the same command changes what ``$`` stands for.
        """
        if tag in self.active:
            from twisted_mailhub.imap.session import CommandFailed

            raise CommandFailed("Tag reuse", condition="BAD")
        self._starting = (tag, freeze(key, self.session))

    def start(self, tag: str, uid: bool, key: sk.SearchKey,
              criteria: tuple[Criterion, ...] | None, results: Sequence[int],
              fetch: tuple = ()) -> None:
        """
        Keep the results of the searching command C{tag} up to date, or
        say why not (section 4.3.1: the other return options were answered
        all the same).
        """
        session = self.session
        if len(self.active) >= MAX_CONTEXTS:
            self._starting = None
            session.io.write(responses.status(None, "NO", "Too many contexts",
                                              f'NOUPDATE {_quoted(tag)}'))
            return
        starting, self._starting = self._starting, None
        if starting is not None and starting[0] == tag:
            frozen = starting[1]
        else:
            frozen = freeze(key, session)
        session.selected.on_expunge = self.expunging
        # Checked again at the end of this command: changes not yet told
        # (mail the view does not hold yet) are not in these results.
        self._seen = -1
        self.active[tag] = UpdateContext(tag, uid, frozen, criteria, array("I", results), fetch)

    def cancel(self, tags: Sequence[str]) -> None:
        for tag in tags:
            self.active.pop(tag, None)

    def clear(self) -> None:
        self.active.clear()
        self.new_fetch.clear()

    # -- updates ---------------------------------------------------------------

    def expunging(self, uids: Sequence[int]) -> None:
        """
        C{uids} are about to leave the view (their EXPUNGE or VANISHED
        follows): remove them from every result, told while their sequence
        numbers still stand.
        """
        gone = set(uids)
        for context in self.active.values():
            if gone.isdisjoint(context.results):
                continue
            new = [u for u in context.results if u not in gone]
            self._write(context, new)

    async def refresh(self) -> None:
        """
        Tell the changes of every result since it was last told, if the
        mailbox changed (a message arrived, flags changed, ...).  New
        messages must already be in the view (their EXISTS sent).
        """
        if not self.stale:
            return
        selected = self.session.selected
        self._seen = selected.changes
        for context in list(self.active.values()):
            try:
                new = await evaluate(self.session, context.key, context.criteria)
            except ClientGone:
                raise
            except Exception:
                # Told at the next change instead; the command whose end
                # this is still gets its tagged response.
                log.failure("Updating the results of {tag}", tag=context.tag)
                continue
            if context.tag in self.active and self.session.selected is selected:
                self._write(context, new)

    def _write(self, context: UpdateContext, new: Sequence[int]) -> None:
        selected = self.session.selected
        if context.fetch and selected.announced:
            # Only mail that arrived, not a message whose flags now match
            # (RFC 5465 section 7), nor one this session added itself.
            fresh = set(selected.announced).difference(context.results)
            for uid in new:
                if uid in fresh:
                    self.new_fetch.setdefault(uid, []).extend(context.fetch)
        line = update_response(context, new, selected)
        context.results = array("I", new)
        if line is not None:
            self.session.io.write(line)


def update_response(context: UpdateContext, new: Sequence[int],
                    selected: SelectedMailbox) -> bytes | None:
    """
    The ``ESEARCH`` response taking the client from C{context.results} to
    C{new}, or None if they hold the same.  The removals come first, then
    the additions.  A SEARCH context uses position 0 and sets in mailbox
    order (section 4.3.3, the RECOMMENDED form); a SORT context gives the
    positions in the sort order, a run of neighbours in one pair.
    """
    old: Sequence[int] = context.results
    if context.uid:
        number = int
    else:
        # Numbers only for messages in the view (all are, as expunged ones
        # leave the results before the view: see Contexts.expunging).
        number = selected.seq_of
        old = [u for u in old if number(u) is not None]
    kept = set(new)
    removed = [u for u in old if u not in kept]
    present = set(old)
    added = [u for u in new if u not in present]
    if not removed and not added:
        return None
    items: list[bytes] = []
    if context.criteria is None:
        if removed:
            items.append(b"REMOVEFROM (0 %s)" % _set(number(u) for u in removed))
        if added:
            items.append(b"ADDTO (0 %s)" % _set(number(u) for u in added))
    else:
        if removed:
            items.append(b"REMOVEFROM (%s)" % b" ".join(_removals(old, kept, number)))
        if added:
            items.append(b"ADDTO (%s)" % b" ".join(_additions(new, present, number)))
    head = b'ESEARCH (TAG %s)' % _quoted(context.tag).encode("ascii", "replace")
    if context.uid:
        head += b" UID"
    return responses.untagged(b" ".join([head, *items]))


def _removals(old: Sequence[int], kept: set[int], number) -> list[bytes]:
    """
    Section 4.3.4 pairs removing from C{old} what is not C{kept}: each
    position is where the first of its run stands once the earlier runs
    are gone, and the run follows it.
    """
    pairs: list[bytes] = []
    position = 0  # of the next result in the list as the client has it
    run: list[int] = []
    for uid in old:
        if uid in kept:
            if run:
                pairs.append(b"%d %s" % (position + 1, _ordered(number(u) for u in run)))
                run = []
            position += 1
        else:
            run.append(uid)
    if run:
        pairs.append(b"%d %s" % (position + 1, _ordered(number(u) for u in run)))
    return pairs


def _additions(new: Sequence[int], present: set[int], number) -> list[bytes]:
    """
    Section 4.3.3 pairs inserting into the list what C{new} has and it has
    not: in the order of C{new}, each run at the position its first takes.
    """
    pairs: list[bytes] = []
    run_start, run = 0, []
    for index, uid in enumerate(new):
        if uid in present:
            if run:
                pairs.append(b"%d %s" % (run_start + 1, _ordered(number(u) for u in run)))
                run = []
            continue
        if not run:
            run_start = index
        run.append(uid)
    if run:
        pairs.append(b"%d %s" % (run_start + 1, _ordered(number(u) for u in run)))
    return pairs


def _set(numbers) -> bytes:
    return format_numbers(numbers).encode("ascii")


def _ordered(numbers) -> bytes:
    from twisted_mailhub.imap.handlers.sorting import sorted_set

    return sorted_set(list(numbers))


def _quoted(tag: str) -> str:
    return '"' + tag.replace("\\", "\\\\").replace('"', '\\"') + '"'


# -- the search program ---------------------------------------------------------------


def freeze(key: sk.SearchKey, session: Session) -> sk.SearchKey:
    """
    C{key} with its message sequence numbers and ``$`` turned into the
    UIDs they name now: the errata to RFC 3501 that section 4.3 cites has
    them evaluated when the command is received, so later renumbering does
    not change what the context searches.
    """
    view = session.selected.uids
    if isinstance(key, sk.Sequence):
        if key.set.saved:
            return _uids(session.saved_search)
        count = len(view)
        return _uids(view[n - 1] for low, high in key.set.bounds(count)
                     for n in range(max(low, 1), min(high, count) + 1))
    if isinstance(key, sk.Uid) and key.set.saved:
        return _uids(session.saved_search)
    if isinstance(key, sk.Not):
        return sk.Not(freeze(key.key, session))
    if isinstance(key, sk.Or):
        return sk.Or(freeze(key.left, session), freeze(key.right, session))
    if isinstance(key, sk.And):
        return sk.And(tuple(freeze(k, session) for k in key.keys))
    return key


def _uids(uids: Any) -> sk.SearchKey:
    uids = list(uids)
    if not uids:
        return sk.Not(sk.All())
    return sk.Uid(SequenceSet.from_numbers(uids))


async def evaluate(session: Session, key: sk.SearchKey,
                   criteria: tuple[Criterion, ...] | None) -> list[int]:
    """The UIDs C{key} finds now, in mailbox order or sorted by C{criteria}."""
    from twisted_mailhub.imap import sort as S
    from twisted_mailhub.imap.handlers.sorting import _entries, _search

    found = await _search(session, key)
    if criteria is None:
        return found
    header = any(c.key in S.HEADER_KEYS for c in criteria)
    _metas, entries = await _entries(session, found, header)
    return [e.uid for e in S.order(entries, criteria)]
