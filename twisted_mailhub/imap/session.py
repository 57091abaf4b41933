"""
One IMAP session: its state (RFC 3501 section 3), the command dispatch, the
mapping of store errors to responses, and when pending mailbox updates are
told to the client.

The session does no socket I/O: it writes bytes to, and reads lines from, a
L{SessionIO} that the Twisted protocol (or a test) provides.  Storage calls
are awaited, so nothing here blocks.
"""

from __future__ import annotations

from enum import Enum
from typing import Any, Awaitable, Callable, Protocol

from twisted.logger import Logger

from twisted_mailhub.connection import ClientGone, ConnectionIO
from twisted_mailhub.errors import MailhubError
from twisted_mailhub.imap import commands as C
from twisted_mailhub.imap import responses
from twisted_mailhub.imap.contexts import Contexts
from twisted_mailhub.imap.notify import Notifications
from twisted_mailhub.imap.readahead import ReadAhead
from twisted_mailhub.imap.selected import SelectedMailbox
from twisted_mailhub.policy import ServerPolicy


class State(Enum):
    NOT_AUTHENTICATED = "not authenticated"
    AUTHENTICATED = "authenticated"
    SELECTED = "selected"
    LOGOUT = "logout"


class SessionIO(ConnectionIO, Protocol):
    """
    What an IMAP session needs from its connection.  C{write} starts a new
    response (finishing an unfinished one first, see
    L{twisted_mailhub.imap.output}); C{write_part} continues the current one.
    """

    def write_part(self, data: bytes) -> None: ...

    def set_max_literal(self, size: int) -> None: ...

    def set_utf8(self, enabled: bool) -> None: ...

    #: COMPRESS=DEFLATE is active (RFC 4978).
    compressing: bool

    def start_compression(self) -> None:
        """Compress both ways from the next byte on (after a tagged OK)."""

    def stop_compression(self) -> None:
        """End compression after the tagged OK just written (RFC 8437 4.1)."""


class CommandFailed(Exception):
    """A handler's way to answer NO (or BAD) with an optional response code."""

    def __init__(self, text: str, code: str | None = None, condition: str = "NO") -> None:
        super().__init__(text)
        self.text = text
        self.code = code
        self.condition = condition


# A handler returns this when it wrote its own tagged response (STARTTLS).
SILENT = "\x00silent"

Handler = Callable[["Session", Any], Awaitable[str | tuple[str, str | None] | None]]

_ALLOWED = {cls: (State.NOT_AUTHENTICATED, State.AUTHENTICATED, State.SELECTED)
            for cls in C.ANY_STATE}
_ALLOWED.update({cls: (State.NOT_AUTHENTICATED,) for cls in C.NOT_AUTHENTICATED})
_ALLOWED.update({cls: (State.AUTHENTICATED, State.SELECTED) for cls in C.AUTHENTICATED})
_ALLOWED.update({cls: (State.SELECTED,) for cls in C.SELECTED})

# RFC 3501 7.4.1: no EXPUNGE while answering these (by sequence number).
_NO_EXPUNGE = (C.Fetch, C.Store, C.Search, C.Sort, C.Thread)


def _expunge_allowed(command: C.Command) -> bool:
    """
    Whether EXPUNGE (or VANISHED) may be told at the end of C{command}: not
    after FETCH, STORE, SEARCH (SORT, THREAD) by sequence number, nor after
    their UID form when the search names message numbers (RFC 7162
    section 3.2.10.2), whose meaning the client must be able to rely on.
    """
    if not isinstance(command, _NO_EXPUNGE):
        return True
    if not getattr(command, "uid", False):
        return False
    key = getattr(command, "key", None)
    return key is None or not _names_sequence_numbers(key)


def _names_sequence_numbers(key) -> bool:
    from twisted_mailhub import criteria as K

    return K.any_key(key, lambda k: isinstance(k, K.Sequence))


