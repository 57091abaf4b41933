"""
The generic SEARCH evaluator (RFC 3501 / RFC 9051 section 6.4.4).

L{search} evaluates a L{twisted_mailhub.criteria} tree against one
mailbox.  A mailbox providing L{ISearchableMailbox} is asked first; when it
declines (returns C{None}) the tree is evaluated here, reading as little as
possible (BODY and TEXT are answered by the mailbox's full-text index when
it provides L{ITextIndexedMailbox}, and then cost no more than a flag):

  1. keys answerable from L{MessageMeta} (flags, UID, sequence numbers,
     sizes, INTERNALDATE, MODSEQ, \\Recent) are evaluated for batches of
     L{BATCH_SIZE} messages from one C{metadata()} call each;
  2. only messages whose outcome still depends on header keys (or SENT*
     dates) have their parsed structure loaded;
  3. only messages whose outcome still depends on BODY or TEXT have their
     content read.

Each step uses three-valued logic: a key that cannot be decided with what
has been loaded so far yields C{None} ("unknown"), and AND/OR/NOT propagate
it the way SQL does, so that a cheap key that already decides the outcome
spares loading anything more.  Children of AND and OR are tried cheapest
first.
"""

from __future__ import annotations

import inspect
from functools import cached_property
from collections.abc import Callable, Iterable, Sequence, Set
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any

from twisted_mailhub.errors import MessageExpunged
from twisted_mailhub import criteria as sk
from twisted_mailhub.interfaces import ISearchableMailbox, ITextIndexedMailbox
from twisted_mailhub.model import MessageMeta, canonical_flag

BATCH_SIZE = 500
"""How many messages' metadata one C{IMailbox.metadata} call asks for."""

# What a key needs to be decided, cheapest first.
_META, _STRUCTURE, _CONTENT = 0, 1, 2


@dataclass
class SearchContext:
    """
    The session state a SEARCH is evaluated against.

    C{uids} is the session's view of the mailbox: the UID of message
    sequence number C{i + 1} is at index C{i} (ascending).  C{recent} holds
    the UIDs that are \\Recent for this session; C{saved} the UIDs of the
    last SEARCH RETURN (SAVE) result, which ``$`` stands for (RFC 5182).
    C{now} is the current time for OLDER/YOUNGER (RFC 5032); when C{None}
    the clock is read once at the start of the search.  C{progress}, when
    given, is called with the count of messages tested so far as the
    generic evaluator works through them (RFC 9585 progress reports).
    """

    uids: Sequence[int]
    recent: Set[int]
    saved: Sequence[int] = ()
    now: datetime | None = None
    progress: Callable[[int], None] | None = None


# A date for metas made only to test flags.
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


async def search(mailbox: Any, key: sk.SearchKey, context: SearchContext) -> list[int]:
    """
    Return the ascending UIDs among C{context.uids} whose messages match
    C{key}.

    C{mailbox} is an L{IMailbox}.  If it also provides L{ISearchableMailbox}
    and its C{search} returns a list, that list is used (restricted to the
    session's view, since a backend may know of messages the session has
    not been told about yet); if it returns C{None} the key is evaluated
    generically.  Messages expunged while the search runs do not match.
    """
    shared = getattr(mailbox, "index", None)
    if shared is not None and shared.complete and is_metadata_only(key):
        # The in-process index answers flag and UID keys without the store.
        return _evaluate_known(shared, key, context)
    searchable = ISearchableMailbox(mailbox, None)
    if searchable is not None:
        found = searchable.search(key, context)
        if inspect.isawaitable(found):
            found = await found
        if found is not None:
            view = set(context.uids)
            return sorted(uid for uid in set(found) if uid in view)
    return await _evaluate(mailbox, key, context, await _text_matches(mailbox, key))


async def _text_matches(mailbox: Any, key: sk.SearchKey) -> dict[tuple[str, str], frozenset[int]]:
    """What C{mailbox}'s full-text index says of the BODY and TEXT keys of C{key}."""
    indexed = ITextIndexedMailbox(mailbox, None)
    if indexed is None:
        return {}
    terms = sorted(set(_text_terms(key)))
    if not terms:
        return {}
    found = await indexed.text_matches(terms)
    if found is None:
        return {}
    return {term: frozenset(uids) for term, uids in zip(terms, found)}


def _text_terms(key: sk.SearchKey) -> Iterable[tuple[str, str]]:
    if isinstance(key, sk.And):
        for k in key.keys:
            yield from _text_terms(k)
    elif isinstance(key, sk.Or):
        yield from _text_terms(key.left)
        yield from _text_terms(key.right)
    elif isinstance(key, sk.Not):
        yield from _text_terms(key.key)
    elif isinstance(key, sk.Body):
        yield "body", key.value
    elif isinstance(key, sk.Text):
        yield "text", key.value


