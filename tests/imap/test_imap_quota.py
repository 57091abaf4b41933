"""
QUOTA (RFC 9208) and STATUS=SIZE (RFC 8438) as clients see them, on every
store: GETQUOTAROOT figures follow APPEND and EXPUNGE, APPEND and COPY over
a limit are refused with OVERQUOTA and store nothing, a MOVE inside the
account is never refused, STATUS SIZE is the sum of RFC822.SIZE.

The server runs with the default limits of 8 KiB and 5 messages; bob has a
storage limit of his own (64 KiB), carol none at all.
"""

from __future__ import annotations

from harness import IMAPServerTestCase, on_every_store
from stores import PG_URL
from tests_messages import simple_message

from twisted_mailhub.model import AppendRequest
from twisted_mailhub.quota import QuotaLimits, QuotaSettings, quota_backend

USERS = {"alice": "wonderland", "bob": "builder", "carol": "singer"}
SETTINGS = QuotaSettings(
    QuotaLimits(storage=8 * 1024, messages=5),
    users={"bob": {"storage": 64 * 1024}, "carol": {"storage": None, "messages": None}},
)


def sized(octets: int, subject: str = "sized") -> bytes:
    """A message of exactly C{octets} octets."""
    head = simple_message(subject, body="")
    return head + b"x" * (octets - len(head) - 2) + b"\r\n"


def login(client, user: bytes = b"alice", password: bytes = b"wonderland") -> list[bytes]:
    client.line()
    return client.command(b"a0 LOGIN " + user + b" " + password)


def quota_lines(lines: list[bytes]) -> list[bytes]:
    return [line for line in lines if line.startswith((b"* QUOTA", b"* QUOTAROOT"))]


class QuotaServerTestCase(IMAPServerTestCase):
    """A server over the store behind the quota settings above."""

    users = USERS

    async def make_backend(self):
        self.inner = await super().make_backend()
        return quota_backend(self.inner, SETTINGS)

    async def fill(self, name: str, sizes: list[int], user: str = "alice", *,
                   bypass: bool = False) -> list:
        """Add messages of these sizes, through the quota check unless C{bypass}."""
        backend = self.inner if bypass else self.backend
        store = await backend.open_store(user)
        if name not in {info.name for info in await store.list_mailboxes()}:
            await store.create_mailbox(name)
        mailbox = await store.get_mailbox(name)
        if not sizes:
            return []
        return await mailbox.append(
            [AppendRequest(sized(n, f"message {i}")) for i, n in enumerate(sizes)])


