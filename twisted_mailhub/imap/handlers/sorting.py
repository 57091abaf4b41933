"""
SORT and THREAD of the selected state (RFC 5256), with the ESORT return
options (RFC 5267 section 3) and the display keys of RFC 5957.

The search keys are evaluated as SEARCH evaluates them; the messages found
are then sorted or threaded by values read from their headers
(L{twisted_mailhub.imap.sort.SortValues}).  Those are derived once per
message from its parsed structure and kept in the mailbox index beside the
rendered ENVELOPE, and in the store when it keeps summaries, so a second
SORT of a large mailbox opens no message.

Both report their progress (RFC 9585, L{twisted_mailhub.imap.progress}):
first as SEARCH does while the search keys are tested on messages, then
per batch of messages opened for their sort values.
"""

from __future__ import annotations

from datetime import datetime, timezone

from twisted_mailhub.errors import MessageExpunged
from twisted_mailhub.imap import commands as C
from twisted_mailhub.imap import responses
from twisted_mailhub.imap import sort as S
from twisted_mailhub.imap import thread as T
from twisted_mailhub.imap.esearch import saved_with_partial
from twisted_mailhub.imap.handlers.messages import (
    _mentions_modseq, _save_summaries, keep_updated, result_options,
)
from twisted_mailhub.imap.progress import Progress
from twisted_mailhub.imap.session import Session
from twisted_mailhub.index import BatchMemo
from twisted_mailhub.interfaces import IBulkMessageAccess
from twisted_mailhub.model import MessageMeta

#: Messages whose metadata one call reads.
BATCH = 1000
#: Messages opened per round trip to read the values of those not kept.
OPEN_BATCH = 200


async def sort(session: Session, cmd: C.Sort):
    if "UPDATE" in (cmd.returns or ()):
        session.contexts.check_tag(cmd.tag, cmd.key)
    selected = session.selected
    progress = Progress(session, cmd.tag, len(selected.uids))
    found = await _search(session, cmd.key, progress)
    header = any(c.key in S.HEADER_KEYS for c in cmd.criteria)
    metas, entries = await _entries(session, found, header, progress)
    uids = [e.uid for e in S.order(entries, cmd.criteria)]
    numbers = uids if cmd.uid else [selected.seq_of(u) for u in uids]
    highest = None
    if _mentions_modseq(cmd.key):
        # RFC 7162 section 3.1.9: the highest MODSEQ of the messages returned.
        await session.enable_condstore()
        highest = max((metas[u].modseq for u in uids), default=None)
    if cmd.returns is None:
        data = b" ".join([b"SORT", *(b"%d" % n for n in numbers)])
        if highest is not None:
            data += b" (MODSEQ %d)" % highest
        session.io.write(responses.untagged(data))
        return None
    returns = result_options(cmd.returns)
    if "SAVE" in returns:
        # RFC 5182: the result, as a set of messages, for "$"; RFC 9394
        # section 3.2 with PARTIAL.
        session.saved_search = (sorted(uids) if cmd.partial is None
                                else saved_with_partial(returns, cmd.partial, uids))
        returns.discard("SAVE")
        if not returns:
            keep_updated(session, cmd, uids)
            return None
    parts = [b'ESEARCH (TAG "%s")' % cmd.tag.encode("ascii", "replace")]
    if cmd.uid:
        parts.append(b"UID")
    if numbers:
        # RFC 5267 section 3.1: MIN and MAX are the first and the last
        # message in the sort order, ALL is in that order.
        if "MIN" in returns:
            parts.append(b"MIN %d" % numbers[0])
        if "MAX" in returns:
            parts.append(b"MAX %d" % numbers[-1])
        if "ALL" in returns:
            parts.append(b"ALL " + sorted_set(numbers))
    if cmd.partial is not None:
        # RFC 9394 section 3.1: positions in the sort order.
        parts.append(cmd.partial.item(cmd.partial.pick(numbers), sorted_set))
    if "COUNT" in returns:
        parts.append(b"COUNT %d" % len(numbers))
    if highest is not None:
        parts.append(b"MODSEQ %d" % highest)
    session.io.write(responses.untagged(b" ".join(parts)))
    keep_updated(session, cmd, uids)
    return None