def is_metadata_only(key: sk.SearchKey) -> bool:
    """
    Whether C{key} can be decided from L{MessageMeta} and the session's
    state alone, without a message's header or content.
    """
    return _cost(key) == _META


# -- evaluation ---------------------------------------------------------------


async def _evaluate(mailbox: Any, key: sk.SearchKey, context: SearchContext,
                    texts: dict[tuple[str, str], frozenset[int]] | None = None) -> list[int]:
    node = _Compiler(context, texts).compile(key)
    if node.subset is None:
        candidates = list(context.uids)
    else:
        candidates = sorted(node.subset)
    matched: list[int] = []
    test = node.test
    # Most messages are decided by their metadata alone: one candidate
    # object serves them all, and only the undecided await anything.
    probe = _Candidate(None)
    progress = context.progress
    for start in range(0, len(candidates), BATCH_SIZE):
        if progress is not None:
            progress(start)
        metas = await mailbox.metadata(candidates[start : start + BATCH_SIZE])
        for done, meta in enumerate(metas, start):
            probe.meta, probe.uid = meta, meta.uid
            outcome = test(probe)
            if outcome is None:
                if progress is not None:
                    # Reading a message is what takes long.
                    progress(done)
                outcome = await _decide(mailbox, node, _Candidate(meta))
            if outcome:
                matched.append(meta.uid)
    return matched


def _evaluate_known(index: Any, key: sk.SearchKey, context: SearchContext) -> list[int]:
    """
    Evaluate a metadata-only C{key} on a complete in-process index: no
    store call and no await; one test per message of the session's view,
    or, for a flag key, one per distinct flag set.
    """
    node = _Compiler(context).compile(key)
    candidates = context.uids if node.subset is None else sorted(node.subset)
    held = index.held().get
    if isinstance(key, sk.Flag):
        # UNSEEN, FLAGGED, DELETED...: the answer depends on the flag set
        # alone, and the index shares one frozenset among messages with
        # the same flags, so each distinct set is tested once -- and when
        # no set the index ever held matches, no message can.
        flag_test = node.test
        probe = _Candidate(None)
        matching = []
        for flags in index.flag_sets():
            probe.meta = MessageMeta(0, flags, _EPOCH, 0, 0)
            if flag_test(probe):
                matching.append(index.with_flags(flags))
        if not matching:
            return []
        # UIDs expunged since the session last looked are in no set, and
        # those added since are not candidates: both are left out.
        found = matching[0].union(*matching[1:])
        if candidates and candidates[-1] - candidates[0] + 1 == len(candidates):
            # A view without gaps (nothing expunged below its top): being
            # in it is being in its range.
            low, high = candidates[0], candidates[-1]
            return sorted([uid for uid in found if low <= uid <= high])
        return sorted(found.intersection(candidates))
    test = node.test
    probe = _Candidate(None)
    matched = []
    for uid in candidates:
        meta = held(uid)
        if meta is None:
            continue
        probe.meta, probe.uid = meta, uid
        if test(probe):
            matched.append(uid)
    return matched


async def _decide(mailbox: Any, node: "_Node", candidate: "_Candidate") -> bool:
    outcome = node.test(candidate)
    if outcome is not None:
        return outcome
    try:
        message = await mailbox.open_message(candidate.uid)
        candidate.structure = await message.structure()
        outcome = node.test(candidate)
        if outcome is not None:
            return outcome
        candidate.load_text(await message.read())
    except MessageExpunged:
        return False
    return bool(node.test(candidate))


class _Candidate:
    """One message under evaluation and what has been loaded for it."""

    __slots__ = ("meta", "uid", "structure", "header_text", "body_text", "_sent")

    def __init__(self, meta: MessageMeta | None) -> None:
        self.meta = meta
        self.uid = meta.uid if meta is not None else 0
        self.structure: Any = None
        self.header_text: str | None = None
        self.body_text: str | None = None
        self._sent: Any = _UNSET

    def sent_date(self) -> date | None:
        if self._sent is _UNSET:
            from twisted_mailhub.mime.text import sent_date

            self._sent = sent_date(self.structure)
        return self._sent

    def load_text(self, data: bytes) -> None:
        from twisted_mailhub.mime.text import search_text

        header, body = search_text(data, self.structure)
        self.header_text = header.casefold()
        self.body_text = body.casefold()


_UNSET = object()

Outcome = bool | None
Test = Callable[[_Candidate], Outcome]