@on_every_store
class QuotaTests(QuotaServerTestCase):
    # -- capabilities and the commands ------------------------------------------

    async def test_capabilities_only_for_users_with_limits(self) -> None:
        def run():
            with self.imapclient_client("alice") as client:
                alice = set(client.capabilities())
            with self.imapclient_client("carol") as client:
                carol = set(client.capabilities())
            raw = self.raw()
            greeting = raw.line()
            raw.command(b"a1 LOGIN carol singer")
            carol_root = raw.command(b"a2 GETQUOTAROOT INBOX")
            carol_quota = raw.command(b'a3 GETQUOTA ""')
            raw.close()
            return alice, carol, greeting, carol_root, carol_quota

        alice, carol, greeting, carol_root, carol_quota = await self.in_thread(run)
        self.assertLessEqual({b"QUOTA", b"QUOTA=RES-STORAGE", b"QUOTA=RES-MESSAGE"}, alice)
        self.assertNotIn(b"QUOTASET", alice)
        self.assertFalse({c for c in carol if c.startswith(b"QUOTA")})
        self.assertNotIn(b"QUOTA", greeting)
        # RFC 9208 section 4.2.2: a mailbox with no quota root.
        self.assertEqual(carol_root, [b"* QUOTAROOT INBOX\r\n", b"a2 OK GETQUOTAROOT completed\r\n"])
        self.assertTrue(carol_quota[-1].startswith(b"a3 NO "))

    async def test_getquotaroot_follows_append_and_expunge(self) -> None:
        def run():
            seen = []
            with self.imapclient_client() as client:
                seen.append(client.get_quota_root("INBOX"))
                client.append("INBOX", sized(2000, "one"))
                client.append("INBOX", sized(2000, "two"))
                client.create_folder("Archive")
                client.append("Archive", sized(1500, "three"))
                seen.append(client.get_quota_root("INBOX"))
                # Section 4.1.2: the mailbox need not exist.
                seen.append(client.get_quota_root("Not/There/Yet"))
                client.select_folder("INBOX")
                client.delete_messages(client.search("ALL")[:1])
                client.expunge()
                seen.append(client.get_quota_root("Archive"))
            return seen

        empty, filled, elsewhere, expunged = await self.in_thread(run)
        self.assertEqual(empty[0].quota_roots, [""])
        self.assertEqual([(q.quota_root, q.resource, q.usage, q.limit) for q in empty[1]],
                         [("", "STORAGE", 0, 8), ("", "MESSAGE", 0, 5)])
        # 5500 octets are 6 units of 1024 (rounded up).
        self.assertEqual([(q.resource, q.usage, q.limit) for q in filled[1]],
                         [("STORAGE", 6, 8), ("MESSAGE", 3, 5)])
        self.assertEqual(elsewhere[0].mailbox, "Not/There/Yet")
        self.assertEqual(elsewhere[0].quota_roots, [""])
        self.assertEqual([(q.resource, q.usage) for q in expunged[1]],
                         [("STORAGE", 4), ("MESSAGE", 2)])

    async def test_getquotaroot_transcript(self) -> None:
        await self.fill("INBOX", [1000, 1100])

        def run():
            raw = self.raw()
            login(raw)
            lines = raw.command(b"a1 GETQUOTAROOT inbox")
            quota = raw.command(b'a2 GETQUOTA ""')
            raw.close()
            return lines, quota

        lines, quota = await self.in_thread(run)
        self.assertEqual(lines, [
            b'* QUOTAROOT INBOX ""\r\n',
            b'* QUOTA "" (STORAGE 3 8 MESSAGE 2 5)\r\n',
            b"a1 OK GETQUOTAROOT completed\r\n",
        ])
        self.assertEqual(quota, [b'* QUOTA "" (STORAGE 3 8 MESSAGE 2 5)\r\n',
                                 b"a2 OK GETQUOTA completed\r\n"])

    async def test_a_users_own_limit_from_the_configuration(self) -> None:
        def run():
            raw = self.raw()
            login(raw, b"bob", b"builder")
            lines = raw.command(b'a1 GETQUOTA ""')
            raw.close()
            return lines

        lines = await self.in_thread(run)
        self.assertEqual(lines[0], b'* QUOTA "" (STORAGE 0 64 MESSAGE 0 5)\r\n')

    async def test_setquota_is_for_the_administrator(self) -> None:
        def run():
            raw = self.raw()
            login(raw)
            answers = [raw.command(b'a1 SETQUOTA "" (STORAGE 100000)'),
                       raw.command(b'a2 SETQUOTA "" ()'),
                       raw.command(b'a3 SETQUOTA "" STORAGE 1'),
                       raw.command(b"a4 GETQUOTAROOT"),
                       raw.command(b'a5 GETQUOTA "#user/alice"'),
                       raw.command(b'a6 GETQUOTA ""')]
            raw.close()
            return answers

        answers = await self.in_thread(run)
        self.assertTrue(answers[0][-1].startswith(b"a1 NO [NOPERM] "), answers[0])
        self.assertTrue(answers[1][-1].startswith(b"a2 NO [NOPERM] "), answers[1])
        self.assertTrue(answers[2][-1].startswith(b"a3 BAD "), answers[2])
        self.assertTrue(answers[3][-1].startswith(b"a4 BAD "), answers[3])
        self.assertTrue(answers[4][-1].startswith(b"a5 NO "), answers[4])
        # Nothing changed.
        self.assertEqual(answers[5][0], b'* QUOTA "" (STORAGE 0 8 MESSAGE 0 5)\r\n')

    # -- refusals -------------------------------------------------------------

    async def test_append_over_the_storage_limit_is_refused_and_stores_nothing(self) -> None:
        await self.fill("INBOX", [2000, 2000, 2000])
        message = sized(2500, "too much")

        def run():
            client = self.imaplib_client()
            refused = client.append("INBOX", None, None, message)
            status = client.status("INBOX", "(MESSAGES SIZE)")
            root = client.getquotaroot("INBOX")
            fits = client.append("INBOX", None, None, sized(2192, "exactly to the limit"))
            client.logout()
            return refused, status, root, fits

        refused, status, root, fits = await self.in_thread(run)
        self.assertEqual(refused[0], "NO")
        self.assertTrue(refused[1][0].startswith(b"[OVERQUOTA] "), refused)
        self.assertEqual(status, ("OK", [b"INBOX (MESSAGES 3 SIZE 6000)"]))
        self.assertEqual(root[1][1], [b'"" (STORAGE 6 8 MESSAGE 3 5)'])
        # Reaching the limit exactly is allowed.
        self.assertEqual(fits[0], "OK")

    async def test_multiappend_over_the_limit_stores_none_of_the_messages(self) -> None:
        first, second = sized(3000, "first"), sized(6000, "second")

        def run():
            raw = self.raw()
            login(raw)
            raw.send(b"a1 APPEND INBOX {%d+}\r\n" % len(first) + first
                     + b" {%d+}\r\n" % len(second) + second + b"\r\n")
            refused = raw.until_tagged(b"a1")
            status = raw.command(b"a2 STATUS INBOX (MESSAGES SIZE)")
            raw.close()
            return refused, status

        refused, status = await self.in_thread(run)
        self.assertTrue(refused[-1].startswith(b"a1 NO [OVERQUOTA] "), refused)
        self.assertEqual(status[0], b"* STATUS INBOX (MESSAGES 0 SIZE 0)\r\n")

    async def test_append_over_the_message_limit_is_refused(self) -> None:
        await self.fill("INBOX", [300] * 3)
        await self.fill("Sent", [300] * 2)

        def run():
            raw = self.raw()
            login(raw)
            message = sized(300, "sixth")
            lines = raw.command(b"a1 APPEND Sent {%d+}\r\n" % len(message) + message)
            root = raw.command(b"a2 GETQUOTAROOT Sent")
            raw.close()
            return lines, root

        lines, root = await self.in_thread(run)
        self.assertTrue(lines[-1].startswith(b"a1 NO [OVERQUOTA] "), lines)
        self.assertIn(b"MESSAGE 5 5", root[1])

    async def test_replace_over_the_limit_keeps_the_old_message(self) -> None:
        """REPLACE (RFC 8508) counts the new message before the old one leaves."""
        await self.fill("INBOX", [300] * 5)

        def run():
            raw = self.raw()
            login(raw)
            raw.command(b"a1 SELECT INBOX")
            message = sized(300, "replacement")
            lines = raw.command(b"a2 REPLACE 1 INBOX {%d+}\r\n" % len(message) + message)
            status = raw.command(b"a3 STATUS INBOX (MESSAGES SIZE)")
            raw.close()
            return lines, status

        lines, status = await self.in_thread(run)
        self.assertEqual(len(lines), 1, lines)
        self.assertTrue(lines[0].startswith(b"a2 NO [OVERQUOTA] "), lines)
        self.assertEqual(status[0], b"* STATUS INBOX (MESSAGES 5 SIZE 1500)\r\n")

    async def test_copy_over_the_limit_is_refused_and_copies_nothing(self) -> None:
        await self.fill("INBOX", [2000, 2000, 2000])
        await self.fill("Archive", [])

        def run():
            client = self.imapclient_client()
            client.select_folder("INBOX")
            uids = client.search("ALL")
            outcome = []
            for what in (uids, uids[:1], uids[1:2]):
                try:
                    client.copy(what, "Archive")
                    outcome.append("OK")
                except client.Error as e:
                    outcome.append(str(e))
            archive = client.folder_status("Archive", ["MESSAGES", "SIZE"])
            quota = client.get_quota_root("INBOX")[1]
            client.logout()
            return outcome, archive, quota

        outcome, archive, quota = await self.in_thread(run)
        self.assertIn("[OVERQUOTA]", outcome[0])
        # One more fits (8000 of 8192 octets); a second does not.
        self.assertEqual(outcome[1], "OK")
        self.assertIn("[OVERQUOTA]", outcome[2])
        self.assertEqual(archive, {b"MESSAGES": 1, b"SIZE": 2000})
        self.assertEqual([(q.resource, q.usage) for q in quota], [("STORAGE", 8), ("MESSAGE", 4)])

    async def test_uid_copy_refusal_leaves_both_mailboxes_as_they_were(self) -> None:
        await self.fill("INBOX", [3000, 3000])
        await self.fill("Archive", [])

        def run():
            raw = self.raw()
            login(raw)
            raw.command(b"a1 SELECT INBOX")
            copied = raw.command(b"a2 UID COPY 1:* Archive")
            inbox = raw.command(b"a3 STATUS INBOX (MESSAGES SIZE)")
            archive = raw.command(b"a4 STATUS Archive (MESSAGES SIZE UIDNEXT)")
            raw.close()
            return copied, inbox, archive

        copied, inbox, archive = await self.in_thread(run)
        self.assertTrue(copied[-1].startswith(b"a2 NO [OVERQUOTA] "), copied)
        self.assertEqual(inbox[0], b"* STATUS INBOX (MESSAGES 2 SIZE 6000)\r\n")
        self.assertEqual(archive[0], b"* STATUS Archive (MESSAGES 0 SIZE 0 UIDNEXT 1)\r\n")

    async def test_move_inside_the_account_is_never_refused(self) -> None:
        # Over the limit already (the messages came in before it applied).
        await self.fill("INBOX", [2000] * 5, bypass=True)
        await self.fill("Archive", [], bypass=True)

        def run():
            raw = self.raw()
            login(raw)
            raw.command(b"a1 SELECT INBOX")
            moved = raw.command(b"a2 MOVE 1:3 Archive")
            message = sized(100)
            appended = raw.command(b"a3 APPEND Archive {%d+}\r\n" % len(message) + message)
            root = raw.command(b"a4 GETQUOTAROOT Archive")
            archive = raw.command(b"a5 STATUS Archive (MESSAGES SIZE)")
            raw.close()
            return moved, appended, root, archive

        moved, appended, root, archive = await self.in_thread(run)
        self.assertTrue(moved[-1].startswith(b"a2 OK "), moved)
        self.assertTrue(appended[-1].startswith(b"a3 NO [OVERQUOTA] "), appended)
        self.assertEqual(root[1], b'* QUOTA "" (STORAGE 10 8 MESSAGE 5 5)\r\n')
        self.assertEqual(archive[0], b"* STATUS Archive (MESSAGES 3 SIZE 6000)\r\n")

    # -- STATUS ------------------------------------------------------------------

    async def test_status_size_and_deleted_storage(self) -> None:
        metas = await self.fill("INBOX", [700, 1234, 999])
        store = await self.backend.open_store("alice")
        inbox = await store.get_mailbox("INBOX")
        await inbox.store_flags([metas[0].uid, metas[2].uid], "add", {"\\Deleted"})
        await self.fill("Empty", [])

        def run():
            client = self.imapclient_client()
            client.select_folder("INBOX", readonly=True)
            sizes = client.fetch(client.search("ALL"), ["RFC822.SIZE"])
            status = client.folder_status("INBOX", ["MESSAGES", "SIZE", "DELETED",
                                                    "DELETED-STORAGE"])
            empty = client.folder_status("Empty", ["SIZE", "DELETED", "DELETED-STORAGE"])
            client.logout()
            raw = self.raw()
            login(raw)
            listed = raw.command(b'a1 LIST "" "*" RETURN (STATUS (SIZE DELETED-STORAGE))')
            raw.close()
            return sizes, status, empty, listed

        sizes, status, empty, listed = await self.in_thread(run)
        total = sum(item[b"RFC822.SIZE"] for item in sizes.values())
        self.assertEqual(total, 700 + 1234 + 999)
        self.assertEqual(status, {b"MESSAGES": 3, b"SIZE": total, b"DELETED": 2,
                                  b"DELETED-STORAGE": 700 + 999})
        self.assertEqual(empty, {b"SIZE": 0, b"DELETED": 0, b"DELETED-STORAGE": 0})
        self.assertIn(b"* STATUS INBOX (SIZE 2933 DELETED-STORAGE 1699)\r\n", listed)


