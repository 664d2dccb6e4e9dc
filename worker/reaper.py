"""The reaper: requeue jobs whose worker died (lease expired), fail them after too many
attempts, and re-send the message of a job left queued too long (the broker lost it). Runs on
a small timer inside every worker process's parent, which never imports torch. Safe to run
anywhere, any number of times: each
row moves with a conditional UPDATE."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import timedelta

from server.db.base import utcnow
from server.jobs import repository as jobs
from server.models import repository as models
from worker.db import session_factory
from worker.settings import worker_settings

log = logging.getLogger(__name__)


def reap_once(send: Callable[[int], None]) -> jobs.ReapResult:
    """One pass; ``send(job_id)`` enqueues ``training.run`` for each requeued job, after commit."""
    factory = session_factory()
    ws = worker_settings()
    now = utcnow()
    with factory.begin() as session:
        result = jobs.requeue_expired(session, now, max_attempts=ws.max_attempts)
        for job_id in result.failed + result.cancelled:
            models.delete_inactive_for_job(session, job_id)
        if ws.resend_queued_seconds > 0:
            older_than = now - timedelta(seconds=ws.resend_queued_seconds)
            result.resent = jobs.mark_stale_queued_for_resend(session, now, older_than)
    for job_id in result.requeued + result.resent:
        send(job_id)
    if result.requeued or result.failed or result.cancelled or result.resent:
        log.warning(
            "reaper: requeued %s, failed %s, cancelled %s, re-sent (message lost?) %s",
            result.requeued,
            result.failed,
            result.cancelled,
            result.resent,
        )
    return result


class ReaperTimer:
    """Calls :func:`reap_once` every ``period`` seconds on a daemon thread (first at start)."""

    def __init__(self, period: float, send: Callable[[int], None]) -> None:
        self.period = period
        self.send = send
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="reaper", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while True:
            try:
                reap_once(self.send)
            except Exception:  # keep reaping; the database may be back next time
                log.exception("reaper pass failed")
            if self._stop.wait(self.period):
                return
