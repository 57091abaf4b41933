"""
Mailbox commands of the authenticated state: SELECT/EXAMINE, CREATE,
DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE, LIST/LSUB, STATUS, APPEND.
"""

from __future__ import annotations

from dataclasses import replace

from twisted_mailhub.errors import MailboxNotFound
from twisted_mailhub.imap import commands as C
from twisted_mailhub.imap import mutf7, objectid, responses, wire
from twisted_mailhub.imap.listing import canonical_pattern, list_entries, lsub_entries
from twisted_mailhub.imap.selected import SelectedMailbox, flags_responses
from twisted_mailhub.ranges import format_numbers
from twisted_mailhub.imap.session import CommandFailed, Session, State
from twisted_mailhub.interfaces import IStatusQuery
from twisted_mailhub.model import AppendRequest, MailboxStatus


def encode_name(session: Session, name: str) -> bytes:
    """
    A mailbox name as sent: modified UTF-7 (RFC 3501 5.1.3), or UTF-8 once
    IMAP4rev2 (RFC 9051 section 5.1) or UTF8=ACCEPT is enabled.
    """
    if session.rev2 or session.utf8_accept:
        return wire.utf8_astring(name)
    return wire.astring(mutf7.encode(name))


async def select(session: Session, cmd: C.Select):
    if cmd.qresync is not None and not session.qresync:
        # RFC 7162 section 3.2.5: QRESYNC before ENABLE QRESYNC is BAD.
        raise CommandFailed("QRESYNC is not enabled", condition="BAD")
    was_selected = session.selected is not None
    session.deselect()
    if was_selected:
        # RFC 7162 section 3.2.11: tell where the old mailbox's responses
        # end, whether or not CONDSTORE or QRESYNC is enabled, as both are
        # advertised.
        session.io.write(responses.status(None, "OK", "Previous mailbox closed", "CLOSED"))
    if cmd.condstore:
        session.enabled.add("CONDSTORE")
    mailbox = await session.store.get_mailbox(cmd.mailbox, read_only=cmd.read_only)
    selected = SelectedMailbox(mailbox, session, condstore=session.condstore, rev2=session.rev2,
                               qresync=session.qresync, uidonly=session.uidonly)
    await selected.open()
    # Its changes wake the session, which pushes them if NOTIFY or IDLE asks.
    selected.notify = session.wake
    status = await mailbox.status()
    write = session.io.write
    # The keywords in use are applicable flags too (RFC 3501 7.2.6).
    for line in flags_responses(await selected.load_keywords(), selected.read_only):
        write(line)
    write(responses.exists(selected.exists))
    if not session.rev2:
        # RFC 9051 dropped RECENT and the UNSEEN code from SELECT.
        write(responses.recent(len(selected.recent)))
    # RFC 9586: no sequence number in UNSEEN either under UIDONLY.
    first_unseen = None if session.rev2 or session.uidonly else await _first_unseen(selected)
    if first_unseen is not None:
        write(responses.status(None, "OK", f"Message {first_unseen} is first unseen",
                               f"UNSEEN {first_unseen}"))
    write(responses.status(None, "OK", "UIDs valid", f"UIDVALIDITY {mailbox.uidvalidity}"))
    write(responses.status(None, "OK", "Predicted next UID", f"UIDNEXT {status.uidnext}"))
    if session.rev2:
        # RFC 9051 section 6.3.2: a LIST of the mailbox, attributes accurate.
        write(await _select_list(session, mailbox.name))
    if session.condstore:
        write(responses.status(None, "OK", "Highest", f"HIGHESTMODSEQ {status.highestmodseq}"))
    mailboxid = objectid.mailbox_id(status.identity)
    if mailboxid is not None:
        # RFC 8474 section 4.2
        write(responses.status(None, "OK", "Ok", f"MAILBOXID ({mailboxid})"))
    from twisted_mailhub.imap import urlauth

    if urlauth.access_keys(session) is not None:
        # RFC 4467 BASE.7.1: SELECT and EXAMINE tell the URLAUTH mechanisms.
        write(responses.status(None, "OK", "URL mechanisms", f"URLMECH {urlauth.MECHANISM}"))
    if cmd.qresync is not None and cmd.qresync[0] == mailbox.uidvalidity:
        # RFC 7162 section 3.2.5: only when the UIDVALIDITY matches; else
        # the client learns from UIDVALIDITY that it starts over.
        await _resync(session, selected, status, cmd.qresync)
    session.selected = selected
    session.state = State.SELECTED
    mode = "READ-ONLY" if selected.read_only else "READ-WRITE"
    return (f"{'EXAMINE' if cmd.read_only else 'SELECT'} completed", mode)


