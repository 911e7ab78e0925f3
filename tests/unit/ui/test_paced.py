"""PacedQueue: bursts handed to the GUI thread are done in order, a short turn at a time."""

from PySide6.QtCore import QTimer

from resnext_gui.ui.paced import PacedQueue


def test_a_burst_is_handled_in_order_a_turn_at_a_time_with_the_event_loop_running_between(qtbot):
    now = [0.0]
    log: list[object] = []

    def handle(item: int) -> None:
        now[0] += 0.003  # each item takes 3 ms of the 8 ms turn
        log.append(item)

    queue: PacedQueue[int] = PacedQueue(handle, turn_s=0.008, clock=lambda: now[0])
    other = QTimer()  # everything else the window does: it must get turns while the burst is worked off
    other.setInterval(0)
    other.timeout.connect(lambda: log.append("other"))
    for i in range(20):
        queue.put(i)
    other.start()
    try:
        qtbot.waitUntil(lambda: len(queue) == 0)
    finally:
        other.stop()
    items = [x for x in log if x != "other"]
    assert items == list(range(20))
    runs, run = [], 0
    for x in log[log.index(0):log.index(19) + 1]:
        if x == "other":
            runs.append(run) if run else None
            run = 0
        else:
            run += 1
    runs.append(run)
    assert max(runs) == 3 and len(runs) >= 7  # 3 items fit in a turn; the rest waited for the next one


def test_clear_drops_what_waits(qtbot):
    handled: list[int] = []
    queue: PacedQueue[int] = PacedQueue(handled.append, turn_s=0.0)  # one item per turn
    for i in range(5):
        queue.put(i)
    queue.clear()
    queue.put(9)
    qtbot.waitUntil(lambda: handled == [9])
    assert len(queue) == 0
