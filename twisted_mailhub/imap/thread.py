"""
THREAD (RFC 5256 section 3): the ORDEREDSUBJECT and REFERENCES threading
algorithms over L{twisted_mailhub.imap.sort.Entry} values, and the THREAD
response (section 4).

Sans-IO, and without recursion: a thread may be thousands of replies deep,
so trees are walked with explicit stacks.
"""

from __future__ import annotations

from itertools import groupby
from typing import Callable, Iterable, Sequence

from twisted_mailhub.imap.sort import Entry

__all__ = ["ALGORITHMS", "Node", "ordered_subject", "references", "render", "thread"]


class Node:
    """A message of a thread tree, or a dummy (C{entry} None) standing for
    one that is referred to but not among those threaded."""

    __slots__ = ("entry", "parent", "children")

    def __init__(self, entry: Entry | None = None) -> None:
        self.entry = entry
        self.parent: Node | None = None
        self.children: list[Node] = []

    def __repr__(self) -> str:
        return f"<Node {self.entry.uid if self.entry else 'dummy'} {len(self.children)}>"


def _adopt(parent: Node, child: Node) -> None:
    child.parent = parent
    parent.children.append(child)


def _orphan(child: Node) -> None:
    if child.parent is not None:
        child.parent.children.remove(child)
        child.parent = None


def _under(node: Node, ancestor: Node) -> bool:
    """Whether C{node} is C{ancestor} or one of its descendants."""
    while node is not None:
        if node is ancestor:
            return True
        node = node.parent  # type: ignore[assignment]
    return False


def _first_message(node: Node) -> Entry:
    while node.entry is None:
        node = node.children[0]
    return node.entry


def _date_key(node: Node) -> tuple[float, int]:
    # RFC 5256 section 2.2: by sent date, then by sequence number (UID
    # order); a dummy sorts as its first child.
    entry = _first_message(node)
    return entry.date, entry.uid


def _bottom_up(roots: Iterable[Node]) -> list[Node]:
    """Every node under C{roots}, each after all of its descendants."""
    out: list[Node] = []
    stack = list(roots)
    while stack:
        node = stack.pop()
        out.append(node)
        stack.extend(node.children)
    out.reverse()
    return out


# -- ORDEREDSUBJECT ----------------------------------------------------------------


def ordered_subject(entries: Iterable[Entry]) -> list[Node]:
    """
    "Poor man's threading": one thread per base subject, its messages by
    sent date, the first one the parent of all the others; threads by the
    sent date of their first message.
    """
    ordered = sorted(entries, key=lambda e: (e.values.subject, e.date, e.uid))
    threads = []
    for _subject, group in groupby(ordered, key=lambda e: e.values.subject):
        members = list(group)
        root = Node(members[0])
        for entry in members[1:]:
            _adopt(root, Node(entry))
        threads.append(root)
    threads.sort(key=_date_key)
    return threads


# -- REFERENCES --------------------------------------------------------------------


def references(entries: Iterable[Entry]) -> list[Node]:
    """The REFERENCES algorithm, steps 1 to 6 of RFC 5256 section 3."""
    table: dict[str, Node] = {}
    nodes: list[Node] = []

    def by_id(message_id: str) -> Node:
        node = table.get(message_id)
        if node is None:
            # No message (yet) with this ID: a dummy, used for every later
            # reference to it.
            node = table[message_id] = Node()
            nodes.append(node)
        return node

    # Step 1, in sequence order.
    for entry in sorted(entries, key=lambda e: e.uid):
        message_id = entry.values.message_id
        node = table.get(message_id) if message_id is not None else None
        if node is not None and node.entry is None:
            node.entry = entry
        else:
            # A message without an ID, or with one a lower-numbered message
            # already has, gets an ID of its own: a node no one refers to.
            node = Node(entry)
            nodes.append(node)
            if message_id is not None and message_id not in table:
                table[message_id] = node
        # (A) each reference the parent of the next, unless that one
        # already has a parent or the link would make a loop.
        previous = None
        for reference in entry.values.references:
            current = by_id(reference)
            if (previous is not None and current.parent is None
                    and not _under(previous, current)):
                _adopt(previous, current)
            previous = current
        # (B) the last reference is the parent of this message.
        _orphan(node)
        if previous is not None and not _under(previous, node):
            _adopt(previous, node)

    # Step 2: the messages without parents are the threads so far.
    roots = [node for node in nodes if node.parent is None]
    # Step 3: prune the dummies, deepest first so that a dummy's children
    # are already pruned when it is spliced out.
    for node in _bottom_up(roots):
        node.children = _pruned(node, node.children, at_root=False)
    roots = _pruned(None, roots, at_root=True)
    # Step 4: the threads by sent date (a dummy's children first).
    for node in roots:
        if node.entry is None:
            node.children.sort(key=_date_key)
    roots.sort(key=_date_key)
    # Step 5: merge the threads of one base subject.
    roots = _merge_subjects(roots)
    # Step 6: every set of siblings by sent date, the deepest first.
    for node in _bottom_up(roots):
        node.children.sort(key=_date_key)
    roots.sort(key=_date_key)
    return roots


