"""
One user can never read, list, STATUS, COPY into or otherwise touch another
user's mailboxes, whatever name they try.
"""

from __future__ import annotations

from harness import IMAPServerTestCase, on_every_store
from tests_messages import simple_message

from twisted_mailhub.model import AppendRequest

# Names a hostile user might try to reach alice's INBOX and her folder "Secret".
HOSTILE = [b"alice/INBOX", b"../alice/INBOX", b"/alice/Secret", b"~alice/Secret",
           b"#shared/alice/Secret", b"Secret", b"../../alice", b"alice"]


@on_every_store
class CrossUserTests(IMAPServerTestCase):
    async def setUp(self) -> None:
        await super().setUp()
        self.alice = await self.backend.open_store("alice")
        await self.alice.create_mailbox("Secret")
        inbox = await self.alice.get_mailbox("INBOX")
        await inbox.append([AppendRequest(simple_message("for alice only"))])
        secret = await self.alice.get_mailbox("Secret")
        await secret.append([AppendRequest(simple_message("secret"))])

    async def alice_state(self):
        infos = [i.name for i in await self.alice.list_mailboxes()]
        counts = {}
        for name in ("INBOX", "Secret"):
            box = await self.alice.get_mailbox(name)
            st = await box.status()
            counts[name] = (st.messages, st.highestmodseq)
        return infos, counts, await self.alice.subscriptions()

    async def test_every_command_stays_in_bobs_tree(self) -> None:
        before = await self.alice_state()

        def run():
            c = self.raw()
            c.line()
            c.command(b"b0 LOGIN bob builder")
            out = {}
            msg = simple_message("from bob")
            for i, name in enumerate(HOSTILE):
                q = b'"' + name + b'"'
                out[name] = [
                    c.command(b"s%d SELECT %s" % (i, q))[-1],
                    c.command(b"e%d EXAMINE %s" % (i, q))[-1],
                    c.command(b"t%d STATUS %s (MESSAGES)" % (i, q))[-1],
                    c.command(b"d%d DELETE %s" % (i, q))[-1],
                    c.command(b"r%d RENAME %s %s" % (i, q, b'"Mine%d"' % i))[-1],
                ]
                c.send(b"a%d APPEND %s {%d+}\r\n" % (i, q, len(msg)) + msg + b"\r\n")
                out[name].append(c.until_tagged(b"a%d" % i)[-1])
                c.command(b"x%d SUBSCRIBE %s" % (i, q))
            c.command(b"y SELECT INBOX")
            for i, name in enumerate(HOSTILE):
                out[name].append(c.command(b'c%d COPY 1:* "%s"' % (i, name))[-1])
            listing = c.command(b'l LIST "" "*"') + c.command(b'm LIST "../" "*"') \
                + c.command(b'n LIST "/" "*"') + c.command(b'o LSUB "" "*"')
            c.command(b"z LOGOUT")
            c.close()
            return out, listing

        out, listing = await self.in_thread(run)
        after = await self.alice_state()
        self.assertEqual(before, after)
        text = b"".join(listing)
        self.assertNotIn(b"for alice only", text)
        # Whatever bob managed, it was in his own tree: alice's mail never
        # showed, and bob's tree holds only what bob put there.
        bob = await self.backend.open_store("bob")
        for info in await bob.list_mailboxes():
            if not info.selectable:
                continue
            box = await bob.get_mailbox(info.name)
            for meta in await box.metadata(await box.uids()):
                content = await (await box.open_message(meta.uid)).read()
                self.assertNotIn(b"for alice only", content)
                self.assertNotIn(b"Subject: secret", content)
        # Names with "." or ".." levels, or a leading "/", are refused outright.
        for name in (b"../alice/INBOX", b"/alice/Secret", b"../../alice"):
            for answer in out[name]:
                self.assertRegex(answer, rb"^\w+ (NO|BAD) ")
