"""
Message commands of the selected state: FETCH, STORE, SEARCH, COPY/MOVE,
EXPUNGE, CLOSE and UNSELECT (with their UID forms).
"""

from __future__ import annotations

from datetime import datetime, timezone
from operator import attrgetter

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from twisted_mailhub.backends.base import copy_messages, move_messages
from twisted_mailhub.errors import MailboxNotFound, MessageExpunged
from twisted_mailhub.imap import commands as C
from twisted_mailhub.imap import fetch as F
from twisted_mailhub.imap import messagelimit as L
from twisted_mailhub.imap.esearch import saved_with_partial
from twisted_mailhub.imap import responses
from twisted_mailhub import criteria as K
from twisted_mailhub.imap import wire
from twisted_mailhub.ranges import STAR, SequenceSet, format_numbers
from twisted_mailhub.index import BatchMemo
from twisted_mailhub.interfaces import IBulkMessageAccess, IContentAccess
from twisted_mailhub.imap.progress import Progress
from twisted_mailhub.imap.session import CommandFailed, Session

log = Logger()

# Messages whose metadata is read at once by FETCH/STORE: bounds a session's
# memory however large the mailbox.
BATCH = 1000
# Messages a backend with IBulkMessageAccess opens per round trip.
OPEN_BATCH = 50
# Messages whose flags one store call changes: each call is a transaction
# (a commit, an fsync) and a thread hop, which cost more than the larger
# batch of metadata held meanwhile.
STORE_BATCH = 10_000
_uid_of = attrgetter("uid")


def resolve(session: Session, seqset: SequenceSet, uid: bool) -> list[int]:
    """The UIDs a command's set names, ascending."""
    selected = session.selected
    if seqset.saved:
        return [u for u in session.saved_search if selected.seq_of(u) is not None]
    if uid:
        return seqset.resolve_uids(selected.uids)
    try:
        return selected.uids_for(seqset.resolve(selected.exists))
    except ValueError:
        if not selected.exists:
            raise CommandFailed("No messages in the mailbox", condition="BAD")
        raise CommandFailed(
            f"Invalid message sequence number: {seqset} (mailbox has {selected.exists})",
            condition="BAD")


def _same(uid: int) -> int:
    """A UID as the number of its UIDFETCH response (RFC 9586)."""
    return uid


def _writable(session: Session) -> None:
    if session.selected.read_only:
        raise CommandFailed("Mailbox is read-only", "READ-ONLY")


