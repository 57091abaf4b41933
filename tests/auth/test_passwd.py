"""PasswdFileChecker: every scheme from a file, bad lines, reloading."""

import os

from twisted.cred.credentials import UsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import TestCase

from twisted_mailhub.auth.passwd import PasswdFileChecker, parse_passwd
from twisted_mailhub.auth.schemes import HASH_SCHEMES, hash_password

CHEAP = {"BLF-CRYPT": 4, "PBKDF2-SHA256": 1000, "SHA256-CRYPT": 1000, "SHA512-CRYPT": 1000}


def test_parse_skips_comments_blank_and_bad_lines():
    users, problems = parse_passwd(
        "# a comment\n"
        "\n"
        "   \n"
        "alice:{PLAIN}pw:1000:1000::/home/alice::userdb_quota_rule=*:storage=1G\n"
        "nopassword\n"
        "empty:\n"
        ":{PLAIN}x\n"
        "weird:{ROT13}cj\n"
        "bare:hunter2\n"
        "alice:{PLAIN}second\n"
        "bob:$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vw"
        "PZN.Pq.H91p5hVO1\r\n"
    )
    assert users == {
        "alice": "{PLAIN}pw",
        "bob": "$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0"
               "Y77vwPZN.Pq.H91p5hVO1",
    }
    assert [p.line for p in problems] == [5, 6, 7, 8, 9, 10]
    assert "duplicate" in problems[-1].reason
    # The bare plaintext password is not echoed into the reason (it is logged).
    assert all("hunter2" not in p.reason for p in problems)


class PasswdFileCheckerTests(TestCase):
    def setUp(self):
        self.path = os.path.join(self.mktemp())
        self.lines = ["# users"]
        for scheme in sorted(HASH_SCHEMES):
            name = scheme.lower()
            stored = hash_password("pw-" + name, scheme, rounds=CHEAP.get(scheme))
            self.lines.append(f"{name}:{stored}")
        self.lines.append("clear:{CLEAR}plain-alias")
        self.lines.append("bcrypt:{BCRYPT}" + hash_password("b", "BLF-CRYPT", rounds=4)[11:])
        self.write("\n".join(self.lines) + "\n")
        self.checker = PasswdFileChecker(self.path)

    def write(self, text, mtime=None):
        with open(self.path, "w", encoding="utf-8") as f:
            f.write(text)
        if mtime is not None:
            os.utime(self.path, ns=(mtime, mtime))

    async def login(self, user, password):
        return await self.checker.requestAvatarId(UsernamePassword(user, password))

    async def test_every_scheme(self):
        for scheme in sorted(HASH_SCHEMES):
            name = scheme.lower()
            self.assertEqual(await self.login(name, "pw-" + name), name)
            with self.assertRaises(UnauthorizedLogin):
                await self.login(name, "pw-" + name + "x")
        self.assertEqual(await self.login("clear", "plain-alias"), "clear")
        self.assertEqual(await self.login("bcrypt", "b"), "bcrypt")

    async def test_unknown_user(self):
        with self.assertRaises(UnauthorizedLogin):
            await self.login("nobody", "x")

    async def test_reloads_when_file_changes(self):
        self.write("newbie:{PLAIN}fresh\n", mtime=1_000_000_000_000_000_000)
        self.assertEqual(await self.login("newbie", "fresh"), "newbie")
        with self.assertRaises(UnauthorizedLogin):
            await self.login("plain", "pw-plain")
        self.assertEqual(self.checker.usernames(), ["newbie"])

    async def test_missing_file_keeps_last_good_contents(self):
        errors = []
        globalLogPublisher.addObserver(errors.append)
        self.addCleanup(globalLogPublisher.removeObserver, errors.append)
        os.remove(self.path)
        self.assertEqual(await self.login("plain", "pw-plain"), "plain")
        self.assertTrue(any("cannot read passwd file" in e.get("log_format", "")
                            for e in errors))

    async def test_scram_credentials(self):
        self.assertIsNotNone(await self.checker.scram_credentials("plain"))
        self.assertIsNotNone(await self.checker.scram_credentials("scram-sha-256"))
        self.assertIsNone(await self.checker.scram_credentials("argon2id"))

    def test_unreadable_at_start_is_an_error(self):
        self.assertRaises(OSError, PasswdFileChecker, self.path + ".missing")
