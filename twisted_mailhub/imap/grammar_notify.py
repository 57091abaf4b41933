"""
The NOTIFY command's grammar (RFC 5465 section 8) and the rules of its
sections 5 and 6.1 that make a command BAD: MessageNew and MessageExpunge
only together, FlagChange and AnnotationChange only with both, one
SELECTED or SELECTED-DELAYED group at most, only message events (and the
only FETCH attributes) for it.

Event names are checked for support by the handler, not here: an unknown
event (``event-ext = atom``) is valid syntax that the server answers NO
[BADEVENT] (section 3.1).
"""

from __future__ import annotations

from typing import Callable

from twisted_mailhub.imap import commands as c
from twisted_mailhub.imap import grammar as g
from twisted_mailhub.imap.framing import ParseError

SP, LPAREN = 0x20, 0x28

#: The RFC's spelling of each event name, by its upper case.
EVENT_NAMES = {name.upper(): name for name in (
    "MessageNew", "MessageExpunge", "FlagChange", "AnnotationChange",
    "MailboxName", "SubscriptionChange", "MailboxMetadataChange",
    "ServerMetadataChange",
)}
MESSAGE_EVENTS = frozenset({"MessageNew", "MessageExpunge", "FlagChange", "AnnotationChange"})
SELECTED_FILTERS = ("SELECTED", "SELECTED-DELAYED")
_OTHER_FILTERS = ("INBOXES", "PERSONAL", "SUBSCRIBED")
_NAMED_FILTERS = ("SUBTREE", "MAILBOXES")


def cmd_notify(ctx: g.Context, tag: str, fetch_att: Callable[[g.Context], c.FetchAttr]
               ) -> c.Notify:
    """``NOTIFY SP (notify-set / notify-none)``; C{fetch_att} reads one fetch-att."""
    cur = ctx.c
    cur.sp("NOTIFY SET or NONE")
    form = cur.word("NOTIFY SET or NONE")
    if form == "NONE":
        return c.Notify(tag, None)
    if form != "SET":
        raise ParseError(f"Expected SET or NONE after NOTIFY, not {form}")
    cur.sp("NOTIFY event groups")
    status = False
    if cur.peek() != LPAREN:
        word = cur.word("NOTIFY event groups")
        if word != "STATUS":
            raise ParseError(f"Expected STATUS or an event group, not {word}")
        status = True
        cur.sp("NOTIFY event groups")
    groups = [_event_group(ctx, fetch_att)]
    while cur.skip(SP):
        groups.append(_event_group(ctx, fetch_att))
    if sum(group.filter in SELECTED_FILTERS for group in groups) > 1:
        # Section 6.1: only one of them in a NOTIFY command.
        raise ParseError("Only one SELECTED or SELECTED-DELAYED event group is allowed")
    return c.Notify(tag, tuple(groups), status)


def _event_group(ctx: g.Context, fetch_att) -> c.NotifyGroup:
    cur = ctx.c
    cur.expect(LPAREN, "before NOTIFY event group")
    kind = cur.word("NOTIFY mailbox filter")
    mailboxes: tuple[str, ...] = ()
    if kind in _NAMED_FILTERS:
        cur.sp(f"{kind} mailboxes")
        if cur.peek() == LPAREN:
            mailboxes = tuple(g.paren_list(ctx, lambda: g.mailbox(ctx), f"{kind} mailboxes",
                                           empty=False))
        else:
            mailboxes = (g.mailbox(ctx),)
    elif kind not in SELECTED_FILTERS and kind not in _OTHER_FILTERS:
        raise ParseError(f"Unknown NOTIFY mailbox filter: {kind}")
    cur.sp("NOTIFY events")
    events: list[str] = []
    fetch: tuple[c.FetchAttr, ...] = ()
    if cur.peek() == LPAREN:
        cur.advance()
        while True:
            raw = cur.atom("NOTIFY event").decode("ascii")
            name = EVENT_NAMES.get(raw.upper(), raw)
            if name == "MessageNew" and cur.peek() == SP and cur.peek_bytes(2) == b" (":
                cur.advance()
                fetch = tuple(g.paren_list(ctx, lambda: fetch_att(ctx), "MessageNew attributes",
                                           empty=False))
            if name not in events:
                events.append(name)
            if not cur.skip(SP):
                break
        cur.expect(0x29, "after NOTIFY events")
    elif cur.word("NOTIFY events") != "NONE":
        raise ParseError("Expected a list of events or NONE")
    cur.expect(0x29, "after NOTIFY event group")
    _check_events(kind, events, fetch)
    return c.NotifyGroup(kind, mailboxes, tuple(events), fetch)


def _check_events(kind: str, events: list[str], fetch: tuple) -> None:
    """The rules of RFC 5465 sections 5 and 6.1 that make the command BAD."""
    present = set(events)
    if ("MessageNew" in present) != ("MessageExpunge" in present):
        raise ParseError("MessageNew and MessageExpunge must be given together")
    if present & {"FlagChange", "AnnotationChange"} and "MessageNew" not in present:
        raise ParseError("FlagChange and AnnotationChange need MessageNew and MessageExpunge")
    if kind in SELECTED_FILTERS:
        known_other = {name for name in present if name in EVENT_NAMES.values()} - MESSAGE_EVENTS
        if known_other:
            raise ParseError(f"Only message events are allowed with {kind}: "
                             + " ".join(sorted(known_other)))
    elif fetch:
        raise ParseError("MessageNew attributes are only allowed with SELECTED")
