"""Search keys in the store's vocabulary: walking a key's tree."""

from twisted_mailhub import criteria as K
from twisted_mailhub.ranges import SequenceSet


def is_all(key) -> bool:
    return isinstance(key, K.All)


def test_any_key_looks_inside_not_or_and_lists():
    assert K.any_key(K.All(), is_all)
    assert K.any_key(K.Not(K.All()), is_all)
    assert K.any_key(K.Or(K.Recent(), K.Not(K.All())), is_all)
    assert K.any_key(K.And((K.Recent(), K.Or(K.New(), K.And((K.All(),))))), is_all)


def test_any_key_is_false_when_no_key_matches():
    assert not K.any_key(K.And((K.Recent(), K.Or(K.New(), K.Not(K.Recent())))), is_all)
    assert not K.any_key(K.And(()), is_all)


def test_the_outer_key_is_tested_too():
    numbers = K.Sequence(SequenceSet.parse("1:3"))
    assert K.any_key(K.Not(numbers), lambda k: isinstance(k, K.Not))
    assert K.any_key(K.Not(numbers), lambda k: isinstance(k, K.Sequence))
