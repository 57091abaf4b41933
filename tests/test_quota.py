"""
Quotas below the protocols: how limits are spelled and found, how usage is
measured on every store, the wrappers' checks, and that the wrappers keep
every interface and attribute of what they wrap.
"""

from __future__ import annotations

import pytest
from twisted.internet import defer
from twisted.python import usage
from twisted.trial import unittest
from zope.interface import providedBy
from zope.interface.verify import verifyObject

from stores import make_store, store_kinds
from tests_messages import simple_message

from twisted_mailhub.backends.memory import MemoryBackend
from twisted_mailhub.config import MailhubOptions, MailhubSettings, settings_from_mapping
from twisted_mailhub.errors import OverQuota
from twisted_mailhub.interfaces import (
    IBackend,
    IMailbox,
    IMailStore,
    IMoveableMailbox,
    IQuotaLimits,
    IStatusQuery,
    IUsageQuery,
)
from twisted_mailhub.model import AppendRequest, MailboxStatus
from twisted_mailhub.quota import (
    IQuotaRoot,
    QuotaBackend,
    QuotaLimits,
    QuotaMailbox,
    QuotaMailStore,
    QuotaSettings,
    QuotaUsage,
    measure,
    quota_backend,
)
from twisted_mailhub.quota.limits import (
    format_octets,
    parse_message_limit,
    parse_storage_limit,
    storage_units,
)
from twisted_mailhub.service import open_configured_backend
from twisted_mailhub.watch import IWatchableBackend


def sized(octets: int, subject: str = "sized") -> bytes:
    head = simple_message(subject, body="")
    return head + b"x" * (octets - len(head) - 2) + b"\r\n"


# -- limits and settings ---------------------------------------------------------


@pytest.mark.parametrize("text, octets", [
    ("2G", 2 * 2**30), ("500M", 500 * 2**20), ("64k", 65536), ("1GiB", 2**30),
    (4096, 4096), ("0", 0), (0, 0),
    # Whole units of 1024 (RFC 9208 section 4.1.3 lets a server round).
    ("1500", 1024), (1023, 0),
    ("unlimited", None), ("None", None), (None, None),
])
def test_storage_limits(text, octets):
    assert parse_storage_limit(text) == octets


@pytest.mark.parametrize("text", ["-1", -5, "lots", "1.5G", True, "2 P", str(2**64)])
def test_bad_storage_limits(text):
    with pytest.raises(ValueError):
        parse_storage_limit(text)


@pytest.mark.parametrize("text, count", [("100000", 100000), (0, 0), ("unlimited", None)])
def test_message_limits(text, count):
    assert parse_message_limit(text) == count


@pytest.mark.parametrize("text", ["-1", "1e5", False, "ten", -3])
def test_bad_message_limits(text):
    with pytest.raises(ValueError):
        parse_message_limit(text)


def test_units_for_people_and_for_the_wire():
    assert storage_units(0) == 0
    assert storage_units(1) == 1
    assert storage_units(2048) == 2
    assert storage_units(2049) == 3
    assert format_octets(2**31) == "2G"
    assert format_octets(1536 * 1024) == "1536K"
    assert format_octets(100) == "100"


def test_a_users_limits_default_then_file_then_store():
    settings = QuotaSettings(QuotaLimits(storage=2**30, messages=1000),
                             users={"bob": {"messages": None}, "carol": {"storage": 2**20}})
    assert settings.configured
    assert settings.limits_for("alice") == QuotaLimits(2**30, 1000)
    assert settings.limits_for("bob") == QuotaLimits(2**30, None)
    assert settings.limits_for("carol", {"messages": 5}) == QuotaLimits(2**20, 5)
    assert settings.limits_for("carol", {"storage": None}) == QuotaLimits(None, 1000)
    assert not QuotaSettings().configured
    assert not QuotaSettings(users={"bob": {"storage": None}}).configured


