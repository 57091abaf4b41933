"""
The consistency check of the mbox store (L{ICheckableBackend.check}): each
mailbox's index against its mbox file.

Another program changing a file is not a problem: the index records the
size, mtime and inode of the file it describes, and the next open takes
the change in (L{MboxFolder.refresh}).  What the check looks for is an
index that I{claims} to describe the file as it is and does not:

  - an index that cannot be read (it is rebuilt: new UIDVALIDITY, flags
    from the status fields of the file);
  - a journal of the index whose end is not a whole record, or has a
    record that fails its checksum or cannot follow the ones before (a
    write cut short: the records before it are folded into the index, the
    rest is dropped, as the server would ignore it);
  - an append that was interrupted (finished or cut off, as the next open
    would);
  - UIDs out of order (renumbered under a new UIDVALIDITY), UIDNEXT not
    above every UID used, HIGHESTMODSEQ below a MODSEQ given, a \\Recent
    mark beyond UIDNEXT (each set right);
  - messages that are not where the index says, or whose content is not
    the one recorded (matched again by content, as after a rewrite by
    another program);
  - index files of mbox files that are gone (deleted);
  - in the user's summaries file (L{twisted_mailhub.backends.summaryfile}),
    lines that cannot be read, or mostly lines of messages that are gone
    (compacted), and the new files of compactions that did not finish
    (deleted).

With C{--repair}, the entries of the full-text index
(L{twisted_mailhub.backends.textindex}) of messages that are gone are
also removed: a cache, not a problem to report.

Each file is read one message at a time, under the same locks other mail
programs and the server take.  Everything here blocks and runs in the
backend's thread pool, except L{check_backend} and L{check_summaries}.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from twisted_mailhub.backends.files import pread_upto
from twisted_mailhub.backends.folders import (
    COMPACT_DEAD_FRACTION,
    COMPACT_MIN_SIZE,
    live_identities,
)
from twisted_mailhub.backends.mbox import format as mbox
from twisted_mailhub.backends.mbox.folder import MboxFolder, open_folder
from twisted_mailhub.backends.mbox.index import Index, load_index, signature
from twisted_mailhub.backends.mbox.locking import locked_mbox
from twisted_mailhub.backends.mbox.naming import (
    INDEX_SUFFIX,
    decode_level,
    index_file,
    mailbox_file,
    user_directory,
)
from twisted_mailhub.consistency import CheckReport, Problem
from twisted_mailhub.model import MailboxEvent, MailboxRemoved

if TYPE_CHECKING:
    from twisted_mailhub.backends.mbox.store import MboxBackend, MboxMailStore

_SEPARATOR_LINE = re.compile(rb"(?:^|\n)From ")


async def check_backend(backend: "MboxBackend", usernames: list[str] | None = None,
                        repair: bool = False) -> CheckReport:
    """
    L{ICheckableBackend.check} of C{backend}: every mailbox of C{usernames}
    (every user directory when C{None}).  Events of repairs are published.
    """
    from twisted_mailhub.backends.folders import prune_text_index
    from twisted_mailhub.backends.mbox.store import MboxMailStore

    if usernames is None:
        names = await backend.run(list_users, backend.root)
    else:
        names = list(usernames)
        for name in names:
            if not await backend.run(os.path.isdir, user_directory(backend.root, name)):
                raise LookupError(f"No such user: {name}")
    report = CheckReport()
    for name in names:
        store = MboxMailStore(backend, name, user_directory(backend.root, name))
        summaries = backend.summary_files.at(store.summary_path)
        mark = await backend.run(summaries.mark)
        found, events, live = await backend.run(check_user, store, repair)
        report.merge(found)
        for index_key, event in events:
            backend.notifier.publish(backend.mailbox_key(index_key), event)
        report.merge(await check_summaries(store, live, mark, repair))
        if repair:
            # A cache, not a problem to report: entries of gone messages go
            # (those of the identities gathered again through the store).
            await prune_text_index(store)
    return report


def list_users(root: str) -> list[str]:
    """The users with a directory under C{root}, sorted."""
    try:
        entries = sorted(os.listdir(root))
    except FileNotFoundError:
        return []
    users = []
    for entry in entries:
        name = decode_level(entry)
        if name is not None and os.path.isdir(os.path.join(root, entry)):
            users.append(name)
    return users


def check_user(store: "MboxMailStore", repair: bool
               ) -> tuple[CheckReport, list[tuple[str, MailboxEvent]], frozenset[str]]:
    """
    Check every mailbox of one user; with C{repair}, fix what is found.
    Returns too the identities of the messages the indexes hold, as read.
    """
    report = CheckReport(users=1)
    events: list[tuple[str, MailboxEvent]] = []
    live: set[str] = set()
    for info in store._list_sync():
        if not info.selectable:
            continue
        path = mailbox_file(store.directory, info.name, store.delimiter)
        try:
            findings, index = inspect(path, store)
        except FileNotFoundError:
            continue  # removed meanwhile
        report.mailboxes += 1
        if index is not None:
            report.messages += len(index.entries)
            live.update(entry.meta().identity for entry in index.entries)
        for finding in findings:
            report.add(Problem(finding.kind, finding.description + (
                "; " + finding.repair if repair else ""), store.username, info.name, repair))
        if repair and findings:
            events.extend(fix(path, store, findings))
    for path in orphaned_indexes(store.directory):
        relative = os.path.relpath(path, store.directory)
        report.add(Problem("orphaned-index", f"index {relative} of no mbox file"
                           + ("; deleted" if repair else ""), store.username, None, repair))
        if repair:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
    return report, events, frozenset(live)


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem of a mailbox, and what L{fix} does about it."""

    kind: str
    description: str
    repair: str


