"""Prefill requests: after labels the first is sent at once and a burst in the window becomes
one more request when the window ends (none lost); only projects whose jobs use cached views
ask; a broker error never reaches the request that asked."""

from __future__ import annotations

import time

from server.db.models import Project
from server.jobs.queue import PrefillThrottle, RecordingJobQueue
from server.jobs.service import prefill_sender


def project(project_id: int, backbone: str = "mobilenet_v2", **training: object) -> Project:
    return Project(
        id=project_id,
        task={"kind": "regression", "targets": ["age"]},
        backbone=backbone,
        training=dict(training),
    )


def test_a_burst_of_labels_sends_one_request_now_and_one_when_the_window_ends() -> None:
    queue = RecordingJobQueue()
    throttle = PrefillThrottle(seconds=0.3)
    for _ in range(20):
        send = prefill_sender(queue, project(7), throttle)
        assert send is not None
        send()
    other = prefill_sender(queue, project(8), throttle)  # another project has its own window
    assert other is not None
    other()
    assert queue.prefilled == [7, 8]
    deadline = time.monotonic() + 10
    while len(queue.prefilled) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # well past the window: nothing more comes
    assert queue.prefilled == [7, 8, 7]


def test_only_projects_that_cache_views_ask_and_a_broker_error_is_swallowed() -> None:
    class BrokenQueue(RecordingJobQueue):
        def prefill(self, project_id: int) -> None:
            raise ConnectionError("broker down")

    queue = RecordingJobQueue()
    assert prefill_sender(queue, project(1, backbone="small_cnn")) is None  # nothing frozen
    assert prefill_sender(queue, project(2, trunk_cache=False)) is None
    assert prefill_sender(queue, project(3, backbone="small_cnn", freeze_blocks=4)) is not None
    send = prefill_sender(queue, project(4))
    assert send is not None
    send()
    send()
    assert queue.prefilled == [4, 4]
    broken = prefill_sender(BrokenQueue(), project(5))
    assert broken is not None
    broken()  # the upload that asked still succeeds