def test_quota_options_and_configuration_file(tmp_path):
    config = tmp_path / "mailhub.toml"
    config.write_text(
        'store = "memory:"\n'
        'quota-storage = "1G"\n'
        "quota-messages = 50000\n"
        "[quota.users.bob]\n"
        'storage = "5G"\n'
        "[quota.users.carol]\n"
        'messages = "unlimited"\n')
    options = MailhubOptions()
    options.parseOptions(["--config", str(config), "--quota-messages", "100"])
    quota = options.settings.quota
    # The command line wins over the file.
    assert quota.default == QuotaLimits(2**30, 100)
    assert quota.users == {"bob": {"storage": 5 * 2**30}, "carol": {"messages": None}}
    assert MailhubSettings().quota == QuotaSettings()


@pytest.mark.parametrize("values, message", [
    ({"quota-storage": "lots"}, "--quota-storage: not a size"),
    ({"quota-messages": "-2"}, "--quota-messages: not a number"),
    ({"quota": {"storage": "1G"}}, "unknown key 'storage'"),
    ({"quota": {"users": {"bob": {"size": "1G"}}}}, "quota.users.bob: unknown key 'size'"),
    ({"quota": {"users": {"bob": {"storage": "x"}}}}, "quota.users.bob.storage: not a size"),
    ({"quota": {"users": {"bob": "1G"}}}, "quota.users.bob must be a table"),
])
def test_bad_quota_settings(values, message):
    with pytest.raises(usage.UsageError, match=message.replace(".", r"\.")):
        settings_from_mapping(values)


def test_unknown_top_level_quota_keys_are_refused(tmp_path):
    from twisted_mailhub.config import load_config_file

    config = tmp_path / "mailhub.toml"
    config.write_text('quota-size = "1G"\n')
    with pytest.raises(usage.UsageError, match="unknown key 'quota-size'"):
        load_config_file(str(config))


# -- wrapping ----------------------------------------------------------------------


def test_nothing_is_wrapped_without_quotas():
    backend = MemoryBackend()
    assert quota_backend(backend, QuotaSettings()) is backend
    settings = MailhubSettings(store="memory:")
    assert isinstance(open_configured_backend(settings), MemoryBackend)


def test_the_configured_backend_enforces_quotas():
    settings = settings_from_mapping({"store": "memory:", "quota-messages": 10})
    backend = open_configured_backend(settings)
    assert isinstance(backend, QuotaBackend)
    assert isinstance(backend.inner, MemoryBackend)
    assert quota_backend(backend, settings.quota) is backend
    verifyObject(IBackend, backend)


