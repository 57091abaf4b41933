"""CAPABILITY, NOOP, LOGOUT, ID, ENABLE, NAMESPACE, CHECK and IDLE."""

from __future__ import annotations

from twisted_mailhub import __version__
from twisted_mailhub.imap import commands as C
from twisted_mailhub.imap import responses, wire
from twisted_mailhub.imap.session import CommandFailed, Session, State


async def capability(session: Session, cmd: C.Capability):
    session.io.write(responses.capability(session.capabilities()))


async def noop(session: Session, cmd: C.Noop):
    # Pending updates are sent by the session after every command.
    return None


async def logout(session: Session, cmd: C.Logout):
    session.io.write(responses.status(None, "BYE", "Logging out"))
    session.deselect()
    session.state = State.LOGOUT
    return "LOGOUT completed"


async def id_(session: Session, cmd: C.Id):
    # RFC 2971: the server's own identification.
    fields = [b'"name"', wire.string(session.policy.server_name),
              b'"version"', wire.string(__version__)]
    session.io.write(responses.untagged(b"ID " + wire.plist(fields)))


# ENABLE-able extensions (RFC 5161) and what they turn on.
_ENABLEABLE = {"CONDSTORE": "CONDSTORE", "IMAP4REV2": "IMAP4rev2", "QRESYNC": "QRESYNC",
               "UTF8=ACCEPT": "UTF8=ACCEPT", "UIDONLY": "UIDONLY"}
# Enabled by their own session method (which tells HIGHESTMODSEQ).
_ENABLED_BY_SESSION = ("CONDSTORE", "QRESYNC")


async def enable(session: Session, cmd: C.Enable):
    newly = []
    for cap in cmd.capabilities:
        cap = cap.upper()
        if cap == "UTF8=ACCEPT" and not session.policy.utf8_accept:
            # Not offered (RFC 5161 section 3.1: an unknown name is ignored).
            continue
        if cap == "UTF8=ACCEPT" and session.state is State.SELECTED:
            # RFC 6855 section 3: "only valid in the authenticated state";
            # ENABLED then leaves it out (RFC 5161 section 3.2).
            continue
        if cap == "UIDONLY" and session.state is State.SELECTED:
            # ENABLE belongs before any mailbox is selected (RFC 9051
            # 6.3.1): the message numbers the client holds for the
            # selected mailbox would be left without a way to use them.
            continue
        if cap in _ENABLEABLE and cap not in session.enabled and _ENABLEABLE[cap] not in newly:
            if cap not in _ENABLED_BY_SESSION:
                session.enabled.add(cap)
            newly.append(_ENABLEABLE[cap])
    session.io.write(responses.untagged(" ".join(["ENABLED"] + newly).encode("ascii")))
    if "UTF8=ACCEPT" in newly:
        # RFC 6855 section 3: quoted strings and mailbox names in UTF-8.
        session.io.set_utf8(True)
    if "IMAP4rev2" in newly:
        # RFC 9051 section 5.1: IMAP4rev2 mailbox names are UTF-8, not
        # modified UTF-7 (which appendix A.1 keeps for IMAP4rev1 only).
        session.io.set_utf8(True)
        if session.selected is not None:
            # A client should not ENABLE with a mailbox selected (RFC 9051
            # 6.3.1); one that does gets IMAP4rev2 there too, no \Recent.
            session.selected.rev2 = True
    if "QRESYNC" in newly:
        # RFC 7162 section 3.2.3: QRESYNC implies CONDSTORE.
        await session.enable_qresync()
    elif "CONDSTORE" in newly:
        # With a mailbox selected, this also tells its HIGHESTMODSEQ (RFC 7162 3.1).
        await session.enable_condstore()


async def namespace(session: Session, cmd: C.Namespace):
    delim = wire.string(session.store.delimiter)
    session.io.write(responses.untagged(b'NAMESPACE (("" ' + delim + b")) NIL NIL"))


async def check(session: Session, cmd: C.Check):
    # Every write is already durable when acknowledged: nothing to do.
    return None


async def idle(session: Session, cmd: C.Idle):
    """
    RFC 2177: push updates at once until the client says DONE.  A client
    silent for longer than the policy's IDLE timeout (at least 29 minutes,
    as RFC 2177 requires) gets the autologout: BYE, then the connection
    closes.
    """
    session.io.write(responses.continuation("idling"))
    session.io.set_timeout(session.policy.idle_command_timeout)
    # RFC 5465 section 4: what NOTIFY asked for is pushed during IDLE too.
    session.start_idle()
    try:
        line = await session.io.read_line()
    finally:
        await session.end_idle()
        session.io.set_timeout(session.policy.idle_timeout)
    if line.strip().upper() != b"DONE":
        raise CommandFailed("Expected DONE to end IDLE", condition="BAD")
    return "IDLE terminated"


HANDLERS = {
    C.Capability: capability,
    C.Noop: noop,
    C.Logout: logout,
    C.Id: id_,
    C.Enable: enable,
    C.Namespace: namespace,
    C.Check: check,
    C.Idle: idle,
}