def inspect(path: str, store: "MboxMailStore") -> tuple[list[Finding], Index | None]:
    """
    The problems of the mailbox file C{path} and its index as read (none
    when there is none or it cannot be read), looked at under the
    mailbox's locks without changing it.
    """
    settings = store.settings
    findings: list[Finding] = []
    if not os.path.exists(path):
        raise FileNotFoundError(path)
    with locked_mbox(path, settings.lock_timeout, settings.stale_lock_after,
                     settings.on_lock_wait) as fd:
        try:
            loaded = load_index(index_file(path))
        except (ValueError, KeyError, TypeError):
            findings.append(Finding("unreadable-index", "the index cannot be read",
                                    "rebuilt from the file (new UIDVALIDITY)"))
            return findings, None
        if loaded is None:
            return findings, None  # made at the next open, as for any new file
        index = loaded.index
        if loaded.tail:
            findings.append(Finding(
                "journal-tail",
                f"the last {loaded.tail} bytes of the index's journal are not whole records "
                f"({loaded.problem}; {loaded.records} whole records before)",
                "whole records folded into the index, the rest dropped"))
        if index.pending is not None:
            findings.append(Finding("interrupted-append", "an append was interrupted",
                                    "completed or cut off"))
        findings.extend(_counter_findings(index))
        if index.file == signature(os.fstat(fd)):
            wrong = _misplaced(fd, index)
            if wrong:
                findings.append(Finding(
                    "index-mismatch",
                    f"{wrong} message(s) are not where the index says or have changed",
                    "matched again by content"))
        return findings, index


def _counter_findings(index: Index) -> list[Finding]:
    findings = []
    uids = [entry.uid for entry in index.entries]
    if any(a >= b for a, b in zip(uids, uids[1:])):
        findings.append(Finding("uid-order", "the UIDs do not ascend through the file",
                                "renumbered under a new UIDVALIDITY"))
    used = max(uids + [uid for uid, _ in index.expunged] + [0])
    if index.uidnext <= used:
        findings.append(Finding("uidnext", f"UIDNEXT {index.uidnext} is not above UID {used}, "
                                "already used", f"set to {used + 1}"))
    given = max([entry.modseq for entry in index.entries]
                + [modseq for _, modseq in index.expunged] + [0])
    if index.highestmodseq < given:
        findings.append(Finding(
            "highestmodseq", f"HIGHESTMODSEQ {index.highestmodseq} is below MODSEQ {given}, "
            "already given", f"set to {given + 1}"))
    uidnext = max(index.uidnext, used + 1)
    if index.recent_after >= uidnext:
        findings.append(Finding("recent", f"\\Recent is marked up to UID {index.recent_after}, "
                                f"beyond UIDNEXT {index.uidnext}", "marked up to UIDNEXT"))
    return findings


def _misplaced(fd: int, index: Index) -> int:
    """How many entries do not describe the file; reads one message at a time."""
    wrong = 0
    for entry in index.entries:
        if os.pread(fd, len(mbox.SEPARATOR), entry.start) != mbox.SEPARATOR:
            wrong += 1
            continue
        stored = pread_upto(fd, entry.body_end - entry.body_start, entry.body_start)
        content, _ = mbox.content_of(stored)
        if mbox.digest(content) != entry.digest or len(content) - entry.trim != entry.size:
            wrong += 1
    # Nothing may follow the last message the index knows of.
    end = index.entries[-1].body_end if index.entries else 0
    size = os.fstat(fd).st_size
    tail = pread_upto(fd, size - end, end)
    if _SEPARATOR_LINE.search(tail):
        wrong += len(mbox.scan(tail)) or 1
    return wrong