async def fetch(session: Session, cmd: C.Fetch):
    if cmd.changedsince is None and cmd.partial is None and not cmd.vanished:
        whole = F.whole_content(cmd.attrs)
        if whole is not None:
            done, result = await _fetch_whole(session, cmd, whole)
            if done:
                return result
    if cmd.vanished and not session.qresync:
        # RFC 7162 section 3.2.6: VANISHED needs ENABLE QRESYNC first; a
        # parameter of an extension not enabled is BAD.
        raise CommandFailed("VANISHED needs QRESYNC, which is not enabled", condition="BAD")
    selected = session.selected
    mailbox = selected.mailbox
    io = session.io
    attrs = list(cmd.attrs)
    if cmd.changedsince is not None or any(a.name == "MODSEQ" for a in attrs):
        await session.enable_condstore()
    modseq = session.condstore
    want_content = F.needs_message(attrs)
    mark_seen = F.sets_seen(attrs) and not selected.read_only
    if mark_seen and not any(a.name == "FLAGS" for a in attrs):
        flags_attr = C.FetchAttr("FLAGS")
    else:
        flags_attr = None
    uids = resolve(session, cmd.set, cmd.uid)
    limit = session.policy.message_limit
    lowest = None
    if cmd.partial is not None:
        width = abs(cmd.partial.last - cmd.partial.first) + 1
        if limit is not None and width > limit:
            # RFC 9738 section 3.1: a PARTIAL range over the limit does nothing.
            raise CommandFailed(f"FETCH exceeds the maximum {limit}-message limit",
                                L.code(limit))
        # RFC 9394 section 3.3: only the messages at these positions of
        # the set, before CHANGEDSINCE picks among them (section 3.4).
        uids = cmd.partial.pick(uids)
    else:
        uids, lowest = L.cap(uids, limit)
    # RFC 9738 section 3.1: with the limit reached, from the highest UID
    # to the lowest (each batch read in ascending order, as stores expect).
    descending = lowest is not None
    if cmd.vanished:
        # RFC 7162 section 3.2.6: before any FETCH response.
        for line in await _vanished(session, cmd):
            io.write(line)
    await selected.prepare(uids)
    bulk = IBulkMessageAccess(mailbox, None) if want_content else None
    # This process's index of the mailbox keeps rendered ENVELOPE,
    # BODYSTRUCTURE and headers: a FETCH of those alone may need no message.
    memo = getattr(mailbox, "index", None)
    memoised = memo is not None and F.can_memoise(attrs)
    missing = False
    truncated: list[int] = []
    render = None
    progress = Progress(session, cmd.tag, len(uids))
    done = 0
    # RFC 9586: with UIDONLY each response is a UIDFETCH numbered by the
    # UID, and the UID item is there only when asked for.
    verb, uidonly = session.fetch_verb, session.uidonly
    number = _same if uidonly else selected.seq_of
    implicit_uid = cmd.uid and not uidonly
    starts = range(0, len(uids), BATCH)
    for start in reversed(starts) if descending else starts:
        batch = uids[start:start + BATCH]
        if not want_content:
            progress(done)
        done += len(batch)
        metas = {m.uid: m for m in await mailbox.metadata(batch)}
        if cmd.changedsince is not None:
            metas = {u: m for u, m in metas.items() if m.modseq > cmd.changedsince}
        newly_seen: set[int] = set()
        if mark_seen:
            unseen = [u for u in batch if u in metas and "\\Seen" not in metas[u].flags]
            if unseen:
                update = await mailbox.store_flags(unseen, "add", {"\\Seen"}, origin=session)
                for meta in update.changed:
                    metas[meta.uid] = meta
                    newly_seen.add(meta.uid)
        if not want_content:
            # Metadata only (FETCH 1:* (UID FLAGS) and the like): rendered
            # without a round trip per message.
            if cmd.changedsince is None and len(metas) < len(batch):
                missing = True
            if render is None:
                render = F.meta_renderer(attrs, uid=implicit_uid, modseq=modseq, verb=verb)
            present = [uid for uid in batch if uid in metas]
            is_recent = selected.recent_test()
            numbers = present if uidonly else selected.seqs_of(present)
            rendered = [render(seq, metas[uid], is_recent(uid))
                        for seq, uid in zip(numbers, present)]
            io.write(b"".join(reversed(rendered) if descending else rendered))
            await io.drain()
            continue
        batch_memo = memo
        if memoised:
            # What the store kept of these messages at an earlier FETCH.
            present = [u for u in batch if u in metas]
            kept = await memo.recall(present, F.kept_names(attrs))
            headers = await memo.recall_headers(present) if F.wants_header(attrs) else {}
            if kept or headers:
                batch_memo = BatchMemo(memo, kept, headers)
        opened: dict[int, object] = {}
        order = batch[::-1] if descending else batch
        for n, uid in enumerate(order, done - len(batch)):
            progress(n)
            meta = metas.get(uid)
            if meta is None:
                missing = missing or cmd.changedsince is None
                continue
            item_attrs = attrs
            if flags_attr is not None and uid in newly_seen:
                # RFC 3501 6.4.5: the client learns of the implicit \\Seen.
                item_attrs = attrs + [flags_attr]
            if memoised:
                cached = F.render_memoised(
                    number(uid), meta, item_attrs, batch_memo,
                    uid=implicit_uid, recent=selected.is_recent(uid), modseq=modseq, verb=verb)
                if cached is not None:
                    io.write(cached)
                    await io.drain()
                    continue
            message = None
            if want_content:
                if bulk is not None and uid not in opened:
                    wanted = [u for u in order[order.index(uid):] if u in metas][:OPEN_BATCH]
                    # Opened ahead while an earlier pipelined FETCH ran?
                    opened = await session.readahead.take(selected, wanted)
                    if uid not in opened:
                        rest = [u for u in wanted if u not in opened]
                        opened.update((m.meta.uid, m) for m in await bulk.open_messages(sorted(rest)))
                try:
                    message = opened.pop(uid) if bulk is not None else (
                        await mailbox.open_message(uid))
                except (KeyError, MessageExpunged):
                    missing = True
                    continue
            try:
                pieces = await F.render(number(uid), meta, message, item_attrs,
                                        uid=implicit_uid, recent=selected.is_recent(uid),
                                        modseq=modseq, memo=memo, verb=verb)
            except F.UnknownTransferEncoding as e:
                raise CommandFailed(f"Unknown Content-Transfer-Encoding: {e}", "UNKNOWN-CTE")
            except MessageExpunged:
                # Gone before any of its response was written: leave it out.
                missing = True
                continue
            for piece in pieces:
                if isinstance(piece, bytes):
                    io.write_part(piece)
                elif not await _stream(io, piece):
                    truncated.append(uid)
            await io.drain()
    if memo is not None and memo.unsaved:
        _save_summaries(memo)
    if lowest is not None:
        partial = (f"FETCH completed with {limit} partial results", L.code(limit, lowest))
        if not truncated and not missing:
            return partial
        # RFC 9738 section 3.1: EXPUNGEISSUED takes the tagged response.
        session.io.write(responses.status(None, "NO", partial[0], partial[1]))
    if truncated:
        # The padded data must not be taken for the message: say NO.
        raise CommandFailed(
            f"Message UID {format_numbers(truncated)} was expunged while being sent; "
            "the data sent for it is incomplete", "EXPUNGEISSUED")
    if missing:
        return ("Some messages were expunged and could not be fetched", "EXPUNGEISSUED")
    return None


