"""FailureThrottle with a fake clock, and the fail2ban log line."""

from twisted.internet.task import Clock
from twisted.logger import globalLogPublisher

from twisted_mailhub.auth.throttle import FailureThrottle, log_auth_failure


def test_no_delay_without_failures():
    assert FailureThrottle(Clock()).delay_for("192.0.2.1") == 0


def test_delay_doubles_per_failure_up_to_the_cap():
    throttle = FailureThrottle(Clock(), base_delay=1.0, max_delay=30.0)
    delays = []
    for _ in range(8):
        throttle.record_failure("192.0.2.1")
        delays.append(throttle.delay_for("192.0.2.1"))
    assert delays == [1, 2, 4, 8, 16, 30, 30, 30]
    assert throttle.delay_for("192.0.2.2") == 0


def test_success_clears_the_address():
    throttle = FailureThrottle(Clock())
    throttle.record_failure("a")
    throttle.record_failure("a")
    throttle.record_success("a")
    assert throttle.delay_for("a") == 0
    throttle.record_failure("a")
    assert throttle.delay_for("a") == 1


def test_failures_expire():
    clock = Clock()
    throttle = FailureThrottle(clock, forget_after=600)
    throttle.record_failure("a")
    throttle.record_failure("a")
    clock.advance(599)
    assert throttle.delay_for("a") == 2
    throttle.record_failure("a")  # a new failure restarts the window
    clock.advance(599)
    assert throttle.delay_for("a") == 4
    clock.advance(1)
    assert throttle.delay_for("a") == 0


def test_expired_entries_are_swept_from_memory():
    clock = Clock()
    throttle = FailureThrottle(clock, forget_after=60)
    for i in range(100):
        throttle.record_failure(f"198.51.100.{i}")
    assert len(throttle) == 100
    clock.advance(61)
    throttle.record_failure("203.0.113.9")
    assert len(throttle) == 1


def test_long_streak_does_not_overflow():
    throttle = FailureThrottle(Clock(), max_delay=30.0)
    for _ in range(5000):
        throttle.record_failure("a")
    assert throttle.delay_for("a") == 30.0


def test_log_line_for_fail2ban():
    events = []
    globalLogPublisher.addObserver(events.append)
    try:
        line = log_auth_failure("alice", "127.0.0.1", "imap", "PLAIN")
    finally:
        globalLogPublisher.removeObserver(events.append)
    assert line == "authentication failed: user=<alice> rip=127.0.0.1 proto=imap mech=PLAIN"
    assert any(e.get("line") == line for e in events)


def test_log_line_neutralises_hostile_user_names():
    line = log_auth_failure(b"x> rip=10.0.0.1\nauthentication failed: user=<y", "192.0.2.7",
                            "pop3", "USER")
    assert "\n" not in line
    assert line.count(" rip=") == 1 and line.count(">") == 1
    assert line.endswith("rip=192.0.2.7 proto=pop3 mech=USER")


# -- attempts in flight: a burst is slowed like a sequence ----------------------


def _burst(throttle, clock, address, count, fail=True):
    """Start C{count} attempts from C{address} at once; return (admission times, deferreds)."""
    from twisted.internet.defer import ensureDeferred

    admitted = []

    async def attempt(i):
        async with throttle.attempt(address):
            admitted.append((i, clock.seconds()))
            if fail:
                throttle.record_failure(address)
            else:
                throttle.record_success(address)

    return admitted, [ensureDeferred(attempt(i)) for i in range(count)]


def _run_until_done(clock, deferreds, step=0.5, limit=10_000):
    for _ in range(limit):
        if all(d.called for d in deferreds):
            return
        clock.advance(step)
    raise AssertionError("attempts still pending")


def _sequence_times(count):
    """When each of C{count} failing attempts, made one after another, is let through."""
    from twisted.internet.defer import ensureDeferred

    clock = Clock()
    throttle = FailureThrottle(clock, base_delay=1.0, max_delay=30.0)
    times = []
    for _ in range(count):
        admitted, [d] = _burst(throttle, clock, "192.0.2.1", 1)
        _run_until_done(clock, [d])
        times.extend(t for _, t in admitted)
    return times


