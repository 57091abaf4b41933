"""SHA-crypt against hashes produced by OpenSSL's ``openssl passwd``."""

import pytest

from twisted_mailhub.auth.shacrypt import make_setting, sha_crypt, sha_crypt_verify

# openssl passwd -6 -salt saltsalt secret
SHA512 = (
    "$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQ"
    "SpT0Y77vwPZN.Pq.H91p5hVO1"
)
# openssl passwd -5 -salt N1cE hunter2
SHA256 = "$5$N1cE$.hn6AFp0mzs09AYHDyvEYomlY.I8/e0sch5tRuB3.kC"
# openssl passwd -5 -salt 'rounds=2000$abcdefgh' x
SHA256_ROUNDS = "$5$rounds=2000$abcdefgh$p45FNRI8HVpO.LvRzdixzwrQFpqD/WYtyeWlf9wQgn/"


@pytest.mark.parametrize(
    "password, stored",
    [("secret", SHA512), ("hunter2", SHA256), ("x", SHA256_ROUNDS)],
)
def test_matches_openssl(password, stored):
    assert sha_crypt(password, stored) == stored
    assert sha_crypt_verify(password, stored)
    assert not sha_crypt_verify(password + "!", stored)


def test_fresh_setting_round_trip():
    setting = make_setting(6, rounds=1000)
    assert setting.startswith("$6$rounds=1000$")
    stored = sha_crypt("pässword", setting)
    assert sha_crypt_verify("pässword", stored)
    assert not sha_crypt_verify("password", stored)


def test_malformed_settings_do_not_verify():
    assert not sha_crypt_verify("x", "$1$abc$def")
    assert not sha_crypt_verify("x", "$5$rounds=abc$salt$hash")
    with pytest.raises(ValueError):
        sha_crypt("x", "$7$salt")