async def _fetch_whole(session: Session, cmd: C.Fetch, whole: F.Whole) -> tuple[bool, object]:
    """
    FETCH of one message's whole content alone (L{F.whole_content}), the
    command downloaders send by the hundred: its bytes read in one round
    trip (or found read ahead) and written in one piece.  C{(False, None)}
    when the general path is to answer instead: a set of several messages
    or an invalid one, a store without L{IContentAccess}, a message that
    gets \\Seen now (its FLAGS are then due), a large or vanished one.
    """
    selected = session.selected
    ranges = cmd.set.ranges
    if len(ranges) != 1 or ranges[0][0] != ranges[0][1] or ranges[0][0] == STAR:
        return False, None
    number = ranges[0][0]
    if cmd.uid:
        uid, seq = number, selected.seq_of(number)
        if seq is None:
            return False, None
    else:
        if number > selected.exists:
            return False, None
        uid, seq = selected.uids[number - 1], number
    limit = session.policy.message_limit
    mailbox = selected.mailbox
    access = IContentAccess(mailbox, None)
    if access is None or (limit is not None and limit < 1):
        return False, None
    ahead = session.readahead.take_content(selected, uid)
    index = getattr(mailbox, "index", None)
    meta = index.known(uid) if index is not None else None
    if meta is None:
        metas = await mailbox.metadata([uid])
        if not metas:
            return False, None
        meta = metas[0]
    if whole.seen and not selected.read_only and "\\Seen" not in meta.flags:
        return False, None
    if meta.size > F.WHOLE_LIMIT:
        return False, None
    content = None
    if ahead is not None:
        found = ahead.found
        if found is None:
            found = await ahead.result()
        content = found.get(uid)
    if content is None:
        content = (await access.contents([uid], F.WHOLE_LIMIT)).get(uid)
        if content is None:
            return False, None
    # RFC 9586: with UIDONLY, a UIDFETCH numbered by the UID, without the
    # UID item unless asked for.
    uidonly = session.uidonly
    session.io.write(F.render_whole(uid if uidonly else seq, meta, content, whole,
                                    uid=cmd.uid and not uidonly, modseq=session.condstore,
                                    verb=session.fetch_verb))
    await session.io.drain()
    return True, None


