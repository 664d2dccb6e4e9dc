"""``JobQueue``: how the API hands a committed job id to the worker.

The default sends the Celery task ``training.run`` by name, so the server imports no worker
code. Tests inject a recording queue through ``create_app(job_queue=...)``."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from xmodel_contracts.names import TRAINING_TASK


class JobQueue(Protocol):
    def enqueue(self, job_id: int) -> None: ...

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

    def enqueue(self, job_id: int) -> None:
        self.enqueued.append(job_id)

    def depth(self) -> int | None:
        return None  # nothing is consumed: a count of sends would mislead

    def close(self) -> None:
        return None
