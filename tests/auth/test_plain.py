"""The PLAIN and LOGIN mechanisms as sans-IO state machines."""

import pytest
from twisted.cred.credentials import IUsernamePassword

from twisted_mailhub.auth.plain import LoginMechanism, PlainMechanism
from twisted_mailhub.auth.steps import Challenge, Failure, MechanismStateError, Success, Verify


def verify_of(step):
    assert isinstance(step, Verify), step
    assert IUsernamePassword.providedBy(step.credentials)
    return step.credentials.username, step.credentials.password


def test_plain_with_initial_response():
    mech = PlainMechanism()
    assert mech.sends_plaintext and mech.name == "PLAIN"
    assert verify_of(mech.start(b"\0alice\0s\xc3\xa9cret")) == ("alice", "sécret")
    assert mech.verified("alice") == Success(None, "alice")


def test_plain_without_initial_response_sends_empty_challenge():
    mech = PlainMechanism()
    assert mech.start(None) == Challenge(b"")
    assert verify_of(mech.step(b"alice\0alice\0pw")) == ("alice", "pw")


def test_plain_refused_by_portal():
    mech = PlainMechanism()
    mech.start(b"\0alice\0pw")
    assert isinstance(mech.verified(None), Failure)


@pytest.mark.parametrize(
    "message",
    [
        b"",                      # IMAP "=": present but empty
        b"alice\0pw",             # two fields
        b"\0alice\0pw\0extra",    # four fields
        b"\0\0pw",                # empty authcid
        b"\0alice\0",             # empty password
        b"\0al\xffce\0pw",        # not UTF-8
        b"bob\0alice\0pw",        # authzid differs: no proxy authentication
    ],
)
def test_plain_bad_messages_fail(message):
    assert isinstance(PlainMechanism().start(message), Failure)


def test_plain_misuse_is_a_state_error():
    mech = PlainMechanism()
    with pytest.raises(MechanismStateError):
        mech.step(b"\0a\0b")
    mech.start(b"\0a\0b")
    with pytest.raises(MechanismStateError):
        mech.start(b"\0a\0b")


def test_login_prompts_for_username_then_password():
    mech = LoginMechanism()
    assert mech.sends_plaintext and mech.name == "LOGIN"
    assert mech.start(None) == Challenge(b"Username:")
    assert mech.step(b"alice") == Challenge(b"Password:")
    assert verify_of(mech.step(b"pw")) == ("alice", "pw")
    assert mech.verified("alice") == Success(None, "alice")


def test_login_initial_response_is_the_username():
    mech = LoginMechanism()
    assert mech.start(b"alice") == Challenge(b"Password:")
    assert verify_of(mech.step(b"pw")) == ("alice", "pw")


@pytest.mark.parametrize("username, password", [(b"", b"pw"), (b"alice", b""),
                                                (b"\xff", b"pw"), (b"a\0b", b"pw")])
def test_login_bad_input_fails(username, password):
    mech = LoginMechanism()
    mech.start(None)
    step = mech.step(username)
    if isinstance(step, Challenge):
        step = mech.step(password)
    assert isinstance(step, Failure)
