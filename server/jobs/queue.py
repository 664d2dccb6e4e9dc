"""``JobQueue``: how the API hands a committed job id to the worker.

The default sends the Celery task ``training.run`` by name, so the server imports no worker
code. Tests inject a recording queue through ``create_app(job_queue=...)``."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from xmodel_contracts.names import PREFILL_TASK, TRAINING_TASK

log = logging.getLogger(__name__)


class JobQueue(Protocol):
    def enqueue(self, job_id: int) -> None: ...

    def prefill(self, project_id: int) -> None:
        """Ask a worker to compute the project's cached views ahead of its next job."""

    def depth(self) -> int | None:
        """Messages waiting in the queue, or None when the queue cannot tell."""

    def close(self) -> None: ...


def ensure_broker_dir(broker_url: str) -> None:
    """The embedded broker is a SQLite file: make sure its folder exists."""
    prefix = "sqla+sqlite:///"
    if broker_url.startswith(prefix):
        Path(broker_url[len(prefix) :]).expanduser().parent.mkdir(parents=True, exist_ok=True)


class CeleryJobQueue:
    """Sends ``training.run`` with the job id only; the row holds everything else."""

    task_name = TRAINING_TASK

    def __init__(self, broker_url: str, queue: str = "xmodel") -> None:
        import celery  # imported lazily: building the app should not need a broker

        ensure_broker_dir(broker_url)
        self.queue = queue
        self._app = celery.Celery("xmodel-api", broker=broker_url)
        self._app.conf.broker_connection_retry_on_startup = True

    def enqueue(self, job_id: int) -> None:
        self._app.send_task(self.task_name, args=[job_id], queue=self.queue)

    def prefill(self, project_id: int) -> None:
        # the send time lets a worker skip requests an earlier prefill already covered; no
        # retries: an unreachable broker must not hold up the upload that asked for it
        self._app.send_task(
            PREFILL_TASK, args=[project_id, time.time()], queue=self.queue, retry=False
        )

    def depth(self) -> int | None:
        from amqp.exceptions import ChannelError  # kombu's dependency

        with self._app.connection_for_read() as connection:
            try:
                declared = connection.default_channel.queue_declare(queue=self.queue, passive=True)
            except ChannelError:  # Redis keeps no empty queue until a worker has bound it
                return 0
        return int(declared.message_count)

    def close(self) -> None:
        self._app.close()


class RecordingJobQueue:
    """Keeps the enqueued ids in memory (tests, or running the API without a worker)."""

    def __init__(self) -> None:
        self.enqueued: list[int] = []
        self.prefilled: list[int] = []

    def enqueue(self, job_id: int) -> None:
        self.enqueued.append(job_id)

    def prefill(self, project_id: int) -> None:
        self.prefilled.append(project_id)

    def depth(self) -> int | None:
        return None  # nothing is consumed: a count of sends would mislead

    def close(self) -> None:
        return None


class PrefillThrottle:
    """At most one prefill request per project every ``seconds``, the last one never lost:
    the first request of a quiet project is sent at once, later ones in the window become one
    request sent when it ends (labels arrive one by one; one prefill computes all those given
    since the last). Per API process; the delayed sends run on timer threads."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._last: dict[int, float] = {}
        self._pending: set[int] = set()
        self._lock = threading.Lock()

    def request(self, project_id: int, send: Callable[[], None]) -> None:
        now = time.monotonic()
        with self._lock:
            last = self._last.get(project_id, -math.inf)
            if now - last >= self.seconds:
                if len(self._last) > 10_000:  # forget old projects rather than grow for ever
                    self._last.clear()
                self._last[project_id] = now
            else:
                if project_id not in self._pending:
                    self._pending.add(project_id)
                    timer = threading.Timer(
                        last + self.seconds - now, self._trailing, (project_id, send)
                    )
                    timer.daemon = True
                    timer.start()
                return
        send()

    def _trailing(self, project_id: int, send: Callable[[], None]) -> None:
        with self._lock:
            self._pending.discard(project_id)
            self._last[project_id] = time.monotonic()
        send()


# labels: the worker computes the new labels' weak views while annotators go on labelling
LABEL_PREFILLS = PrefillThrottle(seconds=30.0)
