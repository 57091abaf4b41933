"""
In-process change notification.

L{LocalNotifier} delivers mailbox events to the sessions of this process.
A backend shared by several server processes (PostgreSQL) can pair it with a
cross-process transport; the L{INotifier} seam is the same.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Hashable

from twisted.logger import Logger
from zope.interface import implementer

from twisted_mailhub.interfaces import IMailboxListener, INotifier
from twisted_mailhub.model import MailboxEvent


@implementer(INotifier)
class LocalNotifier:
    """Delivers each published event synchronously to its key's listeners."""

    log = Logger()

    def __init__(self) -> None:
        self._listeners: dict[Hashable, list[IMailboxListener]] = defaultdict(list)

    def subscribe(self, key: Hashable, listener: IMailboxListener) -> None:
        if listener not in self._listeners[key]:
            self._listeners[key].append(listener)

    def unsubscribe(self, key: Hashable, listener: IMailboxListener) -> None:
        listeners = self._listeners.get(key)
        if listeners and listener in listeners:
            listeners.remove(listener)
            if not listeners:
                del self._listeners[key]

    def publish(self, key: Hashable, event: MailboxEvent) -> None:
        for listener in list(self._listeners.get(key, ())):
            try:
                listener.mailbox_event(event)
            except Exception:
                self.log.failure("Mailbox listener {listener!r} failed", listener=listener)
