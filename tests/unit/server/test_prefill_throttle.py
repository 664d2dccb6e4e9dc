"""Prefill requests after labels: the first is sent at once, a burst in the window becomes
one more request when the window ends, and none is lost."""

from __future__ import annotations

import time

from server.jobs.queue import PrefillThrottle, RecordingJobQueue, request_prefill


def test_a_burst_of_labels_sends_one_request_now_and_one_when_the_window_ends() -> None:
    queue = RecordingJobQueue()
    throttle = PrefillThrottle(seconds=0.3)
    for _ in range(20):
        request_prefill(queue, 7, throttle)
    request_prefill(queue, 8, throttle)  # another project has its own window
    assert queue.prefilled == [7, 8]
    deadline = time.monotonic() + 10
    while len(queue.prefilled) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # well past the window: nothing more comes
    assert queue.prefilled == [7, 8, 7]


def test_without_a_throttle_every_request_is_sent_and_a_broker_error_is_swallowed() -> None:
    class BrokenQueue(RecordingJobQueue):
        def prefill(self, project_id: int) -> None:
            raise ConnectionError("broker down")

    queue = RecordingJobQueue()
    request_prefill(queue, 3)
    request_prefill(queue, 3)
    assert queue.prefilled == [3, 3]
    request_prefill(BrokenQueue(), 3)  # the upload that asked still succeeds
