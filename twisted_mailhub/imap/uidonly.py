"""
UIDONLY (RFC 9586): after ``ENABLE UIDONLY`` the client and the server
speak of messages by UID alone.

What changes for such a session, and where:

- commands that name messages by sequence number (FETCH, STORE, SEARCH,
  SORT, THREAD, COPY, MOVE and REPLACE without ``UID``, a search key that is
  a bare sequence set, the message-number pairs of SELECT's QRESYNC
  parameter) are refused with ``BAD [UIDREQUIRED]``: L{check}, which the
  session runs before each command;
- FETCH data, asked for or unsolicited, is sent as ``* uid UIDFETCH (...)``
  (L{twisted_mailhub.imap.fetch}, the FETCH and STORE handlers,
  L{twisted_mailhub.imap.selected.SelectedMailbox.flush}), carrying the
  UID item only when the client asked for it, since the number is the UID;
- expunges are told as ``* VANISHED uids``, never EXPUNGE, with or without
  QRESYNC (L{twisted_mailhub.imap.selected.SelectedMailbox.expunge_responses});
- SELECT sends no ``[UNSEEN n]``, which is a sequence number.

EXISTS still counts the messages.
"""

from __future__ import annotations

from twisted_mailhub import criteria as K
from twisted_mailhub.imap import commands as C
from twisted_mailhub.imap.session import CommandFailed

#: The response code of a command refused for naming message numbers.
CODE = "UIDREQUIRED"

_BY_NUMBER = (C.Fetch, C.Store, C.Search, C.Sort, C.Thread, C.Copy, C.Replace)


def _refused(what: str) -> CommandFailed:
    return CommandFailed(f"{what}: message sequence numbers are not allowed with UIDONLY",
                         CODE, "BAD")


def check(command: C.Command) -> None:
    """Raise L{CommandFailed} (BAD [UIDREQUIRED]) if C{command} names message numbers."""
    if isinstance(command, _BY_NUMBER) and not command.uid:
        name = "MOVE" if isinstance(command, C.Copy) and command.move else command.name
        raise _refused(f"{name} without UID")
    if isinstance(command, (C.Search, C.Sort, C.Thread)) and _names_numbers(command.key):
        raise _refused("A search key that is a sequence set")
    if isinstance(command, C.Select) and command.qresync is not None \
            and command.qresync[3] is not None:
        raise _refused("QRESYNC message sequence match data")


def _names_numbers(key) -> bool:
    """Whether C{key} holds a bare sequence set (``$``, the saved UIDs, is allowed)."""
    return K.any_key(key, lambda k: isinstance(k, K.Sequence) and not k.set.saved)