class Session:
    """The state of one client connection and the execution of its commands."""

    log = Logger()

    def __init__(self, io: SessionIO, portal, policy: ServerPolicy, *,
                 throttle=None, clock=None, users=None) -> None:
        from collections import Counter

        from twisted.internet import reactor

        self.io = io
        self.portal = portal
        self.policy = policy
        self.throttle = throttle
        self.clock = clock if clock is not None else reactor
        # Authenticated sessions per user, shared by the sessions of a server.
        self.users = users if users is not None else Counter()
        self.state = State.NOT_AUTHENTICATED
        self.username: str | None = None
        self.store = None
        self._logout: Callable[[], None] | None = None
        self.selected: SelectedMailbox | None = None
        self.enabled: set[str] = set()
        self.saved_search: list[int] = []
        #: RFC 5267 section 4.3: search results kept up to date.
        self.contexts = Contexts(self)
        #: RFC 5465: what NOTIFY asked for.
        self.notifications = Notifications(self)
        # A command is running (between its start and its tagged response);
        # IDLE is the one during which updates are pushed all the same.
        self.executing = False
        self.idling = False
        # The updates being pushed between commands (see wake).
        self._pushing = False
        self._push = None
        self.bad_commands = 0
        #: Messages opened for the FETCH commands pipelined behind this one.
        self.readahead = ReadAhead()
        # What to do once the tagged response of the running command is
        # written, if it is OK: start or end compression.
        self.after_ok: Callable[[], None] | None = None

    # -- capabilities --------------------------------------------------------

    @property
    def plaintext_allowed(self) -> bool:
        """RFC 9051 section 11.1 / RFC 8314: passwords only over TLS, or loopback."""
        allow = self.policy.allow_plaintext_auth
        if self.io.secure or allow is True:
            return True
        return allow == "loopback" and self.io.is_loopback

    def capabilities(self) -> list[str]:
        caps = ["IMAP4rev1", "IMAP4rev2"]
        if self.state is State.NOT_AUTHENTICATED:
            if self.io.tls_available and not self.io.secure:
                caps.append("STARTTLS")
            from twisted_mailhub.imap.handlers.auth import mechanisms

            mechs = mechanisms(self)
            if not self.plaintext_allowed:
                caps.append("LOGINDISABLED")
            caps.extend("AUTH=" + m for m in mechs)
            caps.append("SASL-IR")
        caps += [
            # RFC 7888 section 5: one of the two, never both.
            "LITERAL-" if self.policy.literal_minus else "LITERAL+",
            "ID", "ENABLE", "IDLE", "NAMESPACE", "UNSELECT", "UIDPLUS",
            "MOVE", "CHILDREN", "LIST-EXTENDED", "LIST-STATUS", "SPECIAL-USE",
            "ESEARCH", "SEARCHRES", "CONDSTORE", "BINARY",
            # RFC 7162 section 3.2: quick resynchronization (ENABLE QRESYNC).
            "QRESYNC",
            # RFC 5256, RFC 5957 and RFC 5267 section 3.1.
            "SORT", "SORT=DISPLAY", "THREAD=ORDEREDSUBJECT", "THREAD=REFERENCES", "ESORT",
            # RFC 8438: STATUS (SIZE) is answered, so say so.
            "STATUS=SIZE",
            # RFC 3502: APPEND of several messages is one store operation,
            # all or nothing (IMailbox.append).
            "MULTIAPPEND",
            # RFC 4469: APPEND of TEXT and URL parts of the user's own mail.
            "CATENATE",
            # RFC 8508: REPLACE and UID REPLACE, with CATENATE too.
            "REPLACE",
            # RFC 9586: UIDs only, after ENABLE UIDONLY (imap/uidonly.py).
            "UIDONLY",
            # RFC 7889: the same limit for every mailbox, the literal bound.
            f"APPENDLIMIT={self.policy.max_literal_size}",
            # RFC 8970 and RFC 6154 section 3.
            "PREVIEW", "CREATE-SPECIAL-USE",
            # RFC 8474 (EMAILID, MAILBOXID; THREADID is NIL) and RFC 8514.
            "OBJECTID", "SAVEDATE",
            # RFC 5032: OLDER and YOUNGER, to the second on every store.
            "WITHIN",
            # RFC 9394: PARTIAL of SEARCH, SORT and UID FETCH.
            "PARTIAL",
            # RFC 5267 section 4: SEARCH and SORT results kept up to date.
            "CONTEXT=SEARCH", "CONTEXT=SORT",
            # RFC 6855 section 3: UTF-8 names and headers after ENABLE.
            # RFC 5465: events told without waiting for a command.
            "NOTIFY",
        ]
        if self.policy.utf8_accept:
            # RFC 6855 (see ServerPolicy.utf8_accept).
            caps.append("UTF8=ACCEPT")
        if self.policy.message_limit is not None:
            # RFC 9738 section 3: the limit handlers enforce (imap/messagelimit.py).
            caps.append(f"MESSAGELIMIT={self.policy.message_limit}")
        from twisted_mailhub.imap import urlauth

        if urlauth.access_keys(self) is not None:
            # RFC 4467: only where the backend keeps mailbox access keys.
            caps.append("URLAUTH")
        if self.state in (State.AUTHENTICATED, State.SELECTED):
            # RFC 4978 (COMPRESS is a command of these states) and RFC 8437,
            # which servers may offer once authenticated, and must let the
            # admin turn off.
            caps.append("COMPRESS=DEFLATE")
            if self.policy.unauthenticate:
                caps.append("UNAUTHENTICATE")
        if self.store is not None:
            # RFC 9208: offered to a user who has limits.
            from twisted_mailhub.imap.handlers.quota import capabilities

            caps += capabilities(self)
        return caps

    @property
    def condstore(self) -> bool:
        return "CONDSTORE" in self.enabled

    async def enable_condstore(self) -> None:
        """
        A CONDSTORE enabling command (RFC 7162 section 3.1: ENABLE, SELECT
        (CONDSTORE), STATUS (HIGHESTMODSEQ), FETCH or SEARCH naming MODSEQ,
        CHANGEDSINCE, UNCHANGEDSINCE) is running.  From now on every untagged
        FETCH carries MODSEQ; the first such command with a mailbox selected
        tells the client its HIGHESTMODSEQ, here, before the command's own
        responses.
        """
        if self.condstore:
            return
        self.enabled.add("CONDSTORE")
        if self.selected is not None:
            self.selected.condstore = True
            status = await self.selected.mailbox.status()
            self.io.write(responses.status(None, "OK", "Highest",
                                           f"HIGHESTMODSEQ {status.highestmodseq}"))

    @property
    def qresync(self) -> bool:
        """The client enabled QRESYNC (RFC 7162 section 3.2.3)."""
        return "QRESYNC" in self.enabled

    async def enable_qresync(self) -> None:
        """
        ENABLE QRESYNC: CONDSTORE too (RFC 7162 section 3.2.3), and VANISHED
        instead of EXPUNGE from now on, in the selected mailbox as well.
        """
        self.enabled.add("QRESYNC")
        if self.selected is not None:
            self.selected.qresync = True
        await self.enable_condstore()

    @property
    def rev2(self) -> bool:
        """The client enabled IMAP4rev2 (RFC 9051 section 6.3.1)."""
        return "IMAP4REV2" in self.enabled

    @property
    def uidonly(self) -> bool:
        """The client enabled UIDONLY (RFC 9586): no message numbers either way."""
        return "UIDONLY" in self.enabled

    @property
    def fetch_verb(self) -> bytes:
        """``FETCH``, or ``UIDFETCH`` once UIDONLY is enabled (RFC 9586)."""
        return b"UIDFETCH" if self.uidonly else b"FETCH"

    @property
    def utf8_accept(self) -> bool:
        """The client enabled UTF8=ACCEPT (RFC 6855 section 3)."""
        return "UTF8=ACCEPT" in self.enabled

    @property
    def utf8_headers(self) -> bool:
        """
        The client takes UTF-8 in message headers: it enabled UTF8=ACCEPT
        or IMAP4rev2 (RFC 9051 section 4.3.1).
        """
        return self.utf8_accept or self.rev2

    @property
    def refuses_8bit_headers(self) -> bool:
        """
        An APPEND with 8-bit header octets is refused: the server offers
        UTF8=ACCEPT and the client took neither it nor IMAP4rev2 (RFC 6855
        section 4).
        """
        return self.policy.utf8_accept and not self.utf8_headers

    # -- running commands ------------------------------------------------------

    async def greet(self) -> None:
        self.io.write(responses.status(
            None, "OK", f"{self.policy.server_name} ready",
            responses.capability_code(self.capabilities())))

    async def execute(self, command: C.Command) -> None:
        """Run one command to its tagged response."""
        if self._push is not None:
            # Updates pushed before it came are written to their end first.
            await self._push
        self.executing = True
        try:
            await self._execute(command)
        finally:
            self.executing = False
        if self.state is not State.LOGOUT:
            self.wake()

    async def _execute(self, command: C.Command) -> None:
        if not isinstance(command, C.Fetch):
            # Only a STATUS leaves what STATUS reads as it was.
            self.readahead.clear(keep_status=isinstance(command, C.Status))
        allowed = _ALLOWED.get(type(command), ())
        if self.state not in allowed:
            self.io.write(responses.status(
                command.tag, "BAD", f"{command.name} not allowed {self._state_phrase()}"))
            self.bad_commands += 1
            return
        from twisted_mailhub.imap.handlers import HANDLERS

        handler = HANDLERS[type(command)]
        condition, code, text = "OK", None, f"{command.name} completed"
        try:
            if self.rev2:
                # What RFC 9051 removed from the grammar is BAD (imap/rev2.py).
                from twisted_mailhub.imap import rev2

                rev2.check(command)
            if self.utf8_accept:
                # RFC 6855 section 3 (imap/utf8.py).
                from twisted_mailhub.imap import utf8

                utf8.check(command)
            if self.uidonly:
                # RFC 9586: BAD [UIDREQUIRED] (imap/uidonly.py).
                from twisted_mailhub.imap import uidonly

                uidonly.check(command)
            result = await handler(self, command)
            if result == SILENT:
                return
            if isinstance(result, tuple):
                code, text = result[1], result[0]
            elif isinstance(result, str):
                text = result
        except ClientGone:
            raise
        except CommandFailed as e:
            condition, code, text = e.condition, e.code, e.text
        except MailhubError as e:
            condition, code, text = "NO", e.code, e.message
        except Exception:
            self.log.failure("Internal error running {command}", command=command.name)
            condition, code, text = "NO", "SERVERBUG", "Internal server error; the failure was logged"
        if condition == "BAD":
            self.bad_commands += 1
        else:
            self.bad_commands = 0
        if self.state is State.LOGOUT:
            self.io.write(responses.status(command.tag, condition, text, code))
            return
        await self.send_updates(allow_expunge=_expunge_allowed(command),
                                uid_in_fetch=getattr(command, "uid", False))
        self.io.write(responses.status(command.tag, condition, text, code))
        after, self.after_ok = self.after_ok, None
        if after is not None and condition == "OK":
            after()

    def _state_phrase(self) -> str:
        if self.state is State.NOT_AUTHENTICATED:
            return "before authentication"
        if self.state is State.AUTHENTICATED:
            return "without a selected mailbox"
        return "in this state"

    async def send_updates(self, allow_expunge: bool = True, uid_in_fetch: bool = False,
                           flags: bool = True) -> None:
        """Tell the client what other sessions changed, as far as allowed now."""
        selected = self.selected
        if selected is not None:
            if selected.removed:
                # The mailbox was deleted or renamed away under us.
                self.io.write(responses.status(None, "BYE", "Selected mailbox was removed"))
                self.io.close()
                self.state = State.LOGOUT
                return
            for line in await selected.flush(allow_expunge, uid_in_fetch, flags):
                self.io.write(line)
            if self.contexts:
                # After EXISTS, so that ADDTO may name new messages by number.
                await self.contexts.refresh()
            # RFC 5465 section 5.2: the FETCH of new messages follows both.
            await self.notifications.fetch_new(selected)
        if self.notifications.pending:
            await self.notifications.deliver()

    # -- updates between commands (RFC 5465, RFC 2177) ----------------------------

    def wake(self) -> None:
        """
        Something changed that the client may want told: push it now if no
        command is running (or IDLE is), and NOTIFY (or IDLE) asks for it.
        Commands wait for a push under way (L{execute}), so responses never
        interleave and sequence numbers move only between commands.
        """
        if self._pushing or self.state is State.LOGOUT:
            return
        if self.executing and not self.idling:
            return
        if not self._push_wanted():
            return
        from twisted.internet.defer import Deferred

        self._pushing = True
        pushed = Deferred.fromCoroutine(self._push_updates())
        if self._pushing:
            self._push = pushed

    def _push_wanted(self) -> bool:
        selected = self.selected
        if self.idling:
            return self.notifications.pending or (selected is not None and (
                selected.removed or selected.has_pending or self.contexts.stale))
        if not self.notifications.active:
            return False
        if self.notifications.pending:
            return True
        events = self.notifications.selected_events
        if selected is None or not events:
            return False
        return selected.removed or selected.pending_of(
            "MessageNew" in events,
            "MessageExpunge" in events and not self.notifications.delayed,
            "FlagChange" in events)

    async def _push_updates(self) -> None:
        try:
            while self.state is not State.LOGOUT and self._push_wanted():
                if self.idling:
                    await self.send_updates(allow_expunge=True)
                else:
                    events = self.notifications.selected_events
                    # RFC 5465 section 5.1: UID in each FETCH of flags.
                    await self.send_updates(
                        allow_expunge=not self.notifications.delayed, uid_in_fetch=True,
                        flags="FlagChange" in events)
        except ClientGone:
            pass
        except Exception:
            self.log.failure("Pushing updates")
        finally:
            self._pushing = False
            self._push = None

    def start_idle(self) -> None:
        """IDLE begins: every update is pushed at once (RFC 2177)."""
        self.idling = True
        self.wake()

    async def end_idle(self) -> None:
        """IDLE ends: wait for a push under way."""
        self.idling = False
        if self._push is not None:
            await self._push

    # -- helpers for handlers ----------------------------------------------------

    def authenticated(self, username: str, store, logout) -> None:
        if self.users[username] >= self.policy.max_connections_per_user:
            logout()
            raise CommandFailed("Too many connections for this user", "LIMIT")
        self.users[username] += 1
        self.state = State.AUTHENTICATED
        self.username = username
        self.store = store
        self._logout = logout
        self.io.set_max_literal(self.policy.max_literal_size)
        self.io.set_timeout(self.policy.idle_timeout)

    def deselect(self) -> None:
        # RFC 5267 section 4.3: updates cease with the selection.
        self.contexts.clear()
        if self.selected is not None:
            self.selected.close()
            self.selected = None
        if self.state is State.SELECTED:
            self.state = State.AUTHENTICATED

    def unauthenticate(self) -> None:
        """
        RFC 8437: back to the not authenticated state, as if the connection
        were new but for TLS (and COMPRESS, which the caller ends): the
        mailbox is closed without expunge responses, the store and the
        user's connection slot given back, what ENABLE and SEARCHRES set
        forgotten, and the limits and timer of a client not logged in apply
        again.
        """
        self._end_login()
        self.notifications.clear()
        self.state = State.NOT_AUTHENTICATED
        self.username = None
        self.store = None
        self.enabled = set()
        self.saved_search = []
        self.io.set_utf8(False)
        self.io.set_max_literal(self.policy.max_literal_size_unauthenticated)
        self.io.set_timeout(self.policy.login_timeout)

    def connection_lost(self) -> None:
        self.notifications.clear()
        self._end_login()
        self.state = State.LOGOUT

    def _end_login(self) -> None:
        self.deselect()
        if self.username is not None and self.state is not State.NOT_AUTHENTICATED:
            self.users[self.username] -= 1
            if self.users[self.username] <= 0:
                del self.users[self.username]
        if self._logout is not None:
            logout, self._logout = self._logout, None
            logout()
