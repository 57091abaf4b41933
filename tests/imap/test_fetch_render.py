"""
The per-command renderer of metadata FETCH responses gives the very bytes
of the general one, for every item list, in every order.
"""

from __future__ import annotations

import itertools
from datetime import datetime, timezone

from twisted_mailhub.imap import fetch
from twisted_mailhub.imap.commands import FetchAttr
from twisted_mailhub.model import MessageMeta

WHEN = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
METAS = [
    MessageMeta(7, frozenset(), WHEN, 1234, 9),
    MessageMeta(8, frozenset({"\\Seen", "$Forwarded", "\\Flagged"}), WHEN, 1, 12),
]


def test_every_item_list_renders_as_the_general_renderer() -> None:
    names = ["UID", "FLAGS", "MODSEQ", "RFC822.SIZE", "INTERNALDATE"]
    for count in range(1, 4):
        for chosen in itertools.permutations(names, count):
            attrs = [FetchAttr(n) for n in chosen]
            for uid, modseq, recent in itertools.product((False, True), repeat=3):
                render = fetch.meta_renderer(attrs, uid=uid, modseq=modseq)
                for seq, meta in enumerate(METAS, 3):
                    assert render(seq, meta, recent) == fetch.render_meta(
                        seq, meta, attrs, uid=uid, recent=recent, modseq=modseq), (chosen, uid)


def test_uid_flags() -> None:
    render = fetch.meta_renderer([FetchAttr("UID"), FetchAttr("FLAGS")], uid=False, modseq=False)
    assert render(2, METAS[1], True) == (
        b"* 2 FETCH (UID 8 FLAGS (\\Seen \\Flagged \\Recent $Forwarded))\r\n")
    assert render(1, METAS[0], False) == b"* 1 FETCH (UID 7 FLAGS ())\r\n"
