"""
The timing proxies around a store: the same interfaces as the store they
stand for, each timed call observed once (failures as failures), the
store's own fast paths (copy into a mailbox it recognises) kept, and
nothing timed per message.
"""

from __future__ import annotations

import pytest
from twisted.internet import defer
from zope.interface.verify import verifyObject

from twisted_mailhub.backends.memory import MemoryBackend
from twisted_mailhub.errors import MailboxNotFound
from twisted_mailhub.interfaces import (
    IBackend,
    ICopyableMailbox,
    IMailbox,
    IMailStore,
    IMoveableMailbox,
)
from twisted_mailhub.metrics.timing import TimedBackend, TimedMailbox, unwrap
from twisted_mailhub.model import AppendRequest

MESSAGE = b"From: a@example.org\r\nSubject: hi\r\n\r\nHello.\r\n"


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, bool]] = []

    def __call__(self, operation: str, seconds: float, failed: bool) -> None:
        assert seconds >= 0
        self.calls.append((operation, failed))


def run(coroutine):
    """Run a coroutine that never waits on the reactor (the memory store's)."""
    d = defer.ensureDeferred(coroutine)
    results = []
    d.addBoth(results.append)
    assert results, "the memory store answered without the reactor"
    if isinstance(results[0], Exception) or hasattr(results[0], "raiseException"):
        results[0].raiseException()
    return results[0]


def test_a_timed_store_is_the_store_with_timings():
    seen = Recorder()
    backend = TimedBackend(MemoryBackend(), seen)
    verifyObject(IBackend, backend)

    async def scenario():
        store = await backend.open_store("alice")
        verifyObject(IMailStore, store)
        await store.create_mailbox("Archive")
        inbox = await store.get_mailbox("INBOX")
        verifyObject(IMailbox, inbox)
        assert ICopyableMailbox(inbox, None) is inbox
        assert IMoveableMailbox.providedBy(inbox)
        await inbox.append([AppendRequest(MESSAGE), AppendRequest(MESSAGE)])
        uids = await inbox.uids()
        await inbox.metadata(uids)
        # Opening one message is not timed: FETCH does it once per message.
        message = await inbox.open_message(uids[0])
        assert await message.read() == MESSAGE
        archive = await store.get_mailbox("Archive")
        assert isinstance(archive, TimedMailbox)
        pairs = await inbox.copy_to(uids, archive)
        with pytest.raises(MailboxNotFound):
            await store.get_mailbox("Nowhere")
        return pairs

    pairs = run(scenario())
    # The memory store copied itself (it recognised its own mailbox behind
    # the proxy) instead of declining with None.
    assert pairs == [(1, 1), (2, 2)]
    assert seen.calls == [
        ("open_store", False), ("create_mailbox", False), ("get_mailbox", False),
        ("append", False), ("uids", False), ("metadata", False), ("get_mailbox", False),
        ("copy_to", False), ("get_mailbox", True),
    ]


def test_other_attributes_pass_through():
    backend = MemoryBackend()
    seen = Recorder()

    async def scenario():
        store = await TimedBackend(backend, seen).open_store("alice")
        inbox = await store.get_mailbox("INBOX")
        return store, inbox

    store, inbox = run(scenario())
    assert unwrap(store).username == store.username == "alice"
    assert repr(unwrap(inbox)) in repr(inbox)
    assert inbox.uidvalidity == unwrap(inbox).uidvalidity
    assert unwrap(unwrap(inbox)) is unwrap(inbox)
    with pytest.raises(AttributeError):
        inbox.no_such_attribute


def test_deferreds_and_plain_values_are_timed_too():
    seen = Recorder()

    class Target:
        def status(self):
            return defer.succeed("status")

        def uids(self):
            return [1, 2]

        def expunge(self, uids=None, origin=None):
            return defer.fail(RuntimeError("disk full"))

        def search(self, key, context):
            raise ValueError("bad key")

    box = TimedMailbox(Target(), seen)
    results = []
    box.status().addCallback(results.append)
    assert results == ["status"]
    assert box.uids() == [1, 2]
    failures = []
    box.expunge().addErrback(failures.append)
    assert failures[0].check(RuntimeError)
    with pytest.raises(ValueError):
        box.search(None, None)
    assert seen.calls == [("status", False), ("uids", False), ("expunge", True),
                          ("search", True)]
