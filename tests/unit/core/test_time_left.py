"""The time a long computation has left (core/time_left.py), on a clock the test moves."""

import pytest

from resnext_gui.core.time_left import TimeLeft, say_time_left


def test_the_rate_is_taken_from_the_steps_not_from_what_came_before_them():
    now = [100.0]
    left = TimeLeft(lambda: now[0])
    now[0] += 30.0  # the activations' pass, before the first step: not a step
    assert left.update(16, 2048) is None  # one update shows no rate yet
    now[0] += 2.0
    assert left.update(32, 2048) == pytest.approx(2.0 / 16 * 2016)
    now[0] += 6.0  # slower now: the rate is the mean since the first step
    assert left.update(48, 2048) == pytest.approx(8.0 / 32 * 2000)
    assert left.update(8, 512) is None  # a new computation (fewer done than at the start): measured afresh


@pytest.mark.parametrize("seconds, words", [
    (None, ""), (3, "a few seconds left"), (12, "about 10 s left"), (47, "about 45 s left"), (58, "about 1 min left"),
    (172, "about 3 min left"), (3600, "about 1 h left"), (4500, "about 1 h 15 min left"),
])
def test_time_left_in_words(seconds, words):
    assert say_time_left(seconds) == words
