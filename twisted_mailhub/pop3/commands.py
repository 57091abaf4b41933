"""
The POP3 commands of RFC 1939 and RFC 2449 (CAPA), one handler each, and
the table of the states each is valid in.  The AUTHORIZATION commands
(USER, PASS, AUTH, STLS) are in L{twisted_mailhub.pop3.login}.
"""

from __future__ import annotations

from twisted_mailhub.pop3 import login, wire
from twisted_mailhub.pop3.session import POP3Session, Reply, State, message_number


def _no_args(command: wire.Command) -> None:
    if command.args:
        raise Reply(f"{command.keyword} takes no arguments", bad=True)


async def capa(session: POP3Session, command: wire.Command) -> None:
    """RFC 2449 section 5."""
    lines = [c.encode("ascii") for c in session.capabilities()]
    session.io.write(wire.multiline(wire.ok("Capability list follows"), lines))


async def noop(session: POP3Session, command: wire.Command) -> None:
    session.io.write(wire.ok())


async def quit_(session: POP3Session, command: wire.Command) -> None:
    """RFC 1939 sections 4 and 6: QUIT, with the UPDATE state after login."""
    if session.state is State.TRANSACTION:
        await session.update()
    else:
        session.io.write(wire.ok(f"{session.policy.server_name} POP3 server signing off"))
    session.io.close()


async def stat(session: POP3Session, command: wire.Command) -> None:
    _no_args(command)
    assert session.maildrop is not None
    count, size = session.maildrop.stat()
    session.io.write(wire.ok(f"{count} {size}"))


async def list_(session: POP3Session, command: wire.Command) -> None:
    assert session.maildrop is not None
    if command.args:
        number = message_number(command)
        entry = session.entry(number)
        session.io.write(wire.ok(f"{number} {entry.size}"))
        return
    listing = session.maildrop.listing()
    count, size = session.maildrop.stat()
    lines = [b"%d %d" % (n, e.size) for n, e in listing]
    session.io.write(wire.multiline(wire.ok(f"{count} messages ({size} octets)"), lines))


async def uidl(session: POP3Session, command: wire.Command) -> None:
    """RFC 1939 section 7: unique ids, ``<uidvalidity>.<uid>``."""
    maildrop = session.maildrop
    assert maildrop is not None
    if command.args:
        number = message_number(command)
        entry = session.entry(number)
        session.io.write(wire.ok(f"{number} {maildrop.unique_id(entry)}"))
        return
    lines = [f"{n} {maildrop.unique_id(e)}".encode("ascii") for n, e in maildrop.listing()]
    session.io.write(wire.multiline(wire.ok(), lines))


async def retr(session: POP3Session, command: wire.Command) -> None:
    await session.send_message(message_number(command))


async def top(session: POP3Session, command: wire.Command) -> None:
    """RFC 1939 section 7: TOP msg n, a non-negative number of body lines."""
    if len(command.args) != 2:
        raise Reply("TOP needs a message number and a number of lines", bad=True)
    number = message_number(command)
    lines = command.args[1]
    if not lines.isdigit() or len(lines) > 10:
        raise Reply(f"Invalid number of lines: {lines[:20]}", bad=True)
    await session.send_message(number, int(lines))


async def dele(session: POP3Session, command: wire.Command) -> None:
    number = message_number(command)
    session.entry(number)
    assert session.maildrop is not None
    session.maildrop.delete(number)
    session.io.write(wire.ok(f"message {number} deleted"))


async def rset(session: POP3Session, command: wire.Command) -> None:
    _no_args(command)
    assert session.maildrop is not None
    session.maildrop.reset()
    count, size = session.maildrop.stat()
    session.io.write(wire.ok(f"maildrop has {count} messages ({size} octets)"))


_ANY = (State.AUTHORIZATION, State.TRANSACTION)
_AUTH = (State.AUTHORIZATION,)
_TRANS = (State.TRANSACTION,)

COMMANDS = {
    "CAPA": (capa, _ANY),
    "NOOP": (noop, _TRANS),
    "QUIT": (quit_, _ANY),
    "USER": (login.user, _AUTH),
    "PASS": (login.pass_, _AUTH),
    "AUTH": (login.auth, _AUTH),
    "STLS": (login.stls, _AUTH),
    "STAT": (stat, _TRANS),
    "LIST": (list_, _TRANS),
    "UIDL": (uidl, _TRANS),
    "RETR": (retr, _TRANS),
    "TOP": (top, _TRANS),
    "DELE": (dele, _TRANS),
    "RSET": (rset, _TRANS),
}
