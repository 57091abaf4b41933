"""
SCRAM-SHA-256 (RFC 5802 with SHA-256 per RFC 7677), server side, sans-IO.

No channel binding: a client sending the gs2 flag ``n`` or ``y`` is
accepted, ``p=`` is refused (we never advertise SCRAM-SHA-256-PLUS).
SASLprep (RFC 4013) is approximated by Unicode NFKC normalisation, which is
its core mapping; for ASCII names and passwords the two are identical.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import unicodedata
from typing import Any, Callable

from twisted_mailhub.auth.credentials import ScramCredentials, ScramVerified
from twisted_mailhub.auth.steps import (
    Challenge,
    Failure,
    MechanismStateError,
    NeedScramCredentials,
    Step,
    Success,
    Verify,
)

# RFC 7677 section 3: the iteration count SHOULD be at least 4096.
DEFAULT_ITERATIONS = 4096
_SALT_BYTES = 16

# Keys salts derived for plaintext entries and fake answers for unknown users:
# stable for this process, so the same user always sees the same salt.
_PROCESS_SECRET = os.urandom(32)


def saslprep(text: str) -> str:
    """The NFKC approximation of SASLprep used for SCRAM names and passwords."""
    return unicodedata.normalize("NFKC", text)


def _hmac(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha256).digest()


def salted_password(password: str, salt: bytes, iterations: int) -> bytes:
    """Hi(Normalize(password), salt, i) of RFC 5802 section 2.2."""
    return hashlib.pbkdf2_hmac("sha256", saslprep(password).encode("utf-8"), salt, iterations)


def derive_scram_credentials(
    password: str, salt: bytes | None = None, iterations: int = DEFAULT_ITERATIONS
) -> ScramCredentials:
    """
    The stored keys for C{password} (slow: PBKDF2; call off the reactor).
    A random salt is chosen when none is given.
    """
    if salt is None:
        salt = os.urandom(_SALT_BYTES)
    salted = salted_password(password, salt, iterations)
    client_key = _hmac(salted, b"Client Key")
    return ScramCredentials(
        salt=salt,
        iterations=iterations,
        stored_key=hashlib.sha256(client_key).digest(),
        server_key=_hmac(salted, b"Server Key"),
    )


def user_salt(username: str) -> bytes:
    """
    A salt that depends only on C{username} (and this process), used where
    the store holds a plaintext password and so has no salt of its own.
    """
    return _hmac(_PROCESS_SECRET, b"salt\0" + username.encode("utf-8"))[:_SALT_BYTES]


def fake_credentials(username: str) -> ScramCredentials:
    """
    Credentials no password matches, with a salt stable per name, so an
    unknown user gets an answer indistinguishable from a known one (RFC 5802
    section 9 suggests this to avoid revealing which users exist).
    """
    key = _hmac(_PROCESS_SECRET, b"fake\0" + username.encode("utf-8"))
    return ScramCredentials(user_salt(username), DEFAULT_ITERATIONS, key, key)


def _decode_saslname(value: str) -> str | None:
    # RFC 5802 section 5.1: "=2C" is ",", "=3D" is "=", any other "=" fails.
    out, i = [], 0
    while i < len(value):
        if value[i] == "=":
            code = value[i + 1 : i + 3]
            if code == "2C":
                out.append(",")
            elif code == "3D":
                out.append("=")
            else:
                return None
            i += 3
        else:
            out.append(value[i])
            i += 1
    return "".join(out)


def _b64decode(value: str) -> bytes | None:
    try:
        return base64.b64decode(value.encode("ascii"), validate=True)
    except (ValueError, UnicodeError):
        return None


def _printable(nonce: str) -> bool:
    return bool(nonce) and all(0x21 <= ord(c) <= 0x7E and c != "," for c in nonce)


class ScramSha256Mechanism:
    """
    The server side of one SCRAM-SHA-256 exchange.

    Steps: C{start}/C{step} with the client-first-message gives
    L{NeedScramCredentials}; C{scram_credentials} gives the
    server-first-message as a L{Challenge}; C{step} with the
    client-final-message gives L{Verify}(L{ScramVerified}) if the proof is
    right; C{verified} gives L{Success} carrying the server-final-message.
    """

    name = "SCRAM-SHA-256"
    sends_plaintext = False

    def __init__(self, nonce_factory: Callable[[], str] | None = None) -> None:
        self._nonce_factory = nonce_factory or (
            lambda: base64.b64encode(os.urandom(18)).decode("ascii")
        )
        self._state = "new"
        self.username: str | None = None
        self._gs2_header = ""
        self._client_first_bare = ""
        self._nonce = ""
        self._server_first = ""
        self._credentials: ScramCredentials | None = None
        self._known = False
        self._server_signature = b""

    def _expect(self, state: str) -> None:
        if self._state != state:
            raise MechanismStateError(f"SCRAM: called in state {self._state}, not {state}")

    def _fail(self, reason: str) -> Failure:
        self._state = "done"
        return Failure(reason)

    def start(self, initial: bytes | None) -> Step:
        self._expect("new")
        if initial is None:
            self._state = "first"
            return Challenge(b"")  # RFC 4422 section 5: client-first, empty challenge
        self._state = "first"
        return self.step(initial)

    def step(self, response: bytes) -> Step:
        if self._state == "first":
            return self._client_first(response)
        if self._state == "final":
            return self._client_final(response)
        raise MechanismStateError(f"SCRAM: step() in state {self._state}")

    def _client_first(self, data: bytes) -> Step:
        try:
            message = data.decode("utf-8")
        except UnicodeDecodeError:
            return self._fail("SCRAM: client-first-message is not UTF-8")
        parts = message.split(",")
        if len(parts) < 4:
            return self._fail("SCRAM: malformed client-first-message")
        flag, authzid = parts[0], parts[1]
        if flag.startswith("p="):
            return self._fail("SCRAM: channel binding requested but not supported")
        if flag not in ("n", "y"):
            return self._fail("SCRAM: bad gs2 channel binding flag")
        self._gs2_header = f"{flag},{authzid},"
        bare = parts[2:]
        if bare[0].startswith("m="):
            return self._fail("SCRAM: mandatory extension not supported")
        if not bare[0].startswith("n=") or not bare[1].startswith("r="):
            return self._fail("SCRAM: client-first-message lacks n= or r=")
        raw_name = _decode_saslname(bare[0][2:])
        if not raw_name:
            return self._fail("SCRAM: invalid username encoding")
        username = saslprep(raw_name)
        self.username = username
        if authzid:
            authz = _decode_saslname(authzid[2:]) if authzid.startswith("a=") else None
            if authz is None or saslprep(authz) != username:
                return self._fail("SCRAM: authorization identity differs from user (no proxy)")
        client_nonce = bare[1][2:]
        if not _printable(client_nonce):
            return self._fail("SCRAM: bad client nonce")
        self.username = username
        self._client_first_bare = ",".join(bare)
        self._nonce = client_nonce + self._nonce_factory()
        self._state = "credentials"
        return NeedScramCredentials(username)

    def scram_credentials(self, credentials: ScramCredentials | None) -> Step:
        """
        The stored keys of the user named in L{NeedScramCredentials}, or
        C{None} if the user is unknown or has no SCRAM keys.  Either way the
        exchange continues (with fake keys for C{None}) and fails at the
        proof, so a client cannot tell which users exist.
        """
        self._expect("credentials")
        self._known = credentials is not None
        self._credentials = credentials or fake_credentials(self.username)
        salt = base64.b64encode(self._credentials.salt).decode("ascii")
        self._server_first = f"r={self._nonce},s={salt},i={self._credentials.iterations}"
        self._state = "final"
        return Challenge(self._server_first.encode("ascii"))

    def _client_final(self, data: bytes) -> Step:
        try:
            message = data.decode("utf-8")
        except UnicodeDecodeError:
            return self._fail("SCRAM: client-final-message is not UTF-8")
        without_proof, sep, proof_b64 = message.rpartition(",p=")
        if not sep:
            return self._fail("SCRAM: client-final-message lacks a proof")
        attrs = without_proof.split(",")
        if len(attrs) < 2 or not attrs[0].startswith("c=") or not attrs[1].startswith("r="):
            return self._fail("SCRAM: malformed client-final-message")
        if _b64decode(attrs[0][2:]) != self._gs2_header.encode("utf-8"):
            return self._fail("SCRAM: channel binding data does not match")
        if not hmac.compare_digest(attrs[1][2:].encode(), self._nonce.encode()):
            return self._fail("SCRAM: nonce does not match")
        proof = _b64decode(proof_b64)
        assert self._credentials is not None
        if proof is None or len(proof) != len(self._credentials.stored_key):
            return self._fail("SCRAM: bad proof encoding")
        auth_message = ",".join(
            (self._client_first_bare, self._server_first, without_proof)
        ).encode("utf-8")
        signature = _hmac(self._credentials.stored_key, auth_message)
        client_key = bytes(a ^ b for a, b in zip(proof, signature))
        if not hmac.compare_digest(hashlib.sha256(client_key).digest(),
                                   self._credentials.stored_key) or not self._known:
            return self._fail("SCRAM: invalid proof")
        self._server_signature = _hmac(self._credentials.server_key, auth_message)
        self._state = "verify"
        return Verify(ScramVerified(self.username))

    def verified(self, avatar_id: Any) -> Step:
        self._expect("verify")
        if avatar_id is None:
            return self._fail("SCRAM: proof valid but the portal refused the user")
        self._state = "done"
        final = b"v=" + base64.b64encode(self._server_signature)
        return Success(final, avatar_id)
