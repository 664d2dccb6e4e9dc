"""Celery tasks: thin, named, ids only. The work lives in ``worker.training.runner``."""

from __future__ import annotations

import logging

from worker import preload  # noqa: F401  (connects the process-start preload)
from worker.app import app
from worker.settings import worker_settings
from xmodel_contracts.names import PREFILL_TASK, TRAINING_TASK

log = logging.getLogger(__name__)


@app.task(name=TRAINING_TASK, bind=True, max_retries=worker_settings().max_retries)
def run_training(self, job_id: int) -> str:
    """Train, export, score and activate a model for job ``job_id`` (see the runner)."""
    from worker.training.runner import RetryableJobError, run_training_job  # torch: only here

    final_try = self.request.retries >= self.max_retries
    try:
        return run_training_job(int(job_id), final_try=final_try)
    except RetryableJobError as exc:
        countdown = worker_settings().retry_backoff_seconds * 2**self.request.retries
        raise self.retry(exc=exc, countdown=countdown) from exc


@app.task(name=PREFILL_TASK)
def prefill_views(project_id: int, requested_at: float | None = None) -> str:
    """Compute the project's missing cached views ahead of its next job (best effort)."""
    from worker.training.prefill import prefill_project  # torch: only here

    try:
        report = prefill_project(int(project_id), requested_at)
    except Exception:  # the next job computes whatever is missing
        log.exception("project %s: prefill failed", project_id)
        return "failed"
    return "skipped" if report is None else "done"
