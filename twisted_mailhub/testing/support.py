"""
Helpers of the backend conformance suite: sample messages, a recording
listener, and the base class holding the hooks a backend's test case fills.
"""

from __future__ import annotations

import inspect
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterable

from twisted.internet.defer import Deferred, ensureDeferred
from zope.interface import implementer

from twisted_mailhub.interfaces import IBackend, IMailboxListener
from twisted_mailhub.model import (
    AppendRequest,
    FlagsChanged,
    MailboxEvent,
    MessagesAdded,
    MessagesExpunged,
)

DATE = datetime(2023, 5, 17, 10, 30, 0, tzinfo=timezone(timedelta(hours=2)))


def make_message(n: int = 1, body: bytes | None = None) -> bytes:
    """A small, well-formed RFC 5322 message numbered C{n}."""
    if body is None:
        body = b"Hello number %d.\r\n" % n
    return (
        b"From: Alice <alice@example.org>\r\n"
        b"To: bob@example.org\r\n"
        b"Subject: message %d\r\n"
        b"Date: Wed, 17 May 2023 10:30:00 +0200\r\n"
        b"Message-ID: <%d@example.org>\r\n"
        b"\r\n" % (n, n)
    ) + body


def make_multipart_message() -> bytes:
    """A multipart/mixed message with a text part and a base64 attachment."""
    return (
        b"From: Alice <alice@example.org>\r\n"
        b"To: bob@example.org, =?utf-8?q?Caf=C3=A9?= <cafe@example.org>\r\n"
        b"Subject: =?utf-8?q?r=C3=A9sum=C3=A9?=\r\n"
        b"MIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="XYZ"\r\n'
        b"\r\n"
        b"preamble\r\n"
        b"--XYZ\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"\r\n"
        b"First part.\r\nSecond line.\r\n"
        b"--XYZ\r\n"
        b'Content-Type: application/octet-stream; name="a.bin"\r\n'
        b"Content-Transfer-Encoding: base64\r\n"
        b'Content-Disposition: attachment; filename="a.bin"\r\n'
        b"\r\n"
        b"AAECAwQF\r\n"
        b"--XYZ--\r\n"
    )


@implementer(IMailboxListener)
class RecordingListener:
    """
    An L{IMailboxListener} that keeps every event and lets a test wait
    until the events received so far satisfy a condition.
    """

    def __init__(self) -> None:
        self.events: list[MailboxEvent] = []
        self._waiting: list[tuple[Callable[[list[MailboxEvent]], Any], Deferred]] = []

    def mailbox_event(self, event: MailboxEvent) -> None:
        self.events.append(event)
        for entry in list(self._waiting):
            condition, waiter = entry
            if condition(self.events):
                self._waiting.remove(entry)
                waiter.callback(list(self.events))

    def wait_for(self, condition: Callable[[list[MailboxEvent]], Any]) -> Deferred:
        """
        A L{Deferred} firing with the events once C{condition(events)} is
        true (at once if it already is).  Events that never come make the
        test fail at its trial timeout.
        """
        waiter: Deferred = Deferred()
        if condition(self.events):
            waiter.callback(list(self.events))
        else:
            self._waiting.append((condition, waiter))
        return waiter


def added_uids(events: Iterable[MailboxEvent]) -> set[int]:
    """UIDs announced by the L{MessagesAdded} among C{events}."""
    return {m.uid for e in events if isinstance(e, MessagesAdded) for m in e.messages}


def changed_uids(events: Iterable[MailboxEvent]) -> set[int]:
    """UIDs announced by the L{FlagsChanged} among C{events}."""
    return {m.uid for e in events if isinstance(e, FlagsChanged) for m in e.messages}


def expunged_uids(events: Iterable[MailboxEvent]) -> set[int]:
    """UIDs announced by the L{MessagesExpunged} among C{events}."""
    return {u for e in events if isinstance(e, MessagesExpunged) for u in e.uids}


async def _settle(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


class ConformanceBase:
    """
    What every group of conformance tests builds on: the hooks a backend's
    test case provides, and helpers that open stores and mailboxes and clean
    up the backends they opened.
    """

    #: True when the backend keeps its data when closed and reopened.
    persistent: bool = False

    async def make_backend(self) -> IBackend:
        """
        A new backend over fresh, empty storage (each call its own).
        """
        raise NotImplementedError("the test case must provide make_backend")

    async def restart_backend(self, backend: IBackend) -> IBackend:
        """
        Close C{backend} and return a new one over the same storage.

        A backend that does not persist (L{persistent} false) keeps its data
        only while it is open, so the default returns C{backend} itself and
        the restart tests check that reopening the users' stores finds the
        same state.
        """
        if self.persistent:
            raise NotImplementedError("a persistent backend's tests must provide restart_backend")
        return backend

    # -- plumbing --

    async def backend(self) -> IBackend:
        """A new backend from L{make_backend}, closed when the test ends."""
        backend = await self.make_backend()
        self._track(backend)
        return backend

    async def restart(self, backend: IBackend) -> IBackend:
        """L{restart_backend}, keeping track of which backend to close."""
        if backend in self._open_backends:
            self._open_backends.remove(backend)
        new = await self.restart_backend(backend)
        self._track(new)
        return new

    def _track(self, backend: IBackend) -> None:
        if not hasattr(self, "_open_backends"):
            self._open_backends: list[IBackend] = []
            self.addCleanup(self._close_all)
        self._open_backends.append(backend)

    async def _close_all_async(self) -> None:
        while self._open_backends:
            await _settle(self._open_backends.pop().close())

    def _close_all(self) -> Deferred:
        return ensureDeferred(self._close_all_async())

    async def store(self, username: str = "alice"):
        """The store of C{username} in a new backend."""
        return await (await self.backend()).open_store(username)

    async def inbox_with(self, count: int, store=None, flags=frozenset()):
        """A store, its INBOX, and the metas of C{count} new messages."""
        if store is None:
            store = await self.store()
        inbox = await store.get_mailbox("INBOX")
        metas = await inbox.append(
            [AppendRequest(make_message(n), frozenset(flags), DATE) for n in range(count)]
        )
        return store, inbox, metas

    async def listen(self, mailbox) -> RecordingListener:
        """A L{RecordingListener} subscribed to C{mailbox} for this test."""
        listener = RecordingListener()
        mailbox.subscribe(listener)
        self.addCleanup(mailbox.unsubscribe, listener)
        return listener

    async def names(self, store) -> list[str]:
        """The names of C{store}'s mailboxes, in order."""
        return [info.name for info in await store.list_mailboxes()]

    async def assert_raises(self, exception: type[BaseException], awaitable) -> BaseException:
        """Await C{awaitable}, fail unless it raises C{exception}; return it."""
        try:
            await awaitable
        except exception as e:
            return e
        self.fail(f"{exception.__name__} not raised")
