"""Worker knobs, read from the environment with the same ``XM_`` prefix as the server's.

The worker reads the server's :class:`server.settings.Settings` too (database, storage,
broker URL and queue), so one environment configures both processes."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from server.settings import Settings


class WorkerSettings(BaseSettings):
    """Every field can be set as ``XM_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="XM_", env_file=None, extra="ignore")

    job_lease_seconds: float = Field(
        default=60.0, gt=0
    )  # a job whose heartbeat stops this long is requeued
    heartbeat_seconds: float = Field(default=10.0, gt=0)
    progress_seconds: float = Field(
        default=1.0, ge=0
    )  # at most one progress write per this many seconds
    checkpoint_every: int = Field(default=50, ge=0)  # steps; a job's params may override
    # ...but a checkpoint (saved locally and copied to the artefact store) is written at most
    # once per this many seconds: a fast job does not upload a full one every few seconds
    checkpoint_min_seconds: float = Field(default=20.0, ge=0)
    max_attempts: int = Field(
        default=3, ge=1
    )  # claims of one job (crashes) before it fails for good
    max_retries: int = Field(default=3, ge=0)  # Celery retries after an infrastructure error
    retry_backoff_seconds: float = Field(default=5.0, ge=0)
    reap_seconds: float = Field(default=30.0, ge=0)  # the in-worker reaper's period; 0 turns it off
    # a job still queued this long after its message was sent is sent again (the broker may
    # have lost it); 0 turns re-sending off. Longer than a busy queue's usual wait.
    resend_queued_seconds: float = Field(default=300.0, ge=0)
    score_batch: int = Field(default=256, gt=0)  # images on the device at once while scoring
    score_write_batch: int = Field(default=1000, gt=0)  # score rows per transaction
    train_pool_max: int = Field(
        default=50_000, gt=0
    )  # unlabelled images held for the consistency loss
    score_views: int = Field(default=4, ge=1)  # views per image for the xmodel disagreement score
    device: str = "auto"  # "auto" picks CUDA when present
    # frozen-trunk activations of each image's views (worker/training/views.py), reused by
    # later jobs; a cache local to the worker, trimmed to this budget after every job
    trunk_cache_dir: str | None = None  # default <storage>/cache/trunk
    trunk_cache_mb: int = Field(default=2048, ge=0)  # 0 keeps views in memory for one job only
    # compute a project's views after each upload, so its next job finds them (prefill.py)
    prefill_views: bool = True
    # Prometheus metrics of this worker on http://<addr>:<port>/metrics (monitoring.py); off
    # when no port is set
    worker_metrics_port: int | None = Field(default=None, ge=1, le=65535)
    worker_metrics_addr: str = "0.0.0.0"
    # load torch and onnxruntime when the worker process starts (preload.py)
    worker_preload: bool = True


@lru_cache(maxsize=1)
def server_settings() -> Settings:
    return Settings()


@lru_cache(maxsize=1)
def worker_settings() -> WorkerSettings:
    settings = WorkerSettings()
    if settings.heartbeat_seconds >= settings.job_lease_seconds:
        raise ValueError("XM_HEARTBEAT_SECONDS must be shorter than XM_JOB_LEASE_SECONDS")
    return settings
