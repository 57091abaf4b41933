"""
The summaries the IMAP layer has a store keep with each message
(L{twisted_mailhub.interfaces.ISummaryStore}): the ENVELOPE, BODYSTRUCTURE
and BODY values as FETCH renders them, and the SORT and THREAD values
(L{twisted_mailhub.imap.sort.SortValues}).

They are immutable facts of a message's content.  L{FetchSummarizer} is
what the server gives the backend (L{ISummarizingBackend.use_summarizer})
so that it computes them when it stores a message, in its own threads;
FETCH (L{twisted_mailhub.imap.fetch}) renders the same items with the same
functions, so a value kept at APPEND and one rendered at the first FETCH
are the same bytes.  The names are those of the mailbox index's memo
(L{twisted_mailhub.index.MailboxIndex.memo}); what a name's value means
never changes (a change takes a new name).
"""

from __future__ import annotations

from typing import Callable

from zope.interface import implementer

from twisted_mailhub.imap import bodystructure
from twisted_mailhub.imap.sort import MEMO_NAME as SORT_NAME
from twisted_mailhub.imap.sort import SortValues
from twisted_mailhub.interfaces import ISummarizer
from twisted_mailhub.mime.structure import MessageStructure

#: The FETCH items kept rendered, each a function of the parsed structure
#: giving the item's value (without the item name).
ITEMS: dict[str, Callable[[MessageStructure], bytes]] = {
    "ENVELOPE": lambda structure: bodystructure.envelope(structure.envelope),
    "BODYSTRUCTURE": lambda structure: bodystructure.bodystructure(structure.root, True),
    "BODY": lambda structure: bodystructure.bodystructure(structure.root, False),
}


def render_item(name: str, structure: MessageStructure) -> bytes:
    """The value of the FETCH item C{name} (one of L{ITEMS}) of a message."""
    return ITEMS[name](structure)


@implementer(ISummarizer)
class FetchSummarizer:
    """
    L{ISummarizer}: the rendered L{ITEMS} and the encoded sort values of a
    message.  Stateless, so one instance serves every thread.
    """

    names: tuple[str, ...] = (*ITEMS, SORT_NAME)

    def summarize(self, content: bytes, structure: MessageStructure) -> dict[str, bytes]:
        values = {name: render(structure) for name, render in ITEMS.items()}
        values[SORT_NAME] = SortValues.of(structure).encode()
        return values
