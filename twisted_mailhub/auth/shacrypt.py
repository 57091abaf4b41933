"""
SHA-256-crypt and SHA-512-crypt (``$5$`` / ``$6$``), in pure Python.

The standard library ``crypt`` module is gone from Python 3.13, and these
are the formats most Unix systems (and Dovecot's SHA512-CRYPT scheme) store.
The algorithm is Ulrich Drepper's "Unix crypt using SHA-256 and SHA-512"
specification; each numbered comment below is one of its steps, grouped.
"""

from __future__ import annotations

import hashlib
import hmac
import os

_ALPHABET = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
DEFAULT_ROUNDS = 5000
MIN_ROUNDS = 1000
MAX_ROUNDS = 999_999_999

# The order in which the final digest's bytes are emitted, three at a time.
_ORDER_256 = (
    (0, 10, 20), (21, 1, 11), (12, 22, 2), (3, 13, 23), (24, 4, 14),
    (15, 25, 5), (6, 16, 26), (27, 7, 17), (18, 28, 8), (9, 19, 29),
)
_ORDER_512 = (
    (0, 21, 42), (22, 43, 1), (44, 2, 23), (3, 24, 45), (25, 46, 4),
    (47, 5, 26), (6, 27, 48), (28, 49, 7), (50, 8, 29), (9, 30, 51),
    (31, 52, 10), (53, 11, 32), (12, 33, 54), (34, 55, 13), (56, 14, 35),
    (15, 36, 57), (37, 58, 16), (59, 17, 38), (18, 39, 60), (40, 61, 19),
    (62, 20, 41),
)


def _b64_from_24bit(b2: int, b1: int, b0: int, n: int) -> bytes:
    w = (b2 << 16) | (b1 << 8) | b0
    out = bytearray()
    for _ in range(n):
        out.append(_ALPHABET[w & 0x3F])
        w >>= 6
    return bytes(out)


def _repeat_to(block: bytes, length: int) -> bytes:
    return (block * (length // len(block) + 1))[:length]


def _digest(name: str, password: bytes, salt: bytes, rounds: int) -> bytes:
    def h(data: bytes = b"") -> "hashlib._Hash":
        return hashlib.new(name, data)

    # Steps 4-8: digest B = H(password + salt + password).
    b = h(password + salt + password).digest()
    # Steps 1-3, 9-12: digest A.
    a = h(password + salt)
    a.update(_repeat_to(b, len(password)))
    n = len(password)
    while n:
        a.update(b if n & 1 else password)
        n >>= 1
    a_digest = a.digest()
    # Steps 13-16: the P sequence from DP = H(password repeated).
    p_seq = _repeat_to(h(password * len(password)).digest(), len(password)) if password else b""
    # Steps 17-20: the S sequence from DS = H(salt repeated 16 + A[0] times).
    s_seq = _repeat_to(h(salt * (16 + a_digest[0])).digest(), len(salt)) if salt else b""
    # Step 21: the rounds.
    c = a_digest
    for i in range(rounds):
        ctx = h()
        ctx.update(p_seq if i & 1 else c)
        if i % 3:
            ctx.update(s_seq)
        if i % 7:
            ctx.update(p_seq)
        ctx.update(c if i & 1 else p_seq)
        c = ctx.digest()
    return c


def _encode(c: bytes, variant: int) -> bytes:
    out = bytearray()
    if variant == 5:
        for i, j, k in _ORDER_256:
            out += _b64_from_24bit(c[i], c[j], c[k], 4)
        out += _b64_from_24bit(0, c[31], c[30], 3)
    else:
        for i, j, k in _ORDER_512:
            out += _b64_from_24bit(c[i], c[j], c[k], 4)
        out += _b64_from_24bit(0, 0, c[63], 2)
    return bytes(out)


def sha_crypt(password: str | bytes, setting: str) -> str:
    """
    Hash C{password} with the ``$5$`` or ``$6$`` C{setting} (which may be a
    full stored hash: only its prefix, rounds and salt are used).  Raises
    L{ValueError} for a malformed setting.
    """
    if isinstance(password, str):
        password = password.encode("utf-8")
    if setting.startswith("$5$"):
        variant, name = 5, "sha256"
    elif setting.startswith("$6$"):
        variant, name = 6, "sha512"
    else:
        raise ValueError("not a SHA-crypt setting")
    rest = setting[3:]
    rounds, explicit = DEFAULT_ROUNDS, False
    if rest.startswith("rounds="):
        count, sep, rest = rest[len("rounds="):].partition("$")
        if not sep or not count.isdigit():
            raise ValueError("bad rounds= in SHA-crypt setting")
        rounds, explicit = min(max(int(count), MIN_ROUNDS), MAX_ROUNDS), True
    salt = rest.split("$", 1)[0][:16].encode("ascii")
    encoded = _encode(_digest(name, password, salt, rounds), variant).decode("ascii")
    prefix = f"${variant}$" + (f"rounds={rounds}$" if explicit else "")
    return f"{prefix}{salt.decode('ascii')}${encoded}"


def sha_crypt_verify(password: str | bytes, stored: str) -> bool:
    """True if C{password} hashes to C{stored} (a ``$5$``/``$6$`` string)."""
    try:
        computed = sha_crypt(password, stored)
    except (ValueError, UnicodeError):
        return False
    return hmac.compare_digest(computed.encode("ascii"), stored.encode("ascii", "replace"))


def make_setting(variant: int, rounds: int = DEFAULT_ROUNDS) -> str:
    """A fresh ``$5$``/``$6$`` setting with a random 16-character salt."""
    salt = "".join(chr(_ALPHABET[b % 64]) for b in os.urandom(16))
    rounds_part = "" if rounds == DEFAULT_ROUNDS else f"rounds={rounds}$"
    return f"${variant}${rounds_part}{salt}$"
