"""
The client side of SCRAM-SHA-256, for tests and tools (e.g. checking a
server by hand).  It does not do channel binding.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

from twisted_mailhub.auth.scram import salted_password, saslprep


def _hmac(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha256).digest()


class ScramClientError(Exception):
    """The server's messages were malformed or it failed to prove itself."""


class ScramSha256Client:
    """
    Usage::

        client = ScramSha256Client("user", "pencil")
        first = client.first()                  # send as the initial response
        final = client.final(server_first)      # send in reply to the challenge
        client.check(server_final)              # raises if the server is fake
    """

    def __init__(self, username: str, password: str, nonce: str | None = None,
                 gs2_header: str = "n,,") -> None:
        self.username = username
        self.password = password
        self.nonce = nonce or base64.b64encode(os.urandom(18)).decode("ascii")
        self.gs2_header = gs2_header
        name = saslprep(username).replace("=", "=3D").replace(",", "=2C")
        self._first_bare = f"n={name},r={self.nonce}"
        self._server_signature = b""

    def first(self) -> bytes:
        """The client-first-message."""
        return (self.gs2_header + self._first_bare).encode("utf-8")

    def final(self, server_first: bytes) -> bytes:
        """The client-final-message answering C{server_first}."""
        text = server_first.decode("utf-8")
        attrs = dict(part.split("=", 1) for part in text.split(","))
        if not attrs.get("r", "").startswith(self.nonce):
            raise ScramClientError("server nonce does not extend ours")
        salted = salted_password(self.password, base64.b64decode(attrs["s"]), int(attrs["i"]))
        client_key = _hmac(salted, b"Client Key")
        channel = base64.b64encode(self.gs2_header.encode("utf-8")).decode("ascii")
        without_proof = f"c={channel},r={attrs['r']}"
        auth_message = f"{self._first_bare},{text},{without_proof}".encode("utf-8")
        signature = _hmac(hashlib.sha256(client_key).digest(), auth_message)
        proof = bytes(a ^ b for a, b in zip(client_key, signature))
        self._server_signature = _hmac(_hmac(salted, b"Server Key"), auth_message)
        return f"{without_proof},p={base64.b64encode(proof).decode('ascii')}".encode("ascii")

    def check(self, server_final: bytes) -> None:
        """Raise L{ScramClientError} unless C{server_final} proves the server."""
        expected = b"v=" + base64.b64encode(self._server_signature)
        if not hmac.compare_digest(server_final, expected):
            raise ScramClientError("server signature does not match")