@dataclass
class _Node:
    """
    A compiled key: C{test} decides a candidate (C{None}: not yet), C{cost}
    is what it needs loaded, and C{subset}, when not C{None}, is a set of
    UIDs outside which it cannot match (used to skip fetching metadata).
    """

    test: Test
    cost: int = _META
    subset: frozenset[int] | None = None


class _Compiler:
    """Turns a search key into L{_Node}s with sequence sets resolved."""

    def __init__(self, context: SearchContext,
                 texts: dict[tuple[str, str], frozenset[int]] | None = None) -> None:
        self.context = context
        # The UIDs matching each (field, needle), from a full-text index.
        self.texts = texts or {}
        self.now = context.now or datetime.now(timezone.utc)
        if self.now.tzinfo is None:
            self.now = self.now.replace(tzinfo=timezone.utc)

    # Only sequence-set and UID keys need the view as a list and a set:
    # flag searches of a large mailbox do not pay for building them.
    @cached_property
    def view(self) -> list[int]:
        return list(self.context.uids)

    @cached_property
    def view_set(self) -> frozenset[int]:
        return frozenset(self.view)

    def compile(self, key: sk.SearchKey) -> _Node:
        method = getattr(self, "_" + type(key).__name__.lower(), None)
        if method is None:
            raise TypeError(f"not a search key: {key!r}")
        return method(key)

    # -- combinators ---------------------------------------------------------

    def _and(self, key: sk.And) -> _Node:
        children = sorted((self.compile(k) for k in key.keys), key=lambda n: n.cost)
        if not children:
            return _Node(lambda c: True)
        if len(children) == 1:
            return children[0]
        subsets = [n.subset for n in children if n.subset is not None]
        subset = frozenset.intersection(*subsets) if subsets else None
        tests = [n.test for n in children]

        def test(c: _Candidate) -> Outcome:
            unknown = False
            for t in tests:
                outcome = t(c)
                if outcome is False:
                    return False
                if outcome is None:
                    unknown = True
            return None if unknown else True

        return _Node(test, children[-1].cost, subset)

    def _or(self, key: sk.Or) -> _Node:
        children = sorted((self.compile(key.left), self.compile(key.right)), key=lambda n: n.cost)
        subset = None
        if children[0].subset is not None and children[1].subset is not None:
            subset = children[0].subset | children[1].subset
        tests = [n.test for n in children]

        def test(c: _Candidate) -> Outcome:
            unknown = False
            for t in tests:
                outcome = t(c)
                if outcome is True:
                    return True
                if outcome is None:
                    unknown = True
            return None if unknown else False

        return _Node(test, children[-1].cost, subset)

    def _not(self, key: sk.Not) -> _Node:
        inner = self.compile(key.key)
        inner_test = inner.test

        def test(c: _Candidate) -> Outcome:
            outcome = inner_test(c)
            return None if outcome is None else not outcome

        return _Node(test, inner.cost)

    # -- metadata keys -------------------------------------------------------

    def _all(self, key: sk.All) -> _Node:
        return _Node(lambda c: True)

    def _flag(self, key: sk.Flag) -> _Node:
        flag, present = canonical_flag(key.flag), key.present
        if flag.startswith("\\"):
            return _Node(lambda c: (flag in c.meta.flags) == present)
        # Keywords are matched without regard to case, as most servers do:
        # a client's "$junk" finds a message flagged "$Junk".
        folded = flag.casefold()
        return _Node(
            lambda c: any(f.casefold() == folded for f in c.meta.flags) == present
        )

    def _recent(self, key: sk.Recent) -> _Node:
        recent, present = self.context.recent, key.present
        return _Node(lambda c: (c.uid in recent) == present)

    def _new(self, key: sk.New) -> _Node:
        recent = self.context.recent
        return _Node(lambda c: c.uid in recent and "\\Seen" not in c.meta.flags)

    def _size(self, key: sk.Size) -> _Node:
        n = key.value
        if key.op == "larger":
            return _Node(lambda c: c.meta.size > n)
        return _Node(lambda c: c.meta.size < n)

    def _modseq(self, key: sk.ModSeq) -> _Node:
        n = key.value
        return _Node(lambda c: c.meta.modseq >= n)

    def _age(self, key: sk.Age) -> _Node:
        # RFC 5032 section 2: both bounds are inclusive, and the matching
        # is exact "to the resolution of a second" -- the resolution of
        # INTERNALDATE as a client sees it.  A store may keep fractions of
        # a second (an APPEND without a date): they are not looked at.
        target = key.target(self.now)
        if key.op == "older":
            return _Node(lambda c: c.meta.internaldate.replace(microsecond=0) <= target)
        return _Node(lambda c: c.meta.internaldate.replace(microsecond=0) >= target)

    def _sequence(self, key: sk.Sequence) -> _Node:
        if key.set.saved:
            return self._uids(self.context.saved)
        count = len(self.view)
        # Numbers beyond the view name no message; "*" is the last one.
        numbers = set()
        for low, high in key.set.bounds(count):
            numbers.update(range(max(low, 1), min(high, count) + 1))
        return self._uids(self.view[n - 1] for n in numbers)

    def _uid(self, key: sk.Uid) -> _Node:
        if key.set.saved:
            return self._uids(self.context.saved)
        return self._uids(key.set.resolve_uids(self.view))

    def _uids(self, uids: Iterable[int]) -> _Node:
        subset = self.view_set.intersection(uids)
        return _Node(lambda c: c.uid in subset, _META, subset)

    def _date(self, key: sk.Date) -> _Node:
        compare = _DATE_OPS[key.op]
        value = key.value
        if key.field == "internal":
            # The date as written in the INTERNALDATE, in its own zone
            # (RFC 3501 appendix B, item 71).
            return _Node(lambda c: compare(c.meta.internaldate.date(), value))
        if key.field == "saved":
            # RFC 8514 section 4.3: the INTERNALDATE where no save date is kept.
            return _Node(lambda c: compare((c.meta.saved or c.meta.internaldate).date(), value))

        def test(c: _Candidate) -> Outcome:
            if c.structure is None:
                return None
            sent = c.sent_date()
            # RFC 9051 section 6.4.4 defines SENT* only by the Date: field;
            # a message without a usable one has no sent date to compare,
            # so it matches none of them (and NOT SENT* matches it).
            return sent is not None and compare(sent, value)

        return _Node(test, _STRUCTURE)

    def _identity(self, key: sk.Identity) -> _Node:
        value = key.value
        return _Node(lambda c: c.meta.identity == value)

    def _savedateknown(self, key: sk.SaveDateKnown) -> _Node:
        return _Node(lambda c: c.meta.saved is not None)

    # -- content keys --------------------------------------------------------

    def _header(self, key: sk.Header) -> _Node:
        name, needle = key.name.lower(), key.value.casefold()

        def test(c: _Candidate) -> Outcome:
            if c.structure is None:
                return None
            from twisted_mailhub.mime.text import header_search_values

            # Address fields also match their parsed addresses.  An empty
            # needle is a substring of anything: it tests presence.
            values = header_search_values(c.structure, name)
            return bool(values) and any(needle in v.casefold() for v in values)

        return _Node(test, _STRUCTURE)

    def _indexed(self, field: str, needle: str) -> _Node | None:
        found = self.texts.get((field, needle))
        if found is None:
            return None
        # The index knows messages the session may not have been told of.
        return _Node(lambda c: c.uid in found, _META, found & self.view_set)

    def _body(self, key: sk.Body) -> _Node:
        indexed = self._indexed("body", key.value)
        if indexed is not None:
            return indexed
        needle = key.value.casefold()

        def test(c: _Candidate) -> Outcome:
            if c.body_text is None:
                return None
            return needle in c.body_text

        return _Node(test, _CONTENT)

    def _text(self, key: sk.Text) -> _Node:
        indexed = self._indexed("text", key.value)
        if indexed is not None:
            return indexed
        needle = key.value.casefold()

        def test(c: _Candidate) -> Outcome:
            if c.body_text is not None:
                return needle in c.header_text or needle in c.body_text  # type: ignore[operator]
            if c.structure is None:
                return None
            # A hit in the top-level header decides it without reading the
            # content; a miss does not (MIME part headers count too).
            for values in c.structure.headers.values():
                if any(needle in v.casefold() for v in values):
                    return True
            return None

        return _Node(test, _CONTENT)


_DATE_OPS: dict[str, Callable[[date, date], bool]] = {
    "before": lambda d, v: d < v,
    "on": lambda d, v: d == v,
    "since": lambda d, v: d >= v,
}


def _cost(key: sk.SearchKey) -> int:
    if isinstance(key, sk.And):
        return max((_cost(k) for k in key.keys), default=_META)
    if isinstance(key, sk.Or):
        return max(_cost(key.left), _cost(key.right))
    if isinstance(key, sk.Not):
        return _cost(key.key)
    if isinstance(key, (sk.Body, sk.Text)):
        return _CONTENT
    if isinstance(key, sk.Header) or (isinstance(key, sk.Date) and key.field == "sent"):
        return _STRUCTURE
    return _META


__all__ = ["BATCH_SIZE", "SearchContext", "is_metadata_only", "search"]
