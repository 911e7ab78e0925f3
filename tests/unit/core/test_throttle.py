"""The shared progress throttle (resnext_gui/throttle.py), on an injected clock."""

from resnext_gui.core.throttle import throttled


def test_the_first_update_then_one_per_interval_and_always_the_last():
    now = [100.0]
    seen = []
    progress = throttled(lambda d, t: seen.append(d), every_s=0.25, clock=lambda: now[0])
    for done in range(1, 11):
        progress(done, 10)
        now[0] += 0.0625  # four updates per interval (exact in binary)
    assert seen == [1, 5, 9, 10]


def test_a_clock_starting_at_zero_still_passes_the_first_update():
    seen = []
    progress = throttled(lambda d, t: seen.append((d, t)), every_s=1.0, clock=lambda: 0.0)
    progress(0, 0)
    progress(1, 5)
    assert seen == [(0, 0)]  # 0 of 0 is also "the last"; then nothing until the interval passes
