"""``run_training_job(job_id)``: the whole life of one training job in a worker.

claim (conditional UPDATE) → snapshot the labels → load images → train (heartbeats,
throttled progress, checkpoints under ``<storage>/jobs/<job_id>/``, cancel checked every
step) → save and export the model → create its (inactive) version row → score the pool →
in one transaction: job succeeded (only if still ours) + model activated. A crash anywhere
leaves a row whose lease expires; the reaper requeues it and the next claim resumes from
the checkpoint, reusing the same snapshot and the same model row, so exactly one model and
one score per item result."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
from sqlalchemy.orm import Session, sessionmaker

from server.db.base import utcnow
from server.db.models import ModelVersion
from server.jobs import repository as jobs
from server.models import repository as models
from server.projects import repository as projects
from server.storage import ArtefactStore, ImageStore
from worker import monitoring
from worker.db import session_factory
from worker.errors import JobCancelled, LeaseLost, is_retryable
from worker.settings import WorkerSettings, server_settings, worker_settings
from worker.storage import stores
from worker.training import data, scoring
from worker.training.artefacts import models_prefix, publish_artefacts, write_artefacts
from worker.training.config import JobConfig, worker_job_config
from worker.training.lease import JobLease
from worker.training.memory import release_memory
from worker.training.views import ViewBuilder, builder_for
from xmodel_contracts.files import atomic_write_bytes
from xmodel_contracts.names import JobPhase, JobStatus
from xmodel_contracts.training_defaults import effective_params
from xmodel_core.data import split_train_val
from xmodel_core.export import load_warm_start
from xmodel_core.model import XModel
from xmodel_core.trainer import Progress, Trainer

log = logging.getLogger(__name__)


class RetryableJobError(Exception):
    """An infrastructure error; the job was released (queued) for the Celery retry."""


@dataclass
class Claimed:
    job_id: int
    project_id: int
    params: dict[str, Any]
    attempts: int
    task: dict[str, Any]
    image_size: int
    backbone: str
    warm_start: dict[str, str] | None  # the active model's config / weights keys and sha256s
    warm_version: int | None


def new_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _claim(
    factory: sessionmaker[Session], job_id: int, owner: str, lease_s: float
) -> Claimed | None:
    now = utcnow()
    with factory.begin() as session:
        job = jobs.claim(session, job_id, owner, now, now + timedelta(seconds=lease_s))
        if job is None:
            return None
        project = projects.get(session, job.project_id)
        assert project is not None  # jobs cascade with their project
        active = projects.active_model(session, project.id)
        return Claimed(
            job.id,
            project.id,
            dict(job.params or {}),
            job.attempts,
            dict(project.task),
            project.image_size,
            project.backbone,
            {
                "config": active.config_path,
                "config_sha256": active.config_sha256,
                "weights": active.safetensors_path,
                "weights_sha256": active.safetensors_sha256,
            }
            if active and active.config_path and active.safetensors_path
            else None,
            active.version if active else None,
        )


def run_training_job(job_id: int, *, final_try: bool = True) -> str:
    """Run job ``job_id`` if it can be claimed. Returns the outcome; raises
    :class:`RetryableJobError` after releasing the job when a retry may cure the error
    (unless ``final_try``, where the job fails instead)."""
    settings, ws = server_settings(), worker_settings()
    factory = session_factory()
    owner = new_owner()
    claimed = _claim(factory, job_id, owner, ws.job_lease_seconds)
    if claimed is None:
        log.info("job %s is not claimable (finished, cancelled or held by a live worker)", job_id)
        return "not-claimable"
    if claimed.attempts > ws.max_attempts:
        _end(factory, claimed, owner, JobStatus.FAILED, f"gave up after {ws.max_attempts} attempts")
        return "failed"
    lease = JobLease(
        factory,
        job_id,
        owner,
        lease_seconds=ws.job_lease_seconds,
        heartbeat_seconds=ws.heartbeat_seconds,
        progress_seconds=ws.progress_seconds,
    )
    run = TrainingRun(
        claimed,
        lease,
        factory,
        stores().images,
        stores().artefacts,
        Path(settings.storage_dir),
        ws,
    )
    started, outcome = time.monotonic(), "retrying"  # what a RetryableJobError leaves
    try:
        outcome = _execute(run, factory, claimed, owner, final_try)
        return outcome
    finally:
        monitoring.job_ended(outcome, time.monotonic() - started, run.metrics)
        del run
        release_memory()


def _execute(
    run: TrainingRun, factory: sessionmaker[Session], claimed: Claimed, owner: str, final_try: bool
) -> str:
    """Run the claimed job to its outcome (see :func:`run_training_job`)."""
    job_id, lease = claimed.job_id, run.lease
    try:
        with lease:
            run.execute()
        return "succeeded"
    except LeaseLost:
        log.warning("job %s: lease lost; another worker owns it now", job_id)
        return "lease-lost"
    except JobCancelled:
        if _end(factory, claimed, owner, JobStatus.CANCELLED, None, run.metrics):
            run.cleanup(artefacts=True)
        return "cancelled"
    except Exception as exc:
        message = f"{type(exc).__name__}: {exc}"
        if is_retryable(exc) and not final_try:
            log.warning("job %s: infrastructure error, will retry: %s", job_id, message)
            try:
                with factory.begin() as session:
                    jobs.release(session, job_id, owner, f"retrying after {message}")
            except Exception:  # the lease expires and the reaper requeues it
                log.exception("job %s: could not release the claim", job_id)
            raise RetryableJobError(message) from exc
        log.exception("job %s failed", job_id)
        if _end(factory, claimed, owner, JobStatus.FAILED, message, run.metrics):
            run.cleanup(artefacts=True)
        return "failed"


def _end(
    factory: sessionmaker[Session],
    claimed: Claimed,
    owner: str,
    status: JobStatus,
    error: str | None,
    metrics: dict[str, Any] | None = None,
) -> bool:
    """Finish as failed / cancelled and drop the job's unfinished model row. False when the
    row is no longer ours (or the database did not answer): then touch nothing else."""
    try:
        with factory.begin() as session:
            if not jobs.finish(
                session, claimed.job_id, owner, status, utcnow(), error=error, metrics=metrics
            ):
                return False
            models.delete_inactive_for_job(session, claimed.job_id)
            return True
    except Exception:
        log.exception("job %s: could not record %s", claimed.job_id, status)
        return False


class TrainingRun:
    """The work between claim and finish (see the module docstring)."""

    def __init__(
        self,
        claimed: Claimed,
        lease: JobLease,
        factory: sessionmaker[Session],
        store: ImageStore,
        artefacts: ArtefactStore,
        storage: Path,
        ws: WorkerSettings,
    ) -> None:
        self.c = claimed
        self.lease = lease
        self.factory = factory
        self.store = store
        self.artefacts = artefacts
        self.storage = storage
        self.ws = ws
        # local scratch; the snapshot and checkpoints are mirrored to the artefact store under
        # the same key, so another worker (with its own disk) resumes the same attempt
        self.scratch_key = f"jobs/{claimed.job_id}/"
        self.job_dir = storage / "jobs" / str(claimed.job_id)
        self.out_dir = self.job_dir / "export"
        self.metrics: dict[str, Any] = {"attempt": claimed.attempts}
        self._t0 = time.monotonic()
        self._first_step: int | None = None
        self.builder: ViewBuilder | None = None

    # ---- phases ------------------------------------------------------------------------------
    def execute(self) -> None:
        task = data.core_task(self.c.task)
        params = effective_params(self.c.task["kind"], self.c.backbone, self.c.params)
        self.metrics["settings"] = params  # what this job ran with: defaults, project, request
        cfg = worker_job_config(params, self.c.backbone, self.c.image_size, task, self.ws)
        scoring.check_strategies(cfg.score_strategies, task)  # before training, not after
        self._enter_phase(JobPhase.LOADING, cfg.train.steps)
        snapshot = self._snapshot(cfg)
        cached = cfg.uses_trunk_cache
        labelled = data.labelled_set(
            self.store, task, snapshot.labelled, self.c.image_size, with_images=not cached
        )
        unlabelled = (
            torch.empty(0, 3, self.c.image_size, self.c.image_size, dtype=torch.uint8)
            if cached
            else data.load_images(
                self.store, [r.sha256 for r in snapshot.unlabelled], self.c.image_size
            )
        )
        self.lease.check()
        train_idx, val_idx = (
            split_train_val(len(labelled), cfg.val_fraction, cfg.train.seed)
            if len(labelled) >= 10 and cfg.val_fraction > 0
            else (torch.arange(len(labelled)), torch.empty(0, dtype=torch.long))
        )
        train_set, val_set = labelled.subset(train_idx), labelled.subset(val_idx)
        task.fit(train_set.targets)
        model = self._build_model(cfg)
        trainer = Trainer(model, task, cfg.train)
        self.steps = cfg.train.steps
        self.metrics |= {
            "labelled": len(labelled),
            "train": len(train_set),
            "val": len(val_set),
            "unlabelled_pool": len(snapshot.unlabelled),
            "device": str(trainer.device),
            "trunk_cache": cached,
            "load_seconds": round(time.monotonic() - self._t0, 2),
        }
        training_views = None
        if cached:
            self.builder = builder_for(
                cfg,
                task,
                model,
                trainer.device,
                self.store,
                self.c.image_size,
                self.storage,
                self.ws,
            )
            self._enter_phase(JobPhase.CACHING, len(snapshot.unlabelled) + len(labelled))
            shas = [r.sha256 for r in snapshot.labelled]
            training_views = self.builder.training_views(
                [shas[i] for i in train_idx.tolist()],
                [shas[i] for i in val_idx.tolist()],
                [r.sha256 for r in snapshot.unlabelled],
                consistency=cfg.train.method != "supervised",
                check=lambda done: self.lease.progress(progress_step=done),
            )
            self.metrics |= {
                "cache_seconds": round(self.builder.seconds, 2),
                "cache_hits": self.builder.stats.hits,
                "cache_misses": self.builder.stats.computed,
            }
        self._enter_phase(JobPhase.TRAINING, cfg.train.steps)
        t_train = time.monotonic()
        self._fetch_scratch("checkpoint.pt")
        result = trainer.fit(
            train_set,
            None if cached else unlabelled,
            val_set if len(val_set) else None,
            callback=self._on_step,
            checkpoint_path=self.job_dir / "checkpoint.pt",
            views=training_views,
        )
        del training_views, unlabelled, labelled, train_set  # scoring reads the pool batch by batch
        self.metrics |= {
            "steps_done": result.steps_done,
            "best_step": result.best_step,
            "val_error": result.best_val_error,
            "stopped_early": result.stopped_early,
            "train_seconds": round(time.monotonic() - t_train, 2),
        }
        if len(val_set):
            self.metrics["val_error_final"] = trainer.evaluate(val_set)
        self.lease.progress(force=True, phase=JobPhase.EXPORTING, metrics=self.metrics)
        t_export = time.monotonic()
        model = model.cpu().eval() if trainer.device.type != "cpu" else model.eval()
        files = publish_artefacts(
            self.artefacts,
            self.c.project_id,
            self.c.job_id,
            write_artefacts(
                model,
                task,
                self.out_dir,
                extra={
                    "job_id": self.c.job_id,
                    "project_id": self.c.project_id,
                    "metrics": self.metrics,
                },
            ),
        )
        model_id = self._model_row(files, self.metrics["labelled"])
        self.metrics["export_seconds"] = round(time.monotonic() - t_export, 2)
        self._enter_phase(JobPhase.SCORING, None)
        t_score = time.monotonic()
        model.to(trainer.device)
        pool = scoring.score_pool(
            model,
            task,
            self.factory,
            self.store,
            self.c.project_id,
            size=self.c.image_size,
            views=cfg.score_views,
            batch=self.ws.score_batch,
            seed=cfg.train.seed,
            n_clusters=cfg.clusters,
            extra=cfg.score_strategies,
            check=lambda done, _total: self.lease.progress(progress_step=done),
            views_from=self.builder if cached else None,
        )
        self.metrics |= {
            "score_seconds": round(time.monotonic() - t_score, 2),
            "scored_views": len(pool.item_ids)
            * (1 + cfg.strong_views if cached else cfg.score_views),
        }
        if self.builder is not None:  # each image decoded once a job at most, none fully cached
            self.metrics["images_decoded"] = self.builder.images_decoded
        self.lease.progress(
            force=True,
            phase=JobPhase.WRITING_SCORES,
            progress_step=0,
            progress_total=len(pool.item_ids),
        )
        written = scoring.write_scores(
            self.factory,
            model_id,
            pool,
            self.ws.score_write_batch,
            check=lambda done, _t: self.lease.progress(progress_step=done),
        )
        self.metrics |= {
            "scored": written,
            "clusters": int(pool.clusters.max()) + 1 if written else 0,
            "total_seconds": round(time.monotonic() - self._t0, 2),
        }
        self.lease.progress(force=True, phase=JobPhase.ACTIVATING)
        self._activate(model_id)
        self.cleanup(artefacts=False)

    def _enter_phase(self, phase: JobPhase, total: int | None) -> None:
        """Write the new phase now, its progress at 0 of ``total``, with the metrics so far."""
        self.lease.progress(
            force=True, phase=phase, progress_step=0, progress_total=total, metrics=self.metrics
        )

    def _fetch_scratch(self, name: str) -> None:
        """Bring an earlier attempt's scratch file here (it may have run on another machine)."""
        path = self.job_dir / name
        if not path.exists():
            stored = self.artefacts.get_bytes(self.scratch_key + name)
            if stored is not None:
                atomic_write_bytes(path, stored)

    def _snapshot(self, cfg: JobConfig) -> data.Snapshot:
        path = self.job_dir / "snapshot.json"
        self._fetch_scratch("snapshot.json")
        if path.exists():
            return data.Snapshot.load(path)
        snapshot = data.take_snapshot(
            self.factory, self.c.project_id, self.ws.train_pool_max, cfg.train.seed
        )
        snapshot.save(path)
        self.artefacts.put_file(self.scratch_key + "snapshot.json", path)
        return snapshot

    def _build_model(self, cfg: JobConfig) -> XModel:
        torch.manual_seed(cfg.train.seed)
        model = XModel(cfg.model)
        if self.c.warm_start is not None and cfg.warm_start:
            try:
                warm = self.c.warm_start
                self.artefacts.local_file(warm["weights"], warm["weights_sha256"])
                folder = self.artefacts.local_file(warm["config"], warm["config_sha256"]).parent
                report = load_warm_start(model, folder)
                self.metrics["warm_start_from_version"] = self.c.warm_version
                self.metrics["warm_start_strict"] = report.strict
            except (ValueError, OSError) as exc:  # another architecture: start fresh, say so
                log.warning("job %s: no warm start (%s)", self.c.job_id, exc)
                self.metrics["warm_start_error"] = str(exc)
        return model

    def _on_step(self, progress: Progress) -> None:
        if self._first_step is None:
            self._first_step = progress.step
            self.metrics["resumed_from_step"] = progress.step - 1
            self._t0_steps = time.monotonic()
        done = progress.step - self._first_step + 1
        elapsed = time.monotonic() - self._t0_steps
        rate = done / elapsed if elapsed > 0 else 0.0
        self.metrics |= {
            "loss": round(progress.losses.get("total", float("nan")), 6),
            "steps_per_second": round(rate, 3),
            "eta_seconds": round((progress.total - progress.step) / rate, 1) if rate > 0 else None,
        }
        monitoring.training_step(rate)
        if progress.val_error is not None:
            self.metrics["last_val_error"] = progress.val_error
        if progress.checkpointed:  # another worker can resume from it after a crash
            self.artefacts.put_file(
                self.scratch_key + "checkpoint.pt", self.job_dir / "checkpoint.pt"
            )
        self.lease.progress(
            force=progress.step == progress.total,
            progress_step=progress.step,
            progress_total=progress.total,
            metrics=dict(self.metrics),
        )

    # ---- rows ----------------------------------------------------------------------------------
    def _model_row(self, files: dict[str, dict[str, Any]], labelled: int) -> int:
        """Create the job's model version (inactive), or update the one an earlier attempt made."""
        columns = {
            "labelled_count": labelled,
            "metrics": self.metrics,
            "config_path": files["config"]["key"],
            "config_sha256": files["config"]["sha256"],
            "safetensors_path": files["safetensors"]["key"],
            "safetensors_sha256": files["safetensors"]["sha256"],
            "onnx_path": files["onnx"]["key"],
            "onnx_sha256": files["onnx"]["sha256"],
            "torchscript_path": files["torchscript"]["key"],
            "torchscript_sha256": files["torchscript"]["sha256"],
        }
        with self.factory.begin() as session:
            row = models.for_job(session, self.c.job_id)
            if row is None:
                row = models.add(
                    session,
                    ModelVersion(
                        project_id=self.c.project_id,
                        job_id=self.c.job_id,
                        is_active=False,
                        version=models.next_version(session, self.c.project_id),
                        **columns,
                    ),
                )
            else:
                for key, value in columns.items():
                    setattr(row, key, value)
            session.flush()
            return int(row.id)

    def _activate(self, model_id: int) -> None:
        """One transaction: the job succeeds (only while ours and not cancelled) and its model
        becomes the project's active one."""
        now = utcnow()
        with self.factory.begin() as session:
            # progress back to the training's figures (the scoring phases counted items)
            flag = jobs.heartbeat(
                session,
                self.c.job_id,
                self.lease.owner,
                now,
                now + timedelta(seconds=self.ws.job_lease_seconds),
                progress_step=self.metrics["steps_done"],
                progress_total=self.steps,
            )
            if flag is None:
                raise LeaseLost(f"job {self.c.job_id}: lease lost before activation")
            if flag:
                raise JobCancelled(f"job {self.c.job_id}: cancelled")
            model = models.get(session, model_id)
            assert model is not None
            model.metrics = self.metrics
            if not jobs.finish(
                session,
                self.c.job_id,
                self.lease.owner,
                JobStatus.SUCCEEDED,
                now,
                model_id=model_id,
                metrics=self.metrics,
                phase=JobPhase.DONE,
            ):
                raise LeaseLost(f"job {self.c.job_id}: lease lost before activation")
            models.activate(session, model)

    def cleanup(self, artefacts: bool) -> None:
        """Remove the job's checkpoint folder (and, for a job that will not succeed, its files);
        trim the trunk cache to its budget."""
        shutil.rmtree(self.job_dir, ignore_errors=True)
        try:
            self.artefacts.delete_prefix(self.scratch_key)
            if artefacts:
                self.artefacts.delete_prefix(models_prefix(self.c.project_id, self.c.job_id))
        except Exception:  # leftovers cost space, not correctness; project deletion removes them
            log.exception("job %s: could not remove its stored files", self.c.job_id)
        if self.builder is not None and self.builder.cache is not None:
            self.builder.cache.trim()
