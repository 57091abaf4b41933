"""
Password storage schemes in Dovecot's ``{SCHEME}encoded`` notation.

L{hash_password} and L{verify_password} are synchronous and, for most
schemes, deliberately slow: checkers run them with C{deferToThread}.

=================  =========================================================
Scheme             Encoding after the ``{SCHEME}`` prefix
=================  =========================================================
PLAIN (CLEAR)      the password itself (verify/hash)
PLAIN.B64          base64 of the UTF-8 password (for passwords with ``:``)
BLF-CRYPT/BCRYPT   ``$2b$...`` as produced by bcrypt (verify/hash)
ARGON2ID/ARGON2I   ``$argon2id$v=19$m=..,t=..,p=..$salt$hash`` (verify/hash)
PBKDF2-SHA256      ``$pbkdf2-sha256$rounds$salt$hash``, salt and hash in
                   "adapted base64" (``.`` for ``+``, no padding) (both)
SSHA256/SSHA512    base64(H(password + salt) + salt) (verify/hash)
SHA256/SHA512      base64(H(password)), unsalted: verify only, for imports
SHA256-CRYPT       ``$5$...`` (verify/hash)
SHA512-CRYPT       ``$6$...`` (verify/hash)
SCRAM-SHA-256      ``iterations,salt,StoredKey,ServerKey``, the last three
                   in base64 (verify/hash; also usable by SCRAM itself)
=================  =========================================================

A stored value without a ``{SCHEME}`` prefix is recognised by its ``$2``,
``$argon2``, ``$5$``, ``$6$`` or ``$pbkdf2-sha256$`` prefix; anything else is
refused rather than guessed to be plaintext.

bcrypt only uses the first 72 bytes of a password; longer passwords are
cut to 72 bytes when hashing and verifying, as other implementations do.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import threading

from twisted_mailhub.auth import scram, shacrypt
from twisted_mailhub.auth.credentials import ScramCredentials

DEFAULT_SCHEME = "ARGON2ID"
PBKDF2_DEFAULT_ROUNDS = 600_000
BCRYPT_DEFAULT_COST = 12

ALIASES = {"CLEAR": "PLAIN", "BCRYPT": "BLF-CRYPT"}
VERIFY_SCHEMES = frozenset({
    "PLAIN", "PLAIN.B64", "BLF-CRYPT", "ARGON2ID", "ARGON2I", "PBKDF2-SHA256",
    "SSHA256", "SSHA512", "SHA256", "SHA512", "SHA256-CRYPT", "SHA512-CRYPT",
    "SCRAM-SHA-256",
})
HASH_SCHEMES = VERIFY_SCHEMES - {"SHA256", "SHA512"}

_SALTED_DIGESTS = {"SSHA256": "sha256", "SSHA512": "sha512"}
_UNSALTED_DIGESTS = {"SHA256": "sha256", "SHA512": "sha512"}


class UnknownScheme(ValueError):
    """The stored value names a scheme this module does not know."""


def canonical_scheme(name: str) -> str:
    """C{name} upper-cased with aliases resolved; L{UnknownScheme} if unknown."""
    upper = name.upper()
    upper = ALIASES.get(upper, upper)
    if upper not in VERIFY_SCHEMES:
        raise UnknownScheme(f"unknown password scheme {name!r}")
    return upper


def split_stored(stored: str) -> tuple[str, str]:
    """
    ``"{SHA512-CRYPT}$6$..."`` -> ``("SHA512-CRYPT", "$6$...")``, with the
    scheme canonical.  Raises L{UnknownScheme} (a L{ValueError}).
    """
    if stored.startswith("{"):
        name, sep, value = stored[1:].partition("}")
        if not sep:
            raise UnknownScheme("unterminated {SCHEME} prefix")
        return canonical_scheme(name), value
    for prefix, scheme in (
        ("$2", "BLF-CRYPT"), ("$argon2id$", "ARGON2ID"), ("$argon2i$", "ARGON2I"),
        ("$5$", "SHA256-CRYPT"), ("$6$", "SHA512-CRYPT"), ("$pbkdf2-sha256$", "PBKDF2-SHA256"),
    ):
        if stored.startswith(prefix):
            return scheme, stored
    raise UnknownScheme("stored password has no {SCHEME} prefix")


def _ab64_encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=").replace("+", ".")


def _ab64_decode(text: str) -> bytes:
    text = text.replace(".", "+")
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def _bcrypt_bytes(password: str) -> bytes:
    return password.encode("utf-8")[:72]


def _argon2_hasher(scheme: str):  # -> argon2.PasswordHasher
    import argon2

    kind = argon2.Type.ID if scheme == "ARGON2ID" else argon2.Type.I
    return argon2.PasswordHasher(type=kind)


def _format_scram(creds: ScramCredentials) -> str:
    b64 = lambda b: base64.b64encode(b).decode("ascii")  # noqa: E731
    return f"{creds.iterations},{b64(creds.salt)},{b64(creds.stored_key)},{b64(creds.server_key)}"


def parse_scram(value: str) -> ScramCredentials:
    """The Dovecot ``{SCRAM-SHA-256}`` value; L{ValueError} if malformed."""
    parts = value.split(",")
    if len(parts) != 4 or not parts[0].isdigit() or int(parts[0]) < 1:
        raise ValueError("malformed SCRAM-SHA-256 entry")
    salt, stored_key, server_key = (base64.b64decode(p, validate=True) for p in parts[1:])
    if len(stored_key) != 32 or len(server_key) != 32:
        raise ValueError("malformed SCRAM-SHA-256 keys")
    return ScramCredentials(salt, int(parts[0]), stored_key, server_key)


def hash_password(
    password: str, scheme: str = DEFAULT_SCHEME, *, rounds: int | None = None
) -> str:
    """
    Hash C{password} with C{scheme}, returning ``"{SCHEME}encoded"``.

    A C{PLAIN} password containing ``:`` or a line break is stored as
    ``{PLAIN.B64}`` so that it fits in a passwd file line.
    C{rounds} overrides the work factor where the scheme has one (bcrypt
    cost, PBKDF2/SHA-crypt/SCRAM iterations).  Slow: do not call on the
    reactor thread.
    """
    scheme = canonical_scheme(scheme)
    if scheme not in HASH_SCHEMES:
        raise UnknownScheme(f"{scheme} is accepted for verification only")
    if scheme == "PLAIN":
        if ":" in password or "\n" in password:
            scheme, value = "PLAIN.B64", base64.b64encode(password.encode()).decode()
        else:
            value = password
    elif scheme == "PLAIN.B64":
        value = base64.b64encode(password.encode("utf-8")).decode("ascii")
    elif scheme == "BLF-CRYPT":
        import bcrypt

        salt = bcrypt.gensalt(rounds=rounds or BCRYPT_DEFAULT_COST)
        value = bcrypt.hashpw(_bcrypt_bytes(password), salt).decode("ascii")
    elif scheme in ("ARGON2ID", "ARGON2I"):
        value = _argon2_hasher(scheme).hash(password)
    elif scheme == "PBKDF2-SHA256":
        count = rounds or PBKDF2_DEFAULT_ROUNDS
        salt = os.urandom(16)
        digest = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, count)
        value = f"$pbkdf2-sha256${count}${_ab64_encode(salt)}${_ab64_encode(digest)}"
    elif scheme in _SALTED_DIGESTS:
        salt = os.urandom(8)
        digest = hashlib.new(_SALTED_DIGESTS[scheme], password.encode("utf-8") + salt).digest()
        value = base64.b64encode(digest + salt).decode("ascii")
    elif scheme in ("SHA256-CRYPT", "SHA512-CRYPT"):
        variant = 5 if scheme == "SHA256-CRYPT" else 6
        setting = shacrypt.make_setting(variant, rounds or shacrypt.DEFAULT_ROUNDS)
        value = shacrypt.sha_crypt(password, setting)
    else:  # SCRAM-SHA-256
        value = _format_scram(
            scram.derive_scram_credentials(password, iterations=rounds or scram.DEFAULT_ITERATIONS)
        )
    return f"{{{scheme}}}{value}"


def verify_password(password: str, stored: str) -> bool:
    """
    True if C{password} matches C{stored} (``"{SCHEME}encoded"``).

    Comparisons are constant-time.  Raises L{UnknownScheme} for a scheme
    it does not know; a malformed value of a known scheme gives C{False}.
    """
    scheme, value = split_stored(stored)
    try:
        return _verify(scheme, password, value)
    except (ValueError, TypeError, UnicodeError):
        return False


def _verify(scheme: str, password: str, value: str) -> bool:
    secret = password.encode("utf-8")
    if scheme == "PLAIN":
        return hmac.compare_digest(secret, value.encode("utf-8"))
    if scheme == "PLAIN.B64":
        return hmac.compare_digest(secret, base64.b64decode(value, validate=True))
    if scheme == "BLF-CRYPT":
        import bcrypt

        return bcrypt.checkpw(_bcrypt_bytes(password), value.encode("ascii"))
    if scheme in ("ARGON2ID", "ARGON2I"):
        import argon2.exceptions

        try:
            return _argon2_hasher(scheme).verify(value, password)
        except argon2.exceptions.VerificationError:
            return False
        except argon2.exceptions.InvalidHashError:
            raise ValueError("malformed argon2 hash") from None
    if scheme == "PBKDF2-SHA256":
        _, ident, count, salt, digest = value.split("$")
        if ident != "pbkdf2-sha256" or not count.isdigit():
            return False
        computed = hashlib.pbkdf2_hmac("sha256", secret, _ab64_decode(salt), int(count))
        return hmac.compare_digest(computed, _ab64_decode(digest))
    if scheme in _SALTED_DIGESTS:
        name = _SALTED_DIGESTS[scheme]
        raw = base64.b64decode(value, validate=True)
        size = hashlib.new(name).digest_size
        digest, salt = raw[:size], raw[size:]
        return len(digest) == size and hmac.compare_digest(
            hashlib.new(name, secret + salt).digest(), digest
        )
    if scheme in _UNSALTED_DIGESTS:
        digest = base64.b64decode(value, validate=True)
        return hmac.compare_digest(hashlib.new(_UNSALTED_DIGESTS[scheme], secret).digest(), digest)
    if scheme in ("SHA256-CRYPT", "SHA512-CRYPT"):
        if value[:3] != ("$5$" if scheme == "SHA256-CRYPT" else "$6$"):
            return False
        return shacrypt.sha_crypt_verify(password, value)
    # SCRAM-SHA-256: derive the keys from the password and compare.
    stored = parse_scram(value)
    derived = scram.derive_scram_credentials(password, stored.salt, stored.iterations)
    return hmac.compare_digest(derived.stored_key, stored.stored_key) & hmac.compare_digest(
        derived.server_key, stored.server_key
    )


def scram_credentials_from_stored(stored: str, username: str) -> ScramCredentials | None:
    """
    SCRAM-SHA-256 keys for a user whose stored password is C{stored}:
    parsed from a ``{SCRAM-SHA-256}`` entry, derived (slowly, with a
    per-user salt) from a plaintext one, C{None} for one-way hashes.
    """
    try:
        scheme, value = split_stored(stored)
        if scheme == "SCRAM-SHA-256":
            return parse_scram(value)
        if scheme == "PLAIN":
            return scram.derive_scram_credentials(value, scram.user_salt(username))
        if scheme == "PLAIN.B64":
            password = base64.b64decode(value, validate=True).decode("utf-8")
            return scram.derive_scram_credentials(password, scram.user_salt(username))
    except ValueError:
        return None
    return None


_dummies: dict[str, str] = {}
_dummy_lock = threading.Lock()


def dummy_hash(scheme: str = DEFAULT_SCHEME) -> str:
    """
    A stored value of C{scheme} that no password matches, for checking a
    password of an unknown user at the same cost as a known user's.
    """
    scheme = canonical_scheme(scheme)
    if scheme not in HASH_SCHEMES:
        scheme = DEFAULT_SCHEME
    with _dummy_lock:
        if scheme not in _dummies:
            _dummies[scheme] = hash_password(base64.b64encode(os.urandom(24)).decode(), scheme)
        return _dummies[scheme]


# Dummies mirroring a stored hash's work factor, by (scheme, parameters).
# A store holds few distinct parameter sets; the bound keeps a hostile or
# odd one from growing the table.
_DUMMIES_LIKE_MAX = 32
_dummies_like: dict[tuple, str] = {}


def work_factor(stored: str) -> tuple[str, tuple] | None:
    """
    The scheme of C{stored} and the parameters that set its cost (Argon2
    memory, time and lanes; bcrypt cost; PBKDF2, SHA-crypt and SCRAM
    iterations), or C{None} if it has none or cannot be read.
    """
    try:
        scheme, value = split_stored(stored)
        if scheme in ("ARGON2ID", "ARGON2I"):
            import argon2

            p = argon2.extract_parameters(value)
            return scheme, (p.time_cost, p.memory_cost, p.parallelism, p.hash_len, p.salt_len)
        if scheme == "BLF-CRYPT":
            return scheme, (int(value.split("$")[2]),)
        if scheme == "PBKDF2-SHA256":
            return scheme, (int(value.split("$")[2]),)
        if scheme in ("SHA256-CRYPT", "SHA512-CRYPT"):
            field = value.split("$")[2]
            if field.startswith("rounds="):
                return scheme, (int(field[len("rounds="):]),)
            return scheme, (shacrypt.DEFAULT_ROUNDS,)
        if scheme == "SCRAM-SHA-256":
            return scheme, (parse_scram(value).iterations,)
    except (ValueError, IndexError):  # UnknownScheme and argon2's InvalidHashError too
        return None
    return None


def dummy_like(stored: str) -> str:
    """
    A stored value that no password matches and that costs as much to
    check as C{stored}: same scheme, same work factor.  Checking an unknown
    user's password against it takes as long, and as much memory, as
    checking a known user's.  Falls back to L{dummy_hash} of the scheme
    (or of L{DEFAULT_SCHEME}) when C{stored} cannot be read.  Slow the first
    time for each work factor: do not call on the reactor thread.
    """
    factor = work_factor(stored)
    if factor is None:
        scheme = scheme_of(stored)
        return dummy_hash(scheme if scheme is not None else DEFAULT_SCHEME)
    with _dummy_lock:
        found = _dummies_like.get(factor)
    if found is not None:
        return found
    scheme, params = factor
    secret = base64.b64encode(os.urandom(24)).decode()
    if scheme in ("ARGON2ID", "ARGON2I"):
        import argon2

        time_cost, memory_cost, parallelism, hash_len, salt_len = params
        hasher = argon2.PasswordHasher(
            time_cost=time_cost, memory_cost=memory_cost, parallelism=parallelism,
            hash_len=hash_len, salt_len=salt_len,
            type=argon2.Type.ID if scheme == "ARGON2ID" else argon2.Type.I,
        )
        made = f"{{{scheme}}}" + hasher.hash(secret)
    else:
        made = hash_password(secret, scheme, rounds=params[0])
    with _dummy_lock:
        if len(_dummies_like) >= _DUMMIES_LIKE_MAX:
            _dummies_like.pop(next(iter(_dummies_like)))
        _dummies_like[factor] = made
    return made


def scheme_of(stored: str) -> str | None:
    """The canonical scheme of C{stored}, or C{None} if unknown."""
    try:
        return split_stored(stored)[0]
    except UnknownScheme:
        return None