class WrapperInterfaceTests(unittest.TestCase):
    """On each store the wrappers provide what the wrapped objects provide."""

    kinds = ["memory", *store_kinds()]

    async def wrapped(self, kind: str):
        inner = await make_store(kind, self)
        self.addCleanup(inner.close)
        return inner, QuotaBackend(inner, QuotaSettings(QuotaLimits(messages=100)))

    async def test_every_interface_is_kept(self) -> None:
        for kind in self.kinds:
            inner, backend = await self.wrapped(kind)
            self.assertEqual(set(providedBy(backend)), set(providedBy(inner)), kind)
            for iface in providedBy(backend):
                verifyObject(iface, backend)
            raw_store = await inner.open_store("alice")
            store = await backend.open_store("alice")
            self.assertIsInstance(store, QuotaMailStore)
            self.assertEqual(set(providedBy(store)), set(providedBy(raw_store)) | {IQuotaRoot})
            for iface in providedBy(store):
                verifyObject(iface, store)
            self.assertEqual(store.username, "alice")
            self.assertEqual(store.delimiter, raw_store.delimiter)
            raw_box = await raw_store.get_mailbox("INBOX")
            box = await store.get_mailbox("INBOX")
            self.assertIsInstance(box, QuotaMailbox)
            self.assertEqual(set(providedBy(box)), set(providedBy(raw_box)) | {IMoveableMailbox})
            for iface in providedBy(box):
                verifyObject(iface, box)
            self.assertEqual((box.name, box.key, box.uidvalidity, box.read_only),
                             (raw_box.name, raw_box.key, raw_box.uidvalidity, raw_box.read_only))
            self.assertIs(box.notifier, raw_box.notifier)

    async def test_sql_backend_keeps_its_extras(self) -> None:
        inner, backend = await self.wrapped("sqlite")
        self.assertTrue(IWatchableBackend.providedBy(backend))
        self.assertTrue(IQuotaLimits.providedBy(backend))
        await backend.add_user("alice", "{PLAIN}secret")
        self.assertEqual(await backend.lookup_password("alice"), "{PLAIN}secret")
        self.assertEqual(backend.watch_changes, inner.watch_changes)
        self.assertIs(backend.db, inner.db)
        store = await backend.open_store("alice")
        self.assertTrue(IStatusQuery.providedBy(store))
        self.assertTrue(IUsageQuery.providedBy(store))
        self.assertEqual(await store.usage(), (0, 0))

    async def test_a_user_without_limits_gets_the_stores_own_objects(self) -> None:
        inner = MemoryBackend()
        backend = QuotaBackend(inner, QuotaSettings(
            QuotaLimits(messages=1), users={"carol": {"messages": None}}))
        store = await backend.open_store("carol")
        self.assertIs(type(store), type(await inner.open_store("carol")))
        self.assertFalse(IQuotaRoot.providedBy(store))
        self.assertIs(type(await store.get_mailbox("INBOX")),
                      type(await (await inner.open_store("carol")).get_mailbox("INBOX")))

    async def test_sql_stores_are_wrapped_for_the_limits_they_keep(self) -> None:
        inner = await make_store("sqlite", self)
        self.addCleanup(inner.close)
        backend = quota_backend(inner, QuotaSettings())
        self.assertIsInstance(backend, QuotaBackend)
        self.assertFalse(IQuotaRoot.providedBy(await backend.open_store("alice")))
        await inner.set_quota_limits("alice", {"storage": 10 * 1024})
        store = await backend.open_store("alice")
        self.assertEqual((await store.quota()).limits, QuotaLimits(storage=10 * 1024))


# -- usage ---------------------------------------------------------------------------


class _NoSizes:
    """A store whose statuses lack sizes (as a minimal backend's might)."""

    def __init__(self, store) -> None:
        self._store = store

    def __getattr__(self, name):
        return getattr(self._store, name)

    async def get_mailbox(self, name, read_only=False):
        return _NoSizeMailbox(await self._store.get_mailbox(name, read_only))


class _NoSizeMailbox:
    def __init__(self, mailbox) -> None:
        self._mailbox = mailbox

    def __getattr__(self, name):
        return getattr(self._mailbox, name)

    async def status(self) -> MailboxStatus:
        st = await self._mailbox.status()
        return MailboxStatus(st.messages, st.uidnext, st.uidvalidity, st.unseen,
                             st.highestmodseq)


class UsageTests(unittest.TestCase):
    async def fill(self, store) -> None:
        inbox = await store.get_mailbox("INBOX")
        await inbox.append([AppendRequest(sized(1000)), AppendRequest(sized(2000))])
        await store.create_mailbox("Lists/Twisted")
        lists = await store.get_mailbox("Lists/Twisted")
        metas = await lists.append([AppendRequest(sized(500)), AppendRequest(sized(700))])
        await lists.store_flags([metas[0].uid], "add", {"\\Deleted"})
        await lists.expunge()
        await store.create_mailbox("Old/Stuff")
        old = await store.get_mailbox("Old/Stuff")
        await old.append([AppendRequest(sized(3000))])
        # Old keeps its child, so it becomes a hierarchy node and loses its messages.
        await store.delete_mailbox("Old")

    async def test_usage_on_every_store(self) -> None:
        for kind in ["memory", *store_kinds()]:
            backend = await make_store(kind, self)
            self.addCleanup(backend.close)
            store = await backend.open_store("alice")
            self.assertEqual(await measure(store), QuotaUsage(0, 0), kind)
            await self.fill(store)
            # Old/Stuff still holds its message; Old itself holds none.
            expected = QuotaUsage(4, 1000 + 2000 + 700 + 3000)
            self.assertEqual(await measure(store), expected, kind)
            # The same without the store's own totals, mailbox by mailbox.
            self.assertEqual(await measure(_NoSizes(store)), expected, kind)

    async def test_sql_totals_agree_with_the_mailboxes(self) -> None:
        backend = await make_store("sqlite", self)
        self.addCleanup(backend.close)
        store = await backend.open_store("alice")
        await self.fill(store)
        messages, octets = await store.usage()
        total = QuotaUsage()
        for info in await store.list_mailboxes():
            if info.selectable:
                st = await store.mailbox_status(info.name)
                total = total.plus(st.messages, st.size)
        self.assertEqual(QuotaUsage(messages, octets), total)