def fix(path: str, store: "MboxMailStore", findings: list[Finding]
        ) -> list[tuple[str, MailboxEvent]]:
    """Put right the C{findings} of C{path}; return the events caused."""
    kinds = {finding.kind for finding in findings}
    cache = store.backend.cache
    if "unreadable-index" in kinds:
        os.unlink(index_file(path))
        cache.forget(path)
    # Opening completes an interrupted append and builds a missing index.
    with open_folder(path, store.settings, cache) as folder:
        index = folder.index
        if "uid-order" in kinds:
            _renumber(folder, store)
        used = max([entry.uid for entry in index.entries]
                   + [uid for uid, _ in index.expunged] + [0])
        index.uidnext = max(index.uidnext, used + 1)
        given = max([entry.modseq for entry in index.entries]
                    + [modseq for _, modseq in index.expunged] + [0])
        if index.highestmodseq < given:
            index.highestmodseq = given + 1
        index.recent_after = min(index.recent_after, index.uidnext - 1)
        # A rewrite: folds the journal in and drops a damaged end of it.
        cache.save(path, index)
        if "index-mismatch" in kinds:
            # As when the file changed behind the index's back.
            index.file = None
            folder.refresh()
        return [(index.key, event) for event in folder.events]


def _renumber(folder: MboxFolder, store: "MboxMailStore") -> None:
    """New UIDs in file order under a new UIDVALIDITY, keeping flags and dates."""
    index = folder.index
    index.uidvalidity = max(store.settings.new_uidvalidity(), index.uidvalidity + 1)
    modseq = max([index.highestmodseq] + [entry.modseq for entry in index.entries]) + 1
    for uid, entry in enumerate(index.entries, start=1):
        entry.uid = uid
        entry.modseq = modseq
    index.uidnext = len(index.entries) + 1
    index.highestmodseq = modseq
    index.recent_after = 0
    index.expunged = []
    folder.events.append(MailboxRemoved())


async def check_summaries(store: "MboxMailStore", live: frozenset[str],
                          mark: tuple[int | None, int], repair: bool) -> CheckReport:
    """
    Check the user's summaries file against C{live}, the identities the
    indexes held when read, the file's L{SummaryFile.mark} C{mark} taken
    before (lines appended since are of newer messages).  With C{repair},
    leftovers of compactions are deleted, and a file with lines that
    cannot be read or mostly lines of messages that are gone is compacted
    with the identities gathered again through the store.
    """
    backend = store.backend
    summaries = backend.summary_files.at(store.summary_path)
    report = CheckReport()

    def add(kind: str, description: str, repaired: bool) -> None:
        report.add(Problem(kind, description, store.username, None, repaired))

    leftovers = await backend.run(summaries.leftovers)
    if repair and leftovers:
        leftovers = await backend.run(summaries.remove_leftovers)
    for path in leftovers:
        relative = os.path.relpath(path, store.directory)
        add("summaries-leftover", f"{relative} was left by a compaction of the summaries file "
            "that did not finish" + ("; deleted" if repair else ""), repair)

    survey = await backend.run(summaries.survey, live, mark)
    found = []
    if survey.unreadable:
        found.append(("summaries-unreadable", f"{survey.unreadable} line(s) of the summaries "
                      "file cannot be read (cut short or damaged)"))
    # Garbage is a problem from the size at which the server would compact
    # the file itself: below it, the space is not worth a warning.
    if (survey.size >= COMPACT_MIN_SIZE and survey.dead_keys
            and survey.dead_keys >= COMPACT_DEAD_FRACTION * survey.keys):
        found.append(("summaries-garbage", f"the summaries file is {survey.size} octets, "
                      f"{survey.dead_octets} of them in the lines of {survey.dead_keys} of "
                      f"{survey.keys} message(s) that are gone"))
    if not found:
        return report
    outcome, repaired = "", False
    if repair:
        mark = await backend.run(summaries.mark)
        again = await live_identities(store)
        after = None
        if again is not None:
            before, after = await backend.run(summaries.compact, again, mark, True)
            if (before, after) == (0, 0):
                after = None  # compacted by another process meanwhile
        if after is None:
            outcome = "; not compacted, mail changed meanwhile: check again"
        else:
            outcome, repaired = f"; compacted to {after} octets", True
    for kind, description in found:
        add(kind, description + outcome, repaired)
    return report


def orphaned_indexes(directory: str) -> list[str]:
    """Index files under C{directory} whose mbox file is gone."""
    found = []
    for root, _dirs, files in os.walk(directory):
        present = set(files)
        for name in sorted(files):
            if name.endswith(INDEX_SUFFIX) and name[: -len(INDEX_SUFFIX)] not in present:
                found.append(os.path.join(root, name))
    return found