async def _vanished(session: Session, cmd: C.Fetch) -> list[bytes]:
    """``* VANISHED (EARLIER)``: the UIDs of the set expunged since CHANGEDSINCE."""
    from twisted_mailhub.imap import qresync

    selected = session.selected
    status = await selected.mailbox.status()
    # UIDs up to UIDNEXT - 1 were all given once; * stands for the highest.
    top = max(status.uidnext - 1, selected.uids[-1] if selected.uids else 0)
    if cmd.set.saved:
        ranges = qresync.merged((uid, uid) for uid in session.saved_search)
    else:
        ranges = qresync.merged(cmd.set.bounds(top))
    vanished, _ = await qresync.resync(selected, ranges, cmd.changedsince, top=top)
    return vanished


async def _own_expunge_modseq(selected) -> int:
    """The MODSEQ of this session's last expunge (its event said), else the mailbox's."""
    if selected.own_expunge_modseq is not None:
        return selected.own_expunge_modseq
    return (await selected.mailbox.status()).highestmodseq


def _save_summaries(memo) -> None:
    """
    Give the store what this FETCH rendered for it to keep, after the
    answer: the client does not wait for that write, and a failure only
    means it is rendered again another time.
    """
    Deferred.fromCoroutine(memo.save()).addErrback(
        lambda failure: log.failure("Keeping rendered summaries failed", failure))


async def _stream(io, piece: F.Stream) -> bool:
    """
    Copy C{piece} from the store into the literal announced for it, with
    flow control.  False when the message went away (expunged by another
    session) before all of it was read: the literal is then completed with
    padding, as the client counts the announced bytes whatever happens.
    """
    offset, remaining = piece.offset, piece.length
    complete = True
    while remaining > 0:
        try:
            chunk = await piece.message.read(offset, min(F.CHUNK_SIZE, remaining))
        except MessageExpunged:
            chunk = b""
        if not chunk:
            # Less than announced (the store lost or never had the bytes).
            complete = False
            while remaining > 0:
                count = min(F.CHUNK_SIZE, remaining)
                io.write_part(b" " * count)
                remaining -= count
                await io.drain()
            break
        chunk = chunk[:remaining]
        io.write_part(wire.without_nul(chunk))
        offset += len(chunk)
        remaining -= len(chunk)
        await io.drain()
    return complete


async def store(session: Session, cmd: C.Store):
    _writable(session)
    selected = session.selected
    mailbox = selected.mailbox
    if cmd.unchangedsince is not None:
        await session.enable_condstore()
    uids, lowest = L.cap(resolve(session, cmd.set, cmd.uid), session.policy.message_limit)
    # RFC 9738 section 3.1: over the limit, the highest UIDs first.
    descending = lowest is not None
    modified: list[int] = []
    progress = Progress(session, cmd.tag, len(uids))
    starts = range(0, len(uids), STORE_BATCH)
    for done, start in enumerate(reversed(starts) if descending else starts):
        progress(done * STORE_BATCH)
        batch = uids[start:start + STORE_BATCH]
        update = await mailbox.store_flags(batch, cmd.mode, set(cmd.flags),
                                           unchangedsince=cmd.unchangedsince, origin=session)
        modified.extend(update.modified)
        for line in selected.keyword_responses(update.changed):
            session.io.write(line)
        if cmd.silent and not session.condstore:
            continue
        if cmd.silent:
            # RFC 7162 3.2: with CONDSTORE, .SILENT still reports new MODSEQs.
            report = [m for m in update.changed]
        else:
            report = await mailbox.metadata(batch)
        render = F.meta_renderer([] if cmd.silent else [C.FetchAttr("FLAGS")],
                                 uid=cmd.uid and not session.uidonly, modseq=session.condstore,
                                 verb=session.fetch_verb)
        seq_of, is_recent = selected.seq_of, selected.recent_test()
        uidonly = session.uidonly
        rendered = [render(meta.uid if uidonly else seq, meta, is_recent(meta.uid))
                    for meta in sorted(report, key=_uid_of, reverse=descending)
                    if (seq := seq_of(meta.uid)) is not None]
        session.io.write(b"".join(rendered))
    if descending:
        limit = session.policy.message_limit
        partial = (f"STORE completed for the last {limit} messages", L.code(limit, lowest))
        if not modified:
            return partial
        # The tagged response carries MODIFIED, as it would EXPUNGEISSUED.
        session.io.write(responses.status(None, "NO", partial[0], partial[1]))
    if modified:
        if cmd.uid:
            failed = format_numbers(modified)
        else:
            failed = format_numbers(selected.seq_of(u) for u in modified)
        return ("Some messages were modified since", f"MODIFIED {failed}")
    return None