class StoreKeptLimitsTests(QuotaServerTestCase):
    """Limits the SQL store keeps for a user (``mailhub quota``) win."""

    store = "sqlite"

    async def test_limits_kept_by_the_store_apply_at_the_next_login(self) -> None:
        await self.inner.open_store("alice")  # the account row, made at first use
        await self.inner.set_quota_limits("alice", {"messages": 1})
        await self.fill("INBOX", [100])

        def session():
            raw = self.raw()
            caps = login(raw)[-1]
            message = sized(100)
            appended = raw.command(b"a1 APPEND INBOX {%d+}\r\n" % len(message) + message)
            quota = raw.command(b'a2 GETQUOTA ""')
            raw.close()
            return caps, appended, quota

        caps, appended, quota = await self.in_thread(session)
        self.assertIn(b" QUOTA ", caps)
        self.assertTrue(appended[-1].startswith(b"a1 NO [OVERQUOTA] "), appended)
        self.assertEqual(quota[0], b'* QUOTA "" (STORAGE 1 8 MESSAGE 1 1)\r\n')

        await self.inner.set_quota_limits("alice", {"storage": None, "messages": None})
        caps, appended, quota = await self.in_thread(session)
        self.assertNotIn(b" QUOTA ", caps)
        self.assertTrue(appended[-1].startswith(b"a1 OK "), appended)

        await self.inner.set_quota_limits("alice", {}, reset=["storage", "messages"])
        caps, appended, quota = await self.in_thread(session)
        self.assertIn(b" QUOTA ", caps)
        self.assertEqual(quota[0], b'* QUOTA "" (STORAGE 1 8 MESSAGE 3 5)\r\n')


if PG_URL:
    class StoreKeptLimitsTests_postgresql(StoreKeptLimitsTests):
        store = "postgresql"