def sorted_set(numbers: list[int]) -> bytes:
    """
    C{numbers} as a sequence-set in their order (RFC 5267 section 3.2): a
    run of consecutive ascending numbers is a range, nothing else is.
    """
    out: list[bytes] = []
    start = previous = numbers[0]
    for n in numbers[1:] + [0]:
        if n == previous + 1:
            previous = n
            continue
        out.append(b"%d" % start if start == previous else b"%d:%d" % (start, previous))
        start = previous = n
    return b",".join(out)


async def thread(session: Session, cmd: C.Thread):
    selected = session.selected
    progress = Progress(session, cmd.tag, len(selected.uids))
    found = await _search(session, cmd.key, progress)
    _metas, entries = await _entries(session, found, True, progress)
    threads = T.thread(cmd.algorithm, entries)
    if cmd.uid:
        data = T.render(threads, lambda e: e.uid)
    else:
        seqs = dict(zip(found, selected.seqs_of(found)))
        data = T.render(threads, lambda e: seqs[e.uid])
    session.io.write(responses.untagged(data))
    return None


async def _search(session: Session, key, progress: Progress | None = None) -> list[int]:
    """
    The UIDs the search keys find, ascending, as SEARCH finds them (and
    with its progress reports, given a command's C{progress}).
    """
    from twisted_mailhub.imap.search import SearchContext, is_metadata_only
    from twisted_mailhub.imap.search import search as run_search

    selected = session.selected
    if is_metadata_only(key):
        await selected.prepare(list(selected.uids))
    context = SearchContext(selected.uids, selected.recent, session.saved_search,
                            datetime.now(timezone.utc), progress=progress)
    return await run_search(selected.mailbox, key, context)


async def _entries(session: Session, uids: list[int], header: bool,
                   progress: Progress | None = None,
                   ) -> tuple[dict[int, MessageMeta], list[S.Entry]]:
    """
    The metadata of C{uids} and their sort entries, with the values read
    from their headers when C{header}, the messages opened for them told
    to a command's C{progress}.  Messages expunged meanwhile are left out.
    """
    selected = session.selected
    mailbox = selected.mailbox
    await selected.prepare(uids)
    metas: dict[int, MessageMeta] = {}
    for start in range(0, len(uids), BATCH):
        for meta in await mailbox.metadata(uids[start:start + BATCH]):
            metas[meta.uid] = meta
    if header:
        values = await header_values(mailbox, list(metas), progress)
    else:
        blank = S.SortValues()
        values = dict.fromkeys(metas, blank)
    entries = [S.Entry(uid, meta.internaldate.timestamp(), meta.size, values[uid])
               for uid, meta in metas.items() if uid in values]
    return metas, entries


async def header_values(mailbox, uids: list[int], progress: Progress | None = None,
                        ) -> dict[int, S.SortValues]:
    """
    The L{S.SortValues} of the messages C{uids} of C{mailbox}: those the
    mailbox index holds or the store keeps (asked in one request), and the
    others from the messages' parsed structures, opened in batches and then
    kept.  Messages expunged meanwhile are left out.

    When messages must be opened, C{progress} goes on to count them, and
    is told before each batch how many are done.
    """
    memo = getattr(mailbox, "index", None)
    out: dict[int, S.SortValues] = {}
    if memo is not None:
        # What the store gave is used even where the memo did not keep it.
        given = BatchMemo(memo, await memo.recall(uids, [S.MEMO_NAME]))
        for uid in uids:
            kept = given.memo(uid, S.MEMO_NAME)
            values = S.SortValues.decode(kept) if kept is not None else None
            if values is not None:
                out[uid] = values
    missing = [uid for uid in uids if uid not in out]
    bulk = IBulkMessageAccess(mailbox, None)
    if progress is not None and missing:
        progress.next_stage(len(missing))
    for start in range(0, len(missing), OPEN_BATCH):
        if progress is not None:
            # Opening and parsing the messages is what takes long.
            progress(start)
        batch = missing[start:start + OPEN_BATCH]
        if bulk is not None:
            messages = list(await bulk.open_messages(batch))
        else:
            messages = []
            for uid in batch:
                try:
                    messages.append(await mailbox.open_message(uid))
                except (KeyError, MessageExpunged):
                    continue
        for message in messages:
            try:
                structure = await message.structure()
            except MessageExpunged:
                continue
            values = S.SortValues.of(structure)
            out[message.meta.uid] = values
            if memo is not None:
                memo.remember(message.meta.uid, S.MEMO_NAME, values.encode(), keep=True)
    if memo is not None and missing:
        _save_summaries(memo)
    return out


HANDLERS = {
    C.Sort: sort,
    C.Thread: thread,
}
