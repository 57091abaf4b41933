"""SCRAM-SHA-256 server mechanism: the RFC 7677 vector and refusals."""

import base64

import pytest

from twisted_mailhub.auth.credentials import ScramVerified
from twisted_mailhub.auth.scram import (
    ScramSha256Mechanism,
    derive_scram_credentials,
    fake_credentials,
)
from twisted_mailhub.auth.scramclient import ScramClientError, ScramSha256Client
from twisted_mailhub.auth.steps import (
    Challenge,
    Failure,
    MechanismStateError,
    NeedScramCredentials,
    Success,
    Verify,
)

# RFC 7677 section 3.
CLIENT_FIRST = b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
SERVER_NONCE = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
SERVER_FIRST = (b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                b"s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")
CLIENT_FINAL = (b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
SERVER_FINAL = b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
PENCIL = derive_scram_credentials("pencil", base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ=="), 4096)


def mechanism():
    return ScramSha256Mechanism(nonce_factory=lambda: SERVER_NONCE)


def test_rfc7677_vector():
    mech = mechanism()
    assert not mech.sends_plaintext
    assert mech.start(CLIENT_FIRST) == NeedScramCredentials("user")
    assert mech.scram_credentials(PENCIL) == Challenge(SERVER_FIRST)
    assert mech.step(CLIENT_FINAL) == Verify(ScramVerified("user"))
    assert mech.verified("user") == Success(SERVER_FINAL, "user")


def test_rfc7677_vector_from_the_client_side():
    client = ScramSha256Client("user", "pencil", nonce="rOprNGfwEbeRWgbNEkqO")
    assert client.first() == CLIENT_FIRST
    assert client.final(SERVER_FIRST) == CLIENT_FINAL
    client.check(SERVER_FINAL)
    with pytest.raises(ScramClientError):
        client.check(b"v=" + base64.b64encode(b"\0" * 32))


def test_without_initial_response_challenge_is_empty():
    mech = mechanism()
    assert mech.start(None) == Challenge(b"")
    assert mech.step(CLIENT_FIRST) == NeedScramCredentials("user")


def test_wrong_password_fails_at_proof():
    mech = mechanism()
    mech.start(CLIENT_FIRST)
    mech.scram_credentials(derive_scram_credentials("crayon", PENCIL.salt, 4096))
    assert isinstance(mech.step(CLIENT_FINAL), Failure)


def test_unknown_user_gets_a_plausible_challenge_then_fails():
    mech = mechanism()
    mech.start(b"n,,n=ghost,r=abc")
    step = mech.scram_credentials(None)
    assert isinstance(step, Challenge)
    assert b",s=" + base64.b64encode(fake_credentials("ghost").salt) + b",i=4096" in step.data
    # Even a client that guessed the fake keys cannot get in.
    client = ScramSha256Client("ghost", "anything", nonce="abc")
    assert isinstance(mech.step(client.final(step.data)), Failure)


def test_portal_refusal_after_valid_proof_fails():
    mech = mechanism()
    mech.start(CLIENT_FIRST)
    mech.scram_credentials(PENCIL)
    mech.step(CLIENT_FINAL)
    assert isinstance(mech.verified(None), Failure)


def test_escaped_username_and_matching_authzid():
    client = ScramSha256Client("a,b=c", "pw", gs2_header="y,a=a=2Cb=3Dc,")
    mech = ScramSha256Mechanism()
    assert mech.start(client.first()) == NeedScramCredentials("a,b=c")
    creds = derive_scram_credentials("pw")
    step = mech.step(client.final(mech.scram_credentials(creds).data))
    assert step == Verify(ScramVerified("a,b=c"))
    client.check(mech.verified("a,b=c").server_final)


def test_username_is_nfkc_normalised():
    mech = mechanism()
    assert mech.start("n,,n=\uff41lice,r=x".encode()) == NeedScramCredentials("alice")


@pytest.mark.parametrize(
    "first",
    [
        b"p=tls-unique,,n=user,r=abc",   # channel binding required: refused
        b"x,,n=user,r=abc",              # bad gs2 flag
        b"n,a=other,n=user,r=abc",       # proxy authorization
        b"n,,m=ext,n=user,r=abc",        # mandatory extension
        b"n,,n=us=41er,r=abc",           # bad escape in saslname
        b"n,,n=,r=abc",                  # empty user
        b"n,,r=abc,n=user",              # wrong order
        b"n,,n=user",                    # no nonce
        b"n,,n=\xff,r=abc",              # not UTF-8
        b"n,,n=user,r=a b",              # nonce not printable
    ],
)
def test_bad_client_first_fails(first):
    assert isinstance(mechanism().start(first), Failure)


def final_variants():
    good = CLIENT_FINAL
    nonce = b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
    return [
        good.replace(b"c=biws", b"c=eSws"),          # "y,," but client-first said "n"
        good.replace(nonce, b"r=rOprNGfwEbeRWgbNEkqO"),  # server part of nonce dropped
        good.rsplit(b",p=", 1)[0],                    # no proof
        good[:-8] + b"AAAAAAA=",                      # altered proof
        good.replace(b"p=", b"p=!"),                  # proof not base64
        b"r=x,c=biws,p=AAAA",                         # wrong order
    ]


@pytest.mark.parametrize("final", final_variants())
def test_bad_client_final_fails(final):
    mech = mechanism()
    mech.start(CLIENT_FIRST)
    mech.scram_credentials(PENCIL)
    assert isinstance(mech.step(final), Failure)


def test_state_errors():
    mech = mechanism()
    with pytest.raises(MechanismStateError):
        mech.scram_credentials(PENCIL)
    mech.start(CLIENT_FIRST)
    with pytest.raises(MechanismStateError):
        mech.step(CLIENT_FINAL)