def test_simultaneous_attempts_are_taken_one_at_a_time_in_order():
    clock = Clock()
    throttle = FailureThrottle(clock, base_delay=1.0, max_delay=30.0)
    admitted, deferreds = _burst(throttle, clock, "192.0.2.1", 8)
    # Only the first is let through; the others wait for their turn.
    assert admitted == [(0, 0.0)]
    assert throttle.pending("192.0.2.1") == 7
    _run_until_done(clock, deferreds)
    assert [i for i, _ in admitted] == list(range(8))
    assert [t for _, t in admitted] == [0, 1, 3, 7, 15, 31, 61, 91]
    assert throttle.pending("192.0.2.1") == 0


def test_a_burst_is_throttled_exactly_like_a_sequence():
    clock = Clock()
    throttle = FailureThrottle(clock, base_delay=1.0, max_delay=30.0)
    admitted, deferreds = _burst(throttle, clock, "192.0.2.1", 12)
    _run_until_done(clock, deferreds)
    assert [t for _, t in admitted] == _sequence_times(12)


def test_another_address_does_not_wait_behind_a_burst():
    clock = Clock()
    throttle = FailureThrottle(clock, base_delay=1.0, max_delay=30.0)
    flood, flood_deferreds = _burst(throttle, clock, "192.0.2.1", 20)
    clock.advance(5)
    user, [d] = _burst(throttle, clock, "198.51.100.7", 1, fail=False)
    assert user == [(0, 5.0)] and d.called
    assert throttle.pending("192.0.2.1") > 10
    _run_until_done(clock, flood_deferreds)


def test_a_success_ends_the_delay_for_the_attempts_behind_it():
    clock = Clock()
    throttle = FailureThrottle(clock, base_delay=1.0, max_delay=30.0)
    for _ in range(3):
        throttle.record_failure("a")
    admitted, deferreds = _burst(throttle, clock, "a", 2, fail=False)
    assert admitted == []  # the first waits out the 4 s the failures earned
    clock.advance(4)
    # The first succeeded, so the second is let through at once.
    assert admitted == [(0, 4.0), (1, 4.0)]
    assert all(d.called for d in deferreds)


def test_cancelled_waiting_attempt_gives_up_its_place_and_leaves_nothing_behind():
    from twisted.internet.defer import CancelledError

    clock = Clock()
    throttle = FailureThrottle(clock, base_delay=1.0, max_delay=30.0)
    admitted, deferreds = _burst(throttle, clock, "a", 4)
    # 0 is done, 1 waits out its delay, 2 and 3 wait for their turn.
    assert throttle.pending("a") == 3
    deferreds[2].cancel()
    failures = []
    deferreds[2].addErrback(lambda f: failures.append(f.check(CancelledError)))
    assert failures == [CancelledError]
    assert throttle.pending("a") == 2
    _run_until_done(clock, [deferreds[0], deferreds[1], deferreds[3]])
    assert [i for i, _ in admitted] == [0, 1, 3]
    # The last waited out two failures (2 s after the second), not three.
    assert [t for _, t in admitted] == [0, 1, 3]
    assert throttle.pending("a") == 0 and throttle._turns == {}


def test_an_error_in_an_attempt_passes_the_turn_on():
    from twisted.internet.defer import ensureDeferred

    clock = Clock()
    throttle = FailureThrottle(clock)

    async def broken():
        async with throttle.attempt("a"):
            raise ConnectionError("store down")

    failed = ensureDeferred(broken())
    errors = []
    failed.addErrback(lambda f: errors.append(f.check(ConnectionError)))
    admitted, [d] = _burst(throttle, clock, "a", 1)
    assert errors == [ConnectionError] and admitted == [(0, 0.0)] and d.called


def test_attempts_from_an_address_that_failed_are_marked_suspect():
    from twisted.internet.defer import ensureDeferred

    from twisted_mailhub.auth.verifier import SUSPECT

    clock = Clock()
    throttle = FailureThrottle(clock)
    marks = []

    async def attempt(address):
        async with throttle.attempt(address):
            marks.append((address, SUSPECT.get()))
            throttle.record_failure(address)

    ensureDeferred(attempt("a"))
    ensureDeferred(attempt("a"))
    clock.advance(1)
    ensureDeferred(attempt("b"))
    assert marks == [("a", False), ("a", True), ("b", False)]
    assert SUSPECT.get() is False