async def search(session: Session, cmd: C.Search):
    from twisted_mailhub.imap.search import SearchContext, is_metadata_only
    from twisted_mailhub.imap.search import search as run_search

    if "UPDATE" in (cmd.returns or ()):
        session.contexts.check_tag(cmd.tag, cmd.key)
    selected = session.selected
    if is_metadata_only(cmd.key):
        # Flag and UID keys are answered from the index: fill it if need be.
        await selected.prepare(selected.uids)
    context = SearchContext(selected.uids, selected.recent, session.saved_search,
                            datetime.now(timezone.utc),
                            progress=Progress(session, cmd.tag, len(selected.uids)))
    key, done = cmd.key, None
    limit = session.policy.message_limit
    if limit is not None and len(selected.uids) > limit:
        # RFC 9738 section 3.1: the messages searched, not those found,
        # count; over the limit, only the highest UIDs are searched.
        domain = L.search_domain(selected.uids, key, session.saved_search)
        if len(domain) > limit:
            lowest = domain[-limit]
            key = L.from_uid(key, lowest)
            done = (f"SEARCH completed with {limit} partial results", L.code(limit, lowest))
    found = await run_search(selected.mailbox, key, context)
    numbers = found if cmd.uid else selected.seqs_of(found)
    modseqs: dict[int, int] = {}
    if _mentions_modseq(cmd.key):
        await session.enable_condstore()
        if found:
            modseqs = {m.uid: m.modseq for m in await selected.mailbox.metadata(found)}
    highest = max(modseqs.values()) if modseqs else None
    if cmd.returns is None and not session.rev2:
        # Over the limit, from the highest UID down (RFC 9738 section 3.1).
        session.io.write(responses.search(numbers[::-1] if done else numbers, highest))
        return done
    # IMAP4rev2 answers every SEARCH with ESEARCH (RFC 9051 section 6.4.4).
    returns = result_options(cmd.returns)
    if "SAVE" in returns:
        session.saved_search = (list(found) if cmd.partial is None
                                else saved_with_partial(returns, cmd.partial, found))
        returns.discard("SAVE")
        if not returns:
            keep_updated(session, cmd, found)
            return done
    parts = [b'ESEARCH (TAG "%s")' % cmd.tag.encode("ascii", "replace")]
    if cmd.uid:
        parts.append(b"UID")
    if numbers:
        if "MIN" in returns:
            parts.append(b"MIN %d" % min(numbers))
        if "MAX" in returns:
            parts.append(b"MAX %d" % max(numbers))
        if "ALL" in returns:
            parts.append(b"ALL " + format_numbers(numbers).encode("ascii"))
    if cmd.partial is not None:
        # RFC 9394 section 3.1, NIL when no result is in the range.
        parts.append(cmd.partial.item(cmd.partial.pick(numbers),
                                      lambda n: format_numbers(n).encode("ascii")))
    if "COUNT" in returns:
        parts.append(b"COUNT %d" % len(numbers))
    if highest is not None:
        if returns <= {"MIN", "MAX"}:
            # RFC 4731 section 3.2: with only MIN and/or MAX, the highest
            # mod-sequence of the message(s) returned, not of all found.
            picked = ([min(found)] if "MIN" in returns else []) + (
                [max(found)] if "MAX" in returns else [])
            highest = max(modseqs.get(u, 0) for u in picked)
        parts.append(b"MODSEQ %d" % highest)
    session.io.write(responses.untagged(b" ".join(parts)))
    keep_updated(session, cmd, found)
    return done


