"""
What a session that sent ``ENABLE IMAP4rev2`` may no longer use.

The server offers IMAP4rev1 and IMAP4rev2 together (RFC 9051 appendix A);
the parser reads the union of both grammars.  Once a client has enabled
IMAP4rev2 it speaks RFC 9051, whose grammar (section 9) no longer has the
commands and items that appendix E removed or deprecated: CHECK (item 17),
LSUB (item 19), the FETCH items RFC822, RFC822.HEADER and RFC822.TEXT
(item 18), the STATUS item RECENT and the search keys NEW, OLD and RECENT
(item 12).  Such a command is not valid IMAP4rev2, so it is BAD, with a
text naming what replaces it.  An IMAP4rev1 session keeps all of them.

Mailbox names are UTF-8 in IMAP4rev2 (section 5.1), and a server "MUST
prohibit the creation of 8-bit mailbox names that do not comply with
Net-Unicode": names that CREATE or RENAME would make are checked here too.
"""

from __future__ import annotations

import unicodedata

from twisted_mailhub import criteria as K
from twisted_mailhub.imap import commands as C
from twisted_mailhub.imap.session import CommandFailed

#: RFC 9051 appendix E item 18: the BODY[] forms to use instead.
_FETCH_REPLACED = {
    "RFC822": "BODY[]",
    "RFC822.HEADER": "BODY.PEEK[HEADER]",
    "RFC822.TEXT": "BODY[TEXT]",
}


def _refused(text: str, condition: str = "BAD", code: str | None = None) -> CommandFailed:
    return CommandFailed(text, code, condition)


def check(command: C.Command) -> None:
    """
    Raise L{CommandFailed} if C{command} is not valid in an IMAP4rev2
    session: BAD for what the grammar lost, NO for a name not allowed.
    """
    if isinstance(command, C.Check):
        raise _refused("CHECK is not part of IMAP4rev2; use NOOP")
    if isinstance(command, C.List):
        if command.lsub:
            raise _refused("LSUB is not part of IMAP4rev2; use LIST (SUBSCRIBED)")
        if "RECENT" in command.return_status:
            raise _refused("STATUS RECENT is not part of IMAP4rev2")
    elif isinstance(command, C.Status):
        if "RECENT" in command.items:
            raise _refused("STATUS RECENT is not part of IMAP4rev2")
    elif isinstance(command, C.Fetch):
        for attr in command.attrs:
            if attr.name in _FETCH_REPLACED:
                raise _refused(f"{attr.name} is not part of IMAP4rev2; "
                              f"use {_FETCH_REPLACED[attr.name]}")
    elif isinstance(command, (C.Search, C.Sort, C.Thread)):
        name = _recent_key(command.key)
        if name is not None:
            raise _refused(f"SEARCH {name} is not part of IMAP4rev2 (it has no \\Recent)")
    elif isinstance(command, C.Create):
        check_new_name(command.mailbox)
    elif isinstance(command, C.Rename):
        check_new_name(command.new)


def _recent_key(key) -> str | None:
    """The name of a NEW, OLD or RECENT key within C{key}, if there is one."""
    if isinstance(key, K.New):
        return "NEW"
    if isinstance(key, K.Recent):
        return "RECENT" if key.present else "OLD"
    if isinstance(key, K.Not):
        return _recent_key(key.key)
    if isinstance(key, K.Or):
        return _recent_key(key.left) or _recent_key(key.right)
    if isinstance(key, K.And):
        for k in key.keys:
            name = _recent_key(k)
            if name is not None:
                return name
    return None


# RFC 5198 section 2 as RFC 6855 section 3 spells it for mailbox names:
# no C1 controls, no line or paragraph separator (C0 controls and DEL are
# refused by every store, twisted_mailhub.backends.base.validate_name).
_NOT_NET_UNICODE = frozenset(chr(c) for c in range(0x80, 0xA0)) | {"\u2028", "\u2029"}


def check_new_name(name: str) -> None:
    """NO [CANNOT] for a new mailbox name that is not Net-Unicode in NFC."""
    if any(c in _NOT_NET_UNICODE for c in name):
        raise _refused("Mailbox name is not Net-Unicode (RFC 5198)", "NO", "CANNOT")
    if not unicodedata.is_normalized("NFC", name):
        # RFC 9051 section 5.1: a server MAY convert to NFC instead; then it
        # would have to accept the unnormalized form everywhere and send
        # OLDNAME.  Refusing keeps one spelling per mailbox.
        raise _refused("Mailbox name is not in Unicode Normalization Form C", "NO", "CANNOT")