async def _resync(session: Session, selected: SelectedMailbox, status: MailboxStatus,
                  params) -> None:
    """
    RFC 7162 section 3.2.5.1: what changed since the client's MODSEQ among
    its known UIDs (1:UIDNEXT-1 if it gave none), as ``* VANISHED
    (EARLIER)`` (narrowed by the sequence match data of 3.2.5.2) and then
    ``* n FETCH (UID FLAGS MODSEQ)``.
    """
    from twisted_mailhub.imap import qresync

    _, modseq, known, match = params
    top = max(status.uidnext - 1, selected.uids[-1] if selected.uids else 0)
    if known is None:
        ranges = [(1, top)] if top else []
    else:
        ranges = qresync.merged(known.bounds(top))
    vanished, changed = await qresync.resync(
        selected, ranges, modseq, floor=qresync.seq_match_floor(match, selected.uids), top=top)
    write = session.io.write
    for line in vanished + qresync.fetch_responses(selected, changed):
        write(line)
        await session.io.drain()


async def _select_list(session: Session, name: str) -> bytes:
    """The ``* LIST`` that ``LIST "" name`` would give, for SELECT in IMAP4rev2."""
    store = session.store
    delim = store.delimiter
    # Stores refuse the wildcards in names, so the name matches only itself.
    entries = list_entries(await store.list_mailboxes(), [name], delim)
    attributes = entries[0].attributes if entries else []
    return responses.untagged(b"LIST (" + " ".join(attributes).encode("ascii") + b") "
                              + wire.string(delim) + b" " + encode_name(session, name))


async def _first_unseen(selected: SelectedMailbox) -> int | None:
    from twisted_mailhub import criteria as K
    from twisted_mailhub.imap.search import SearchContext, search

    if not selected.uids:
        return None
    shared = getattr(selected.mailbox, "index", None)
    if shared is not None and shared.complete:
        # Walk the index in sequence order: no SEARCH over the whole mailbox.
        for seq, uid in enumerate(selected.uids, 1):
            meta = shared.known(uid)
            if meta is not None and "\\Seen" not in meta.flags:
                return seq
        return None
    found = await search(selected.mailbox, K.Flag("\\Seen", False),
                         SearchContext(selected.uids, selected.recent))
    return selected.seq_of(found[0]) if found else None


# RFC 6154 section 3 (CREATE-SPECIAL-USE): the uses a mailbox here can
# have.  \All and \Flagged describe virtual mailboxes (every message,
# every flagged message), which this server does not make.
CREATABLE_USES = frozenset({"\\Archive", "\\Drafts", "\\Junk", "\\Sent", "\\Trash"})


async def create(session: Session, cmd: C.Create):
    refused = sorted(cmd.special_use - CREATABLE_USES)
    if refused:
        # Nothing is created; the code says the attribute is the reason.
        raise CommandFailed(f"Special use not supported: {' '.join(refused)}", "USEATTR")
    with session.notifications.own_change(cmd.mailbox, cmd.mailbox.rstrip(session.store.delimiter)):
        await session.store.create_mailbox(cmd.mailbox, cmd.special_use)
    # RFC 8474 section 4.1: the tagged OK of every successful CREATE names
    # the new mailbox's MAILBOXID.
    query = IStatusQuery(session.store, None)
    if query is not None:
        st = await query.mailbox_status(cmd.mailbox)
    else:
        st = await (await session.store.get_mailbox(cmd.mailbox, read_only=True)).status()
    mailboxid = objectid.mailbox_id(st.identity)
    if mailboxid is None:
        return None
    return ("CREATE completed", f"MAILBOXID ({mailboxid})")


async def delete(session: Session, cmd: C.Delete):
    if session.selected is not None and session.selected.mailbox.name == cmd.mailbox:
        session.deselect()
    with session.notifications.own_change(cmd.mailbox):
        await session.store.delete_mailbox(cmd.mailbox)


async def rename(session: Session, cmd: C.Rename):
    with session.notifications.own_change(cmd.old, cmd.new):
        await session.store.rename_mailbox(cmd.old, cmd.new)


async def subscribe(session: Session, cmd: C.Subscribe):
    with session.notifications.own_change(cmd.mailbox):
        await session.store.subscribe(cmd.mailbox)


async def unsubscribe(session: Session, cmd: C.Unsubscribe):
    with session.notifications.own_change(cmd.mailbox):
        await session.store.unsubscribe(cmd.mailbox)


async def notify(session: Session, cmd: C.Notify):
    """
    RFC 5465 section 3.1.  NOTIFY SET implies a NOOP: what is pending for
    the selected mailbox is told before the tagged OK (the session does
    so at the end of every command).
    """
    if cmd.groups is None:
        session.notifications.clear()
        return "NOTIFY completed"
    await session.notifications.set(cmd.groups, cmd.status)
    return "NOTIFY completed"