def _pruned(parent: Node | None, children: list[Node], at_root: bool) -> list[Node]:
    out: list[Node] = []
    for child in children:
        if child.entry is not None:
            out.append(child)
        elif not child.children:
            continue
        elif at_root and len(child.children) > 1:
            # Promoting them would make them threads of their own.
            out.append(child)
        else:
            for grandchild in child.children:
                grandchild.parent = parent
                out.append(grandchild)
    return out


def _merge_subjects(roots: list[Node]) -> list[Node]:
    def subject_of(node: Node) -> str:
        # 5.B.i: the base subject of the message, or of a dummy's first child.
        return _first_message(node).values.subject

    def is_reply(node: Node) -> bool:
        return node.entry is not None and node.entry.values.reply

    # 5.B: one message per base subject.
    table: dict[str, Node] = {}
    for node in roots:
        subject = subject_of(node)
        if not subject:
            continue
        known = table.get(subject)
        if known is None:
            table[subject] = node
        elif known.entry is not None and (node.entry is None
                                          or (is_reply(known) and not is_reply(node))):
            table[subject] = node
    # 5.C: merge the others into it.
    merged: list[Node | None] = list(roots)
    position = {id(node): i for i, node in enumerate(roots)}
    for i, node in enumerate(roots):
        subject = subject_of(node)
        if not subject:
            continue
        kept = table[subject]
        if kept is node:
            continue
        merged[i] = None
        if kept.entry is None and node.entry is None:
            for child in node.children:
                _adopt(kept, child)
            node.children = []
        elif kept.entry is None or (is_reply(node) and not is_reply(kept)):
            _adopt(kept, node)
        else:
            dummy = Node()
            merged[position[id(kept)]] = dummy
            position[id(dummy)] = position.pop(id(kept))
            _adopt(dummy, kept)
            _adopt(dummy, node)
            table[subject] = dummy
    return [node for node in merged if node is not None]


# -- both ----------------------------------------------------------------------------

ALGORITHMS: dict[str, Callable[[Iterable[Entry]], list[Node]]] = {
    "ORDEREDSUBJECT": ordered_subject,
    "REFERENCES": references,
}


def thread(algorithm: str, entries: Iterable[Entry]) -> list[Node]:
    """The threads of C{entries} by C{algorithm} (a key of L{ALGORITHMS})."""
    return ALGORITHMS[algorithm](entries)


def render(threads: Sequence[Node], number: Callable[[Entry], int]) -> bytes:
    """
    The THREAD response data (RFC 5256 section 4, without ``* ``):
    ``THREAD`` and the threads, each message shown as C{number(entry)}
    (its sequence number or UID).  A chain of only children is a run of
    numbers, a branching a nested list per child; a dummy has no number.
    """
    tokens: list[bytes] = []
    # Items: a node whose thread-list is to be written, or a ")" to write.
    stack: list[Node | bytes] = list(reversed(threads))
    while stack:
        item = stack.pop()
        if isinstance(item, bytes):
            tokens.append(item)
            continue
        tokens.append(b"(")
        node = item
        while True:
            if node.entry is not None:
                tokens.append(b"%d" % number(node.entry))
            if len(node.children) == 1:
                node = node.children[0]
                continue
            if node.children:
                stack.append(b")")
                stack.extend(reversed(node.children))
            else:
                tokens.append(b")")
            break
    parts: list[bytes] = []
    after_number = False
    for token in tokens:
        # A space between numbers, and between a number and the nested
        # lists after it; none next to parentheses otherwise.
        if after_number and token != b")":
            parts.append(b" ")
        parts.append(token)
        after_number = token not in (b"(", b")")
    return b"THREAD " + b"".join(parts) if parts else b"THREAD"
