"""
Users in a Dovecot-style passwd file.

One user per line::

    # comments and blank lines are ignored
    alice:{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=4$...
    bob:{SHA512-CRYPT}$6$...:1000:1000::/home/bob
    carol:{PLAIN}correct horse

The first field is the user name, the second the password as
``{SCHEME}encoded`` (see L{twisted_mailhub.auth.schemes}); further fields
(uid, gid, home, extra fields) are accepted and ignored.  A password cannot
contain ``:``; store such a plaintext password as ``{PLAIN.B64}``.  Lines
that cannot be used are logged by line number (never their content) and
skipped.  The file is read again when its modification time, size or
inode changes, so edits and atomic replacements take effect without a
restart.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from dataclasses import dataclass

from twisted.internet.threads import deferToThread
from twisted.logger import Logger

from twisted_mailhub.auth.checkers import StoredPasswordChecker
from twisted_mailhub.auth.schemes import DEFAULT_SCHEME, UnknownScheme, split_stored, work_factor
from twisted_mailhub.auth.verifier import PasswordVerifier

_log = Logger()


@dataclass(frozen=True, slots=True)
class PasswdProblem:
    """A line that was skipped: its number and why."""

    line: int
    reason: str


def parse_passwd(text: str) -> tuple[dict[str, str], list[PasswdProblem]]:
    """
    Parse passwd-file C{text} into ``{user: "{SCHEME}hash"}`` and the
    problems of the lines skipped.  The first entry of a user wins.
    """
    users: dict[str, str] = {}
    problems: list[PasswdProblem] = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        fields = line.rstrip("\r\n").split(":")
        if len(fields) < 2 or not fields[0] or not fields[1]:
            problems.append(PasswdProblem(number, "expected user:{SCHEME}password"))
            continue
        user, password = fields[0], fields[1]
        if user != user.strip():
            problems.append(PasswdProblem(number, "user name has surrounding spaces"))
            continue
        try:
            split_stored(password)
        except UnknownScheme as e:
            problems.append(PasswdProblem(number, str(e)))
            continue
        if user in users:
            problems.append(PasswdProblem(number, "duplicate user; first entry kept"))
            continue
        users[user] = password
    return users, problems


class PasswdFileChecker(StoredPasswordChecker):
    """
    A checker reading C{path} (see the module docstring for the format).
    The file is read once at construction (L{OSError} if unreadable) and
    then whenever it changes.  If it later disappears or cannot be read, the
    last good contents stay in use and the error is logged.
    """

    def __init__(self, path: str | os.PathLike[str],
                 verifier: PasswordVerifier | None = None) -> None:
        super().__init__(verifier)
        self.path = os.fspath(path)
        self._lock = threading.Lock()
        self._signature: tuple[int, int, int] | None = None
        self._users: dict[str, str] = {}
        self._reload_if_changed(initial=True)

    def _reload_if_changed(self, initial: bool = False) -> None:
        with self._lock:
            try:
                st = os.stat(self.path)
                signature = (st.st_mtime_ns, st.st_size, st.st_ino)
                if signature == self._signature:
                    return
                with open(self.path, encoding="utf-8", errors="strict") as f:
                    text = f.read()
            except (OSError, UnicodeDecodeError) as e:
                if initial:
                    raise OSError(f"cannot read passwd file {self.path}: {e}") from e
                _log.error("cannot read passwd file {path}: {error}", path=self.path, error=str(e))
                return
            users, problems = parse_passwd(text)
            for problem in problems:
                _log.warn(
                    "{path} line {line} skipped: {reason}",
                    path=self.path, line=problem.line, reason=problem.reason,
                )
            # Unknown users are checked like the most common kind of entry,
            # scheme and work factor both.
            kinds = Counter(work_factor(p) or (split_stored(p)[0],) for p in users.values())
            if kinds:
                kind = kinds.most_common(1)[0][0]
                self._typical_scheme = kind[0]
                self._typical_stored = next(
                    p for p in users.values() if (work_factor(p) or (split_stored(p)[0],)) == kind)
            else:
                self._typical_scheme, self._typical_stored = DEFAULT_SCHEME, None
            self._users = users
            self._signature = signature

    def usernames(self) -> list[str]:
        """The users of the last successful read, sorted."""
        return sorted(self._users)

    async def lookup_stored(self, username: str) -> str | None:
        await deferToThread(self._reload_if_changed)
        return self._users.get(username)
