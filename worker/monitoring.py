"""Prometheus metrics of one worker process, served on ``XM_WORKER_METRICS_PORT``.

The solo pool runs every task in the process that serves the port, so one registry sees
everything (run one worker process per container or GPU, as advised in ``worker/app.py``).
Figures: training steps and their rate, scored images and their rate, job durations by
outcome."""

from __future__ import annotations

import logging
from typing import Any

from prometheus_client import Counter, Gauge, Histogram, start_http_server

log = logging.getLogger(__name__)

TRAINING_STEPS = Counter("xmodel_worker_training_steps", "Training steps run by this worker")
TRAINING_RATE = Gauge(
    "xmodel_worker_training_steps_per_second", "Training speed of the current or last job"
)
SCORED_IMAGES = Counter("xmodel_worker_scored_images", "Pool images scored by this worker")
SCORING_RATE = Gauge(
    "xmodel_worker_scoring_images_per_second", "Scoring speed of the last job (images/s)"
)
JOB_SECONDS = Histogram(
    "xmodel_worker_job_duration_seconds",
    "Wall time of one attempt at a job, by outcome",
    ["outcome"],
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400),
)


def serve(port: int, addr: str) -> None:
    start_http_server(port, addr=addr)
    log.info("worker metrics on http://%s:%s/metrics", addr, port)


def training_step(rate: float) -> None:
    TRAINING_STEPS.inc()
    TRAINING_RATE.set(rate)


def job_ended(outcome: str, seconds: float, metrics: dict[str, Any]) -> None:
    JOB_SECONDS.labels(outcome).observe(seconds)
    scored, score_seconds = metrics.get("scored"), metrics.get("score_seconds")
    if scored:
        SCORED_IMAGES.inc(scored)
        if score_seconds:
            SCORING_RATE.set(scored / score_seconds)
