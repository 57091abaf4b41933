"""Password schemes: round trips, known hashes from other software, refusals."""

import base64
import hashlib

import pytest
from hypothesis import given, settings, strategies as st

from twisted_mailhub.auth.schemes import (
    HASH_SCHEMES,
    UnknownScheme,
    dummy_hash,
    hash_password,
    parse_scram,
    scram_credentials_from_stored,
    split_stored,
    verify_password,
)
from twisted_mailhub.auth.scram import derive_scram_credentials, user_salt

# Cheap work factors so the suite stays fast; production defaults are higher.
CHEAP = {"BLF-CRYPT": 4, "PBKDF2-SHA256": 1000, "SHA256-CRYPT": 1000, "SHA512-CRYPT": 1000}


@pytest.mark.parametrize("scheme", sorted(HASH_SCHEMES))
def test_hash_verify_round_trip(scheme):
    stored = hash_password("pä:ss word", scheme, rounds=CHEAP.get(scheme))
    assert stored.startswith("{")
    assert verify_password("pä:ss word", stored)
    assert not verify_password("pä:ss wore", stored)
    assert not verify_password("", stored)


def test_hashes_are_salted():
    assert hash_password("x", "SSHA256") != hash_password("x", "SSHA256")


def test_default_scheme_is_argon2id():
    assert hash_password("x").startswith("{ARGON2ID}$argon2id$")


@pytest.mark.parametrize(
    "password, stored",
    [
        # passlib's documented pbkdf2_sha256 example
        ("password", "{PBKDF2-SHA256}$pbkdf2-sha256$6400$0ZrzXitFSGltTQnBWOsdAw$"
                     "Y11AchqV4b0sUisdZd0Xr97KWoymNE0LNNrnEgY4H9M"),
        # OpenBSD bcrypt test vector, with the $2a$ prefix and the BCRYPT alias
        ("U*U", "{BCRYPT}$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW"),
        ("secret", "{SHA512-CRYPT}$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aD"
                   "ehy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1"),
        ("secret", "$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aD"
                   "ehy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1"),
        ("clear", "{CLEAR}clear"),
        ("clear", "{plain}clear"),
        ("a:b", "{PLAIN.B64}" + base64.b64encode(b"a:b").decode()),
        ("pw", "{SHA256}" + base64.b64encode(hashlib.sha256(b"pw").digest()).decode()),
        ("pw", "{SSHA512}" + base64.b64encode(hashlib.sha512(b"pwSALT").digest() + b"SALT")
         .decode()),
    ],
)
def test_known_hashes(password, stored):
    assert verify_password(password, stored)
    assert not verify_password(password + "x", stored)


def test_bcrypt_uses_first_72_bytes_like_other_implementations():
    stored = hash_password("a" * 72 + "tail", "BLF-CRYPT", rounds=4)
    assert verify_password("a" * 72 + "other", stored)


def test_unknown_scheme_raises():
    with pytest.raises(UnknownScheme):
        verify_password("x", "{MD5-CRYPT}$1$abc$def")
    with pytest.raises(UnknownScheme):
        verify_password("x", "no-prefix-at-all")
    with pytest.raises(UnknownScheme):
        hash_password("x", "SHA256")  # verify-only: unsalted


def test_malformed_values_are_false_not_errors():
    assert not verify_password("x", "{SSHA256}not base64!")
    assert not verify_password("x", "{ARGON2ID}$argon2id$garbage")
    assert not verify_password("x", "{SCRAM-SHA-256}4096,only-two")
    assert not verify_password("x", "{PBKDF2-SHA256}$pbkdf2-sha256$x$y")


def test_split_stored_recognises_bare_hashes():
    assert split_stored("$2b$04$abc")[0] == "BLF-CRYPT"
    assert split_stored("$argon2id$v=19$...")[0] == "ARGON2ID"
    assert split_stored("{Clear}pw") == ("PLAIN", "pw")


def test_scram_entry_in_dovecot_format():
    # The RFC 7677 example user: password "pencil", this salt, 4096 rounds.
    salt = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
    creds = derive_scram_credentials("pencil", salt, 4096)
    b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
    stored = f"{{SCRAM-SHA-256}}4096,{b64(salt)},{b64(creds.stored_key)},{b64(creds.server_key)}"
    assert verify_password("pencil", stored)
    assert not verify_password("pen", stored)
    assert scram_credentials_from_stored(stored, "user") == creds
    assert parse_scram(stored.split("}", 1)[1]).iterations == 4096


def test_scram_credentials_from_plaintext_use_per_user_salt():
    alice = scram_credentials_from_stored("{PLAIN}pw", "alice")
    assert alice == derive_scram_credentials("pw", user_salt("alice"))
    assert alice.salt != scram_credentials_from_stored("{PLAIN}pw", "bob").salt


def test_one_way_hashes_give_no_scram_credentials():
    assert scram_credentials_from_stored(hash_password("pw", "BLF-CRYPT", rounds=4), "a") is None
    assert scram_credentials_from_stored("{SSHA256}abcd", "a") is None


def test_dummy_hash_matches_no_password():
    stored = dummy_hash("SSHA256")
    assert stored.startswith("{SSHA256}")
    assert dummy_hash("SSHA256") == stored
    assert not verify_password("", stored)


@settings(max_examples=30, deadline=None)
@given(st.text(min_size=0, max_size=40))
def test_any_text_round_trips_in_fast_schemes(password):
    for scheme in ("PLAIN", "SSHA256", "SSHA512"):
        assert verify_password(password, hash_password(password, scheme))