async def list_(session: Session, cmd: C.List):
    store = session.store
    delim = store.delimiter
    kind = b"LSUB" if cmd.lsub else b"LIST"
    write = session.io.write
    patterns = [canonical_pattern(cmd.reference, p, delim) for p in cmd.patterns]
    if not cmd.extended and len(patterns) == 1 and cmd.patterns[0] == "":
        # RFC 3501 6.3.8: the hierarchy delimiter and root of the reference.
        root = cmd.reference.split(delim)[0] + delim if delim in cmd.reference else ""
        write(responses.untagged(kind + b" (\\Noselect) " + wire.string(delim) + b" "
                                 + wire.string(root)))
        return f"{kind.decode()} completed"
    infos = await store.list_mailboxes()
    # Only LSUB and the SUBSCRIBED options read the subscriptions: a plain
    # LIST does not wait for a second query.
    wants_subscriptions = (cmd.lsub or "SUBSCRIBED" in cmd.selection
                           or "SUBSCRIBED" in cmd.returns)
    subscribed = await store.subscriptions() if wants_subscriptions else set()
    if cmd.lsub:
        entries = lsub_entries(infos, subscribed, patterns[0], delim)
    else:
        entries = list_entries(
            infos, patterns, delim,
            subscribed=subscribed,
            select_subscribed="SUBSCRIBED" in cmd.selection,
            recursive="RECURSIVEMATCH" in cmd.selection,
            return_subscribed="SUBSCRIBED" in cmd.returns,
            select_special_use="SPECIAL-USE" in cmd.selection,
        )
    selectable = {info.name for info in infos if info.selectable}
    delimiter = b" " + wire.string(delim) + b" "
    lines = []
    for entry in entries:
        line = (kind + b" (" + " ".join(entry.attributes).encode("ascii") + b")" + delimiter
                + encode_name(session, entry.name))
        if entry.childinfo:
            line += b' ("CHILDINFO" ("SUBSCRIBED"))'
        lines.append(responses.untagged(line))
        if cmd.return_status and entry.name in selectable:
            write(b"".join(lines))
            lines = []
            mailbox = await store.get_mailbox(entry.name, read_only=True)
            st = await mailbox.status()
            extra = await _computed_items(session, entry.name, st, cmd.return_status, mailbox)
            _write_status(session, st, entry.name, cmd.return_status, extra)
    if lines:
        # One write for the whole listing, not one per mailbox.
        write(b"".join(lines))
    return f"{kind.decode()} completed"


async def status(session: Session, cmd: C.Status):
    if "HIGHESTMODSEQ" in cmd.items:
        await session.enable_condstore()
    query = IStatusQuery(session.store, None)
    mailbox = None
    if query is not None:
        # Asked for already if this STATUS was pipelined behind another.
        st = await session.readahead.take_status(cmd.mailbox)
        if st is None:
            st = await query.mailbox_status(cmd.mailbox)
    else:
        mailbox = await session.store.get_mailbox(cmd.mailbox, read_only=True)
        st = await mailbox.status()
    extra = await _computed_items(session, cmd.mailbox, st, cmd.items, mailbox)
    _write_status(session, st, cmd.mailbox, cmd.items, extra)


async def _computed_items(session: Session, name: str, st: MailboxStatus, items,
                          mailbox=None) -> dict[str, int]:
    """The STATUS items that are not counters of L{MailboxStatus}."""
    if "DELETED-STORAGE" not in items:
        return {}
    from twisted_mailhub.imap.handlers.quota import deleted_storage

    return {"DELETED-STORAGE": await deleted_storage(session.store, name, st, mailbox)}


def _write_status(session: Session, st: MailboxStatus, name: str, items,
                  extra: dict[str, int] | None = None) -> None:
    values = {
        "MESSAGES": st.messages,
        "RECENT": st.recent,
        "UIDNEXT": st.uidnext,
        "UIDVALIDITY": st.uidvalidity,
        "UNSEEN": st.unseen,
        "HIGHESTMODSEQ": st.highestmodseq,
        "SIZE": st.size,
        "DELETED": st.deleted,
        # RFC 7889 section 3.1; the capability gives the same figure.
        "APPENDLIMIT": session.policy.max_literal_size,
        **(extra or {}),
    }
    out = []
    for item in items:
        if item == "MAILBOXID":
            # RFC 8474 section 4.3
            mailboxid = objectid.mailbox_id(st.identity)
            if mailboxid is None:
                raise CommandFailed("No MAILBOXID for this mailbox")
            out.append(b"MAILBOXID (" + mailboxid.encode("ascii") + b")")
            continue
        if item not in values:
            raise CommandFailed(f"Unsupported STATUS item: {item}", condition="BAD")
        out.append(b"%s %d" % (item.encode("ascii"), values[item]))
    session.io.write(responses.untagged(
        b"STATUS " + encode_name(session, name) + b" " + wire.plist(out)))


