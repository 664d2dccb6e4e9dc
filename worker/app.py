"""The Celery app: ``celery -A worker.app worker``.

Broker: ``XM_BROKER_URL`` (the server's setting, so both sides agree): ``redis://...`` for a
distributed setup, or the embedded default ``sqla+sqlite:///./var/broker.sqlite`` (kombu's
SQLAlchemy transport on a SQLite file: no broker server). Queue: ``XM_BROKER_QUEUE``. No
result backend: the job row is the source of truth. Torch is imported only inside tasks, so
a forking parent never touches CUDA; run one training process per GPU
(``--pool=solo --concurrency=1``, or prefork with ``--max-tasks-per-child=1``)."""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery, signals

from server.jobs.queue import ensure_broker_dir
from worker.settings import server_settings, worker_settings
from xmodel_contracts.names import TRAINING_TASK

log = logging.getLogger(__name__)


def make_app() -> Celery:
    settings = server_settings()
    ensure_broker_dir(settings.broker_url)
    application = Celery("xmodel-worker", broker=settings.broker_url, include=["worker.tasks"])
    application.conf.update(
        task_default_queue=settings.broker_queue,
        task_ignore_result=True,
        result_backend=None,
        worker_prefetch_multiplier=1,  # a training job is long: take one at a time
        task_acks_late=False,  # recovery is the reaper's job (lease + conditional claim), not redelivery
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
    )
    if settings.broker_url.startswith("sqla+"):
        # kombu hands these options to create_engine: wait for SQLite's write lock rather
        # than fail. The virtual transport has no fan-out across processes, so remote control
        # (celery inspect) is off in the embedded mode. It polls the queue once a second.
        application.conf.broker_transport_options = {"connect_args": {"timeout": 30}}
        application.conf.worker_enable_remote_control = False
    return application


app = make_app()


def send_training(job_id: int) -> None:
    app.send_task(TRAINING_TASK, args=[job_id], queue=server_settings().broker_queue)


_reaper: Any = None


@signals.worker_ready.connect
def _start_metrics(**_: Any) -> None:
    ws = worker_settings()
    if ws.worker_metrics_port:
        from worker.monitoring import serve

        serve(ws.worker_metrics_port, ws.worker_metrics_addr)


@signals.worker_ready.connect
def _start_reaper(**_: Any) -> None:
    global _reaper
    period = worker_settings().reap_seconds
    if period > 0:
        from worker.reaper import ReaperTimer

        _reaper = ReaperTimer(period, send_training)
        _reaper.start()


@signals.worker_shutdown.connect
def _stop_reaper(**_: Any) -> None:
    if _reaper is not None:
        _reaper.stop()