async def cancelupdate(session: Session, cmd: C.CancelUpdate):
    """RFC 5267 section 4.3.5: no more updates for these contexts."""
    session.contexts.cancel(cmd.tags)
    return "No further updates"


def result_options(returns: tuple[str, ...] | None) -> set[str]:
    """
    The RETURN options that ask for result data: UPDATE and CONTEXT (RFC
    5267 section 4) do not, so alone they return ALL, as ``RETURN ()``
    does (RFC 4731 section 3.1) -- the result the updates then change.
    """
    return (set(returns or ()) - {"UPDATE", "CONTEXT"}) or {"ALL"}


def keep_updated(session: Session, cmd: C.Search | C.Sort, results: list[int]) -> None:
    """RFC 5267 section 4.3: RETURN (UPDATE) leaves an updating context."""
    if "UPDATE" in (cmd.returns or ()):
        criteria = cmd.criteria if isinstance(cmd, C.Sort) else None
        session.contexts.start(cmd.tag, cmd.uid, cmd.key, criteria, results, cmd.update_fetch)


def _mentions_modseq(key) -> bool:
    return K.any_key(key, lambda k: isinstance(k, K.ModSeq))


async def copy(session: Session, cmd: C.Copy):
    selected = session.selected
    if cmd.move:
        _writable(session)
    uids = resolve(session, cmd.set, cmd.uid)
    try:
        target = await session.store.get_mailbox(cmd.mailbox)
    except MailboxNotFound:
        raise CommandFailed(f"Mailbox does not exist: {cmd.mailbox}", "TRYCREATE")
    limit = session.policy.message_limit
    lowest = None
    if cmd.move:
        # RFC 9738 section 3.1: MOVE need not be atomic, so it moves the
        # highest UIDs and tells the client where it stopped.
        uids, lowest = L.cap(uids, limit)
    elif limit is not None and len(uids) > limit:
        # COPY is atomic: nothing is copied.
        raise CommandFailed("Too many messages to copy, try a smaller subset",
                            L.code(limit, uids[-limit]))
    if cmd.move:
        selected.own_expunge_modseq = None
        # RFC 6851 section 3.3: one change where the store can (no \\Deleted
        # is ever set, other sessions see only the EXPUNGEs).
        pairs, gone = await move_messages(selected.mailbox, target, uids, origin=session,
                                          progress=Progress(session, cmd.tag, len(uids)))
    else:
        pairs = await copy_messages(selected.mailbox, target, uids, origin=session,
                                    progress=Progress(session, cmd.tag, len(uids)))
    verb = "MOVE" if cmd.move else "COPY"
    code = None
    if pairs:
        code = (f"COPYUID {target.uidvalidity} {format_numbers(p[0] for p in pairs)} "
                f"{format_numbers(p[1] for p in pairs)}")
    if not cmd.move:
        return (f"{verb} completed", code)
    if code:
        # RFC 6851 section 4.3: COPYUID goes in an untagged OK before the EXPUNGEs.
        session.io.write(responses.status(
            None, "OK", "Some messages were not moved" if lowest is not None else "Moved", code))
    # EXPUNGEs, or one VANISHED with QRESYNC (RFC 6851 section 4.4).
    for line in selected.expunge_responses(gone):
        session.io.write(line)
    if lowest is not None:
        partial = (f"{verb} completed for the last {limit} messages", L.code(limit, lowest))
        if not (gone and session.qresync):
            return partial
        # The tagged response carries HIGHESTMODSEQ, as it would EXPUNGEISSUED.
        session.io.write(responses.status(None, "NO", partial[0], partial[1]))
    if gone and session.qresync:
        # RFC 6851 section 4.4: the new HIGHESTMODSEQ, in the tagged OK.
        return (f"{verb} completed", f"HIGHESTMODSEQ {await _own_expunge_modseq(selected)}")
    return f"{verb} completed"


