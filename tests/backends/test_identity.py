"""The UIDVALIDITY the file stores hand out after the last one."""

from twisted_mailhub.backends.identity import MAX_UID, fresh_uidvalidity


def test_the_clock_unless_it_is_behind_the_last_value():
    assert fresh_uidvalidity(0, 1_700_000_000.7) == 1_700_000_000
    assert fresh_uidvalidity(1_700_000_000, 1_700_000_000.7) == 1_700_000_001
    assert fresh_uidvalidity(1_800_000_000, 1_700_000_000.0) == 1_800_000_001


def test_one_again_after_the_largest():
    assert fresh_uidvalidity(MAX_UID - 1, 0.0) == MAX_UID
    assert fresh_uidvalidity(MAX_UID, 0.0) == 1
