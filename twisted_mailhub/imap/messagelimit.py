"""
MESSAGELIMIT (RFC 9738): the most messages one command processes.

With a limit N set (L{twisted_mailhub.policy.ServerPolicy.message_limit}),
section 3.1 asks for this:

- FETCH, STORE, SEARCH, MOVE (and their UID forms) and UID EXPUNGE process
  the N messages with the highest UIDs, from highest to lowest, and answer
  OK with ``[MESSAGELIMIT N lowest-uid]``; the client repeats the command
  for the rest (``UIDBEFORE lowest-uid`` names them).  SEARCH counts the
  messages searched, not those found: all of the mailbox, or those a UID
  or sequence set at the top of the criteria names.  UID EXPUNGE counts the
  ``\\Deleted`` messages of its set.
- COPY is atomic: more than N messages is NO with the code, nothing copied.
  So is an APPEND of more than N messages (MULTIAPPEND), with no UID.
- A FETCH PARTIAL range wider than N is NO ``[MESSAGELIMIT N]``.
- When another response code is due in the tagged response
  (EXPUNGEISSUED, and in the same way MODIFIED or HIGHESTMODSEQ), the
  MESSAGELIMIT code goes in an untagged NO before it.
- EXPUNGE, CLOSE and STATUS are never limited.  SORT and THREAD are not
  either: the server sorts any mailbox in memory (section 3.3 leaves the
  choice), so it keeps advertising both.
- The $ of SEARCHRES holds the truncated result (section 3.4).
"""

from __future__ import annotations

from typing import Sequence

from twisted_mailhub import criteria as K
from twisted_mailhub.ranges import SequenceSet

MAX_UID = 2**32 - 1


def code(limit: int, lowest: int | None = None) -> str:
    """``MESSAGELIMIT n [uid]`` (RFC 9738 section 5)."""
    return f"MESSAGELIMIT {limit}" if lowest is None else f"MESSAGELIMIT {limit} {lowest}"


def cap(uids: Sequence[int], limit: int | None) -> tuple[list[int], int | None]:
    """
    The UIDs a command processes out of C{uids} (ascending): the C{limit}
    highest, and the lowest of them if some were left out (else None).
    """
    if limit is None or len(uids) <= limit:
        return list(uids), None
    kept = list(uids[-limit:])
    return kept, kept[0]


def search_domain(uids: Sequence[int], key, saved: Sequence[int]) -> list[int]:
    """
    The messages a SEARCH looks at: those of C{uids} (the view, ascending)
    that the UID and sequence sets at the top of C{key} name.
    """
    keys = key.keys if isinstance(key, K.And) else (key,)
    domain = list(uids)
    for k in keys:
        if k == K.Not(K.All()):
            # UIDBEFORE 1 or UIDAFTER 4294967295 (the parser's empty UID
            # set): nothing is searched, so nothing is left for later.
            return []
        if isinstance(k, K.Uid):
            named = set(saved) if k.set.saved else set(k.set.resolve_uids(uids))
            domain = [u for u in domain if u in named]
        elif isinstance(k, K.Sequence):
            if k.set.saved:
                named = set(saved)
            else:
                count = len(uids)
                named = set()
                for low, high in k.set.bounds(count):
                    named.update(uids[max(low, 1) - 1:min(high, count)])
            domain = [u for u in domain if u in named]
    return domain


def from_uid(key, lowest: int):
    """C{key} narrowed to the messages from UID C{lowest} up."""
    return K.And((key, K.Uid(SequenceSet(((lowest, MAX_UID),)))))
