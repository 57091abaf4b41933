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