# -- the checks ---------------------------------------------------------------------


class CheckTests(unittest.TestCase):
    async def test_racing_appends_at_the_limit_in_one_process(self) -> None:
        inner = await make_store("sqlite", self)
        self.addCleanup(inner.close)
        backend = QuotaBackend(inner, QuotaSettings(QuotaLimits(messages=1)))
        boxes = []
        for _ in range(2):
            # Two sessions of one user: two stores, one lock.
            store = await backend.open_store("alice")
            boxes.append(await store.get_mailbox("INBOX"))
        results = await defer.DeferredList(
            [defer.ensureDeferred(box.append([AppendRequest(sized(200, f"race {n}"))]))
             for n, box in enumerate(boxes)], consumeErrors=True)
        outcomes = sorted("ok" if ok else type(value.value).__name__ for ok, value in results)
        self.assertEqual(outcomes, ["OverQuota", "ok"])
        self.assertEqual((await (await inner.open_store("alice")).usage())[0], 1)

    async def test_copy_is_checked_against_the_destination(self) -> None:
        inner = MemoryBackend()
        backend = QuotaBackend(inner, QuotaSettings(QuotaLimits(storage=5120)))
        store = await backend.open_store("alice")
        await store.create_mailbox("Copies")
        inbox, copies = await store.get_mailbox("INBOX"), await store.get_mailbox("Copies")
        metas = await inbox.append([AppendRequest(sized(1500)), AppendRequest(sized(1500))])
        uids = [m.uid for m in metas]
        with self.assertRaises(OverQuota):
            await inbox.copy_to(uids, copies)
        self.assertEqual((await copies.status()).messages, 0)
        self.assertEqual(len(await inbox.copy_to(uids[:1], copies)), 1)

    async def test_move_into_another_root_is_checked_there(self) -> None:
        inner = MemoryBackend()
        backend = QuotaBackend(inner, QuotaSettings(
            QuotaLimits(messages=10), users={"bob": {"messages": 1}}))
        alice, bob = await backend.open_store("alice"), await backend.open_store("bob")
        source, target = await alice.get_mailbox("INBOX"), await bob.get_mailbox("INBOX")
        metas = await source.append([AppendRequest(sized(300)), AppendRequest(sized(300))])
        with self.assertRaises(OverQuota):
            await source.move_to([m.uid for m in metas], target)
        self.assertEqual(((await source.status()).messages, (await target.status()).messages),
                         (2, 0))
        pairs = await source.move_to([metas[0].uid], target)
        self.assertEqual(len(pairs), 1)
        self.assertEqual(((await source.status()).messages, (await target.status()).messages),
                         (1, 1))

    async def test_limit_zero_refuses_everything_but_empty_appends(self) -> None:
        backend = QuotaBackend(MemoryBackend(), QuotaSettings(QuotaLimits(storage=0)))
        inbox = await (await backend.open_store("alice")).get_mailbox("INBOX")
        self.assertEqual(await inbox.append([]), [])
        with self.assertRaises(OverQuota):
            await inbox.append([AppendRequest(sized(100))])

    async def test_store_report(self) -> None:
        backend = QuotaBackend(MemoryBackend(), QuotaSettings(QuotaLimits(2048, 3)))
        store = await backend.open_store("alice")
        verifyObject(IMailStore, store)
        inbox = await store.get_mailbox("INBOX")
        verifyObject(IMailbox, inbox)
        await inbox.append([AppendRequest(sized(1000))])
        report = await store.quota()
        self.assertEqual((report.root, report.limits, report.usage),
                         ("", QuotaLimits(2048, 3), QuotaUsage(1, 1000)))