async def expunge(session: Session, cmd: C.Expunge):
    _writable(session)
    selected = session.selected
    uids = resolve(session, cmd.uids, True) if cmd.uids is not None else None
    limit = session.policy.message_limit
    lowest = None
    if uids is not None and limit is not None and len(uids) > limit:
        # RFC 9738 section 3.1: UID EXPUNGE (never EXPUNGE) removes at most
        # the limit of \Deleted messages, the highest UIDs.
        deleted = []
        for start in range(0, len(uids), BATCH):
            metas = await selected.mailbox.metadata(uids[start:start + BATCH])
            deleted.extend(m.uid for m in metas if "\\Deleted" in m.flags)
        kept, lowest = L.cap(sorted(deleted), limit)
        if lowest is not None:
            uids = kept
    selected.own_expunge_modseq = None
    gone = await selected.mailbox.expunge(uids, origin=session)
    for line in selected.expunge_responses(gone):
        session.io.write(line)
    if lowest is not None:
        partial = (f"UID EXPUNGE completed for the last {limit} messages",
                   L.code(limit, lowest))
        if not (gone and session.qresync):
            return partial
        session.io.write(responses.status(None, "NO", partial[0], partial[1]))
    if gone and session.qresync:
        # RFC 7162 sections 3.2.7 and 3.2.9: the HIGHESTMODSEQ after the
        # expunge in the tagged OK (never after CLOSE, 3.2.8).
        return (f"{cmd.name} completed", f"HIGHESTMODSEQ {await _own_expunge_modseq(selected)}")
    return None


async def replace(session: Session, cmd: C.Replace):
    """
    RFC 8508 section 3.4: the new message is appended as APPEND would, then
    the replaced one expunged as UID EXPUNGE of its UID alone would (no
    \\Deleted flag is ever shown, where the store can remove directly).
    A failed append leaves the old message in place.
    """
    from twisted_mailhub.backends.base import replace_message
    from twisted_mailhub.imap.handlers.mailboxes import append_requests

    selected = session.selected
    # A sequence number out of range is BAD as in any command (resolve);
    # a UID that names no message is NO (section 3.3): another session
    # may have expunged it.
    [uid] = resolve(session, cmd.number, cmd.uid) or [None]
    if uid is None:
        raise CommandFailed(f"No message with UID {cmd.number}")
    # The old message cannot be expunged from a mailbox opened read-only,
    # so nothing is appended either.
    _writable(session)
    target, [request] = await append_requests(
        session, C.Append(cmd.tag, cmd.mailbox, (cmd.message,)))
    selected.own_expunge_modseq = None
    meta, gone = await replace_message(selected.mailbox, uid, target, request, origin=session)
    # Section 4.3: with UIDPLUS the APPENDUID comes in an untagged OK,
    # before the expunge of the old message (as COPYUID in MOVE).
    session.io.write(responses.status(
        None, "OK", "Replacement message ready",
        f"APPENDUID {target.uidvalidity} {meta.uid}"))
    # An EXPUNGE, or VANISHED with QRESYNC (section 4.5).
    for line in selected.expunge_responses(gone):
        session.io.write(line)
    if gone and session.qresync:
        return (f"{command_name(cmd)} completed",
                f"HIGHESTMODSEQ {await _own_expunge_modseq(selected)}")
    return f"{command_name(cmd)} completed"


def command_name(cmd: C.Command) -> str:
    """The command as the client wrote it, with its UID prefix."""
    return ("UID " if getattr(cmd, "uid", False) else "") + cmd.name


async def close(session: Session, cmd: C.Close):
    selected = session.selected
    if not selected.read_only:
        # RFC 3501 6.4.2: expunge silently, then leave the selected state.
        await selected.mailbox.expunge(None, origin=session)
    session.deselect()


async def unselect(session: Session, cmd: C.Unselect):
    session.deselect()


HANDLERS = {
    C.Fetch: fetch,
    C.Store: store,
    C.Search: search,
    C.Copy: copy,
    C.Expunge: expunge,
    C.Close: close,
    C.Unselect: unselect,
    C.CancelUpdate: cancelupdate,
    C.Replace: replace,
}