async def append(session: Session, cmd: C.Append):
    limit = session.policy.message_limit
    if limit is not None and len(cmd.messages) > limit:
        # RFC 9738 section 3.1: MULTIAPPEND is atomic, so nothing is appended.
        from twisted_mailhub.imap.messagelimit import code

        raise CommandFailed(f"Too many messages to append; at most {limit} at once", code(limit))
    mailbox, requests = await append_requests(session, cmd)
    metas = await mailbox.append(requests, origin=session)
    code = f"APPENDUID {mailbox.uidvalidity} {format_numbers(m.uid for m in metas)}"
    return ("APPEND completed", code)


async def append_requests(session: Session, cmd: C.Append):
    """
    The target mailbox of APPEND C{cmd} and the L{AppendRequest}s of its
    messages, CATENATE parts joined; nothing is stored yet.  NO [TRYCREATE]
    for a mailbox that does not exist (RFC 3501 section 6.3.11).
    """
    if session.refuses_8bit_headers:
        from twisted_mailhub.imap import utf8

        utf8.check_append(cmd, selected=session.state is State.SELECTED)
    try:
        mailbox = await session.store.get_mailbox(cmd.mailbox)
    except MailboxNotFound:
        raise CommandFailed(f"Mailbox does not exist: {cmd.mailbox}", "TRYCREATE")
    if any(m.catenate is not None for m in cmd.messages):
        built = [replace(m, content=await _catenated(session, m.catenate), catenate=None)
                 if m.catenate is not None else m for m in cmd.messages]
        cmd = replace(cmd, messages=tuple(built))
        if session.refuses_8bit_headers:
            # The header a CATENATE builds is held to RFC 6855 section 4 too.
            from twisted_mailhub.imap import utf8

            utf8.check_append(cmd, selected=session.state is State.SELECTED)
    requests = []
    for message in cmd.messages:
        if not message.content:
            raise CommandFailed("Cannot append an empty message")
        requests.append(AppendRequest(message.content, frozenset(message.flags),
                                      message.internaldate))
    return mailbox, requests


async def _catenated(session: Session, parts) -> bytes:
    """
    RFC 4469 section 3: the message the CATENATE parts make.  Every URL is
    read before anything is appended, so one that fails leaves every
    mailbox as it was.
    """
    from twisted_mailhub.imap import catenate

    try:
        return await catenate.build(parts, lambda raw, room: _url_part(session, raw, room),
                                    _catenate_limit(session))
    except catenate.BadUrl as e:
        raise CommandFailed(f"CATENATE failed: {e.reason}", catenate.badurl_code(e.url))
    except catenate.TooBig:
        limit = _catenate_limit(session)
        raise CommandFailed(f"CATENATE message over {limit} bytes", "TOOBIG")


def _catenate_limit(session: Session) -> int:
    """RFC 4469 section 4.2: the APPENDLIMIT, and never over the 4 GB of IMAP."""
    return min(session.policy.max_literal_size, 2**32 - 1)


async def _url_part(session: Session, raw: bytes, room: int) -> bytes:
    """The octets of one CATENATE URL, which must name this user's mail."""
    from twisted_mailhub.imap import catenate, url as imapurl

    try:
        parsed = imapurl.parse(raw)
    except imapurl.UrlError as e:
        raise catenate.BadUrl(raw, str(e)) from None
    store = session.store
    if parsed.user is not None and parsed.user != session.username and parsed.access is None:
        raise catenate.BadUrl(raw, "URL names another user's mailbox")
    if parsed.access is not None:
        # Another user's mail only through a URLAUTH they gave (RFC 4467);
        # one that comes with a URL is checked on the user's own mail too,
        # as URLFETCH checks it, so an expired or forged URL never works.
        from twisted_mailhub.imap import urlauth

        store = await urlauth.owner_store(session, parsed, raw)
    mailbox = None
    if parsed.mailbox is None:
        # Relative to the selected mailbox (RFC 4469 section 3's base URL).
        if session.selected is None:
            raise catenate.BadUrl(raw, "URL relative to a selected mailbox, and none is")
        mailbox = session.selected.mailbox
    return await catenate.read_part(store, parsed, raw, limit=room, mailbox=mailbox)


HANDLERS = {
    C.Select: select,
    C.Create: create,
    C.Delete: delete,
    C.Rename: rename,
    C.Subscribe: subscribe,
    C.Unsubscribe: unsubscribe,
    C.List: list_,
    C.Status: status,
    C.Append: append,
    C.Notify: notify,
}
