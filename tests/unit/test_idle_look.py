"""When the capture loop looks at the ring buffer on its own: every WAKEUP_MS while records flow,
every idle_look_ms after a quiet second (times given, no sleeping)."""

from __future__ import annotations

from sidecar.capture.loop import IdleLook


def test_looks_often_while_records_flow_and_seldom_after_a_quiet_spell():
    """Records within the last second keep the short look; a second without any lengthens it,
    and the first poll that delivers a record shortens it again at once."""
    look = IdleLook(busy_ms=10, idle_ms=100, after_s=1.0, now=0.0)
    assert look.timeout_ms(0.5) == 10
    look.saw(0, 0.5)
    assert look.timeout_ms(0.99) == 10
    assert look.timeout_ms(1.0) == 100
    look.saw(3, 1.2)
    assert look.timeout_ms(1.2) == 10
    assert look.timeout_ms(2.19) == 10
    assert look.timeout_ms(2.2) == 100


def test_a_reader_that_cannot_count_records_never_slows_down():
    """bcc's reader returns None instead of a count: the loop keeps looking every WAKEUP_MS."""
    look = IdleLook(busy_ms=10, idle_ms=100, after_s=1.0, now=0.0)
    for t in range(1, 10):
        look.saw(None, float(t))
        assert look.timeout_ms(t + 0.5) == 10


def test_idle_look_is_never_shorter_than_the_busy_one():
    """A configured idle look below WAKEUP_MS would make idle looks more frequent: it is raised."""
    look = IdleLook(busy_ms=10, idle_ms=5, after_s=1.0, now=0.0)
    assert look.timeout_ms(5.0) == 10
