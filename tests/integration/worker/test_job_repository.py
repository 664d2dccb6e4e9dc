"""The job row as the source of truth: claim, heartbeat, finish and requeue are conditional
UPDATEs, on SQLite and PostgreSQL alike (no worker process here)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.orm import Session

from server.db.base import utcnow
from server.db.engine import make_engine
from server.db.models import Job, ModelVersion, Project
from server.jobs import repository as jobs
from server.models import repository as models
from xmodel_contracts.names import JobStatus

pytestmark = pytest.mark.integration


@pytest.fixture(params=["sqlite", "postgresql"])
def session(request: pytest.FixtureRequest):
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "postgres_url")
    engine = make_engine(url)
    with Session(engine) as s:
        yield s
        s.rollback()
    engine.dispose()


def _job(session: Session, **values: object) -> Job:
    project = Project(
        name="p",
        task={"kind": "classification", "classes": ["a", "b"]},
        image_size=16,
        backbone="small_cnn",
        training={},
    )
    session.add(project)
    session.flush()
    job = Job(project_id=project.id, kind="train", status="queued", params={}, **values)
    session.add(job)
    session.flush()
    return job


def test_claim_once_then_only_after_lease_expiry(session: Session) -> None:
    now = utcnow()
    job = _job(session)
    assert jobs.claim(session, job.id, "w1", now, now + timedelta(seconds=30)) is not None
    assert jobs.claim(session, job.id, "w2", now, now + timedelta(seconds=30)) is None  # held
    later = now + timedelta(seconds=31)
    claimed = jobs.claim(session, job.id, "w2", later, later + timedelta(seconds=30))
    assert claimed is not None and claimed.lease_owner == "w2" and claimed.attempts == 2
    assert claimed.started_at is not None and claimed.phase == "loading"
    # w1 lost the lease: its heartbeat says so, and it cannot finish the job
    assert jobs.heartbeat(session, job.id, "w1", later, later) is None
    assert not jobs.finish(session, job.id, "w1", JobStatus.SUCCEEDED, later)
    assert (
        jobs.heartbeat(session, job.id, "w2", later, later + timedelta(seconds=30), progress_step=5)
        is False
    )
    assert jobs.finish(session, job.id, "w2", JobStatus.SUCCEEDED, later, model_id=None)
    session.refresh(job)
    assert job.status == "succeeded" and job.progress_step == 5 and job.lease_expires_at is None
    assert jobs.claim(session, job.id, "w3", later + timedelta(hours=1), later) is None


def test_heartbeat_reports_cancel_and_cancelled_jobs_are_not_claimed(session: Session) -> None:
    now = utcnow()
    job = _job(session)
    jobs.claim(session, job.id, "w1", now, now + timedelta(seconds=30))
    assert jobs.request_cancel_if_running(session, job.id)
    assert jobs.heartbeat(session, job.id, "w1", now, now + timedelta(seconds=30)) is True
    queued = _job(session, cancel_requested=True)
    assert jobs.claim(session, queued.id, "w1", now, now) is None


def test_requeue_expired(session: Session) -> None:
    now = utcnow()
    alive, dead, spent, cancelled = (_job(session) for _ in range(4))
    for job, lease in ((alive, 60), (dead, -1), (spent, -1), (cancelled, -1)):
        jobs.claim(session, job.id, "w", now, now + timedelta(seconds=lease))
    spent.attempts = 3
    cancelled.cancel_requested = True
    session.add(
        ModelVersion(
            project_id=spent.project_id,
            version=1,
            job_id=spent.id,
            labelled_count=1,
            metrics={},
            config_path="c",
            config_sha256="x",
            safetensors_path="s",
            safetensors_sha256="x",
            onnx_path="o",
            onnx_sha256="x",
        )
    )
    session.flush()
    result = jobs.requeue_expired(session, now, max_attempts=3)
    for job_id in result.failed:
        models.delete_inactive_for_job(session, job_id)
    assert (
        result.requeued == [dead.id]
        and result.failed == [spent.id]
        and result.cancelled == [cancelled.id]
    )
    for job in (alive, dead, spent, cancelled):
        session.refresh(job)
    assert (alive.status, dead.status, spent.status, cancelled.status) == (
        "running",
        "queued",
        "failed",
        "cancelled",
    )
    assert dead.lease_owner is None and "requeued" in (dead.error or "")
    assert "giving up" in (spent.error or "") and models.for_job(session, spent.id) is None
    assert jobs.requeue_expired(session, now, max_attempts=3).requeued == []  # nothing twice


def test_release_for_retry(session: Session) -> None:
    now = utcnow()
    job = _job(session)
    jobs.claim(session, job.id, "w1", now, now + timedelta(seconds=30))
    assert not jobs.release(session, job.id, "other", "x")
    assert jobs.release(session, job.id, "w1", "retrying after OperationalError")
    session.refresh(job)
    assert job.status == "queued" and job.lease_owner is None
    assert jobs.claim(session, job.id, "w2", now, now + timedelta(seconds=30)) is not None
