"""A job whose broker message is lost (queue purged) is re-sent by the reaper and finished by
a real worker, instead of staying queued for ever."""

from __future__ import annotations

from datetime import timedelta

import pytest
import redis
from sqlalchemy import select
from sqlalchemy.orm import Session
from worker_helpers import REDIS_URL, Client, WorkerProcess, finished, purge, worker_env

from server.db.base import utcnow
from server.db.models import Job
from server.jobs import repository as jobs

pytestmark = pytest.mark.integration

TRAINING = {"steps": 4, "batch_size": 4, "unlabelled_batch_size": 4, "eval_every": 4}


def test_purged_message_is_resent_and_the_job_finishes(
    client: Client,
    pg_setup: dict,
    own_workers: list[WorkerProcess],
) -> None:
    project_id, owner, _ = client.project(TRAINING, n_images=8, n_labelled=6)
    job_id = client.train(project_id, owner)  # no worker yet: the message waits in Redis
    queue = pg_setup["queue"]
    connection = redis.Redis.from_url(REDIS_URL)
    assert connection.llen(queue) == 1
    purge(REDIS_URL, queue)  # the broker loses it
    assert connection.llen(queue) == 0
    assert client.job(job_id, owner)["status"] == "queued"
    with Session(client.engine) as session:
        first_sent = session.scalar(select(Job.sent_at).where(Job.id == job_id))
    assert first_sent is not None

    env = worker_env(pg_setup["database_url"], pg_setup["storage"], REDIS_URL, queue)
    process = WorkerProcess(env | {"XM_RESEND_QUEUED_SECONDS": "2"}, pg_setup["logs"]).start()
    own_workers.append(process)
    job = client.wait_job(job_id, owner, finished, timeout=120, worker=process)
    # (a second attempt is possible on a machine so loaded that a heartbeat came late)
    assert job["status"] == "succeeded", job
    # the queue was empty, so only the reaper's re-send can have delivered it: the row says
    # when it sent the message again
    with Session(client.engine) as session:
        sent_again = session.scalar(select(Job.sent_at).where(Job.id == job_id))
    assert sent_again is not None and sent_again > first_sent


def test_one_resend_per_period(client: Client) -> None:
    """Two reapers at once: the conditional UPDATE hands each stale job to one of them."""
    project_id, owner, _ = client.project(TRAINING, n_images=4, n_labelled=4)
    job_id = client.train(project_id, owner)
    now = utcnow()
    with Session(client.engine) as session, session.begin():
        # sent just now: not stale for a 5-minute period
        assert job_id not in jobs.mark_stale_queued_for_resend(
            session, now, now - timedelta(minutes=5)
        )
        assert jobs.mark_stale_queued_for_resend(session, now, now - timedelta(seconds=-1)) == [
            job_id
        ]
        assert jobs.mark_stale_queued_for_resend(session, now, now) == []
        sent_at = session.scalar(select(Job.sent_at).where(Job.id == job_id))
        assert sent_at == now
        jobs.cancel_if_queued(session, job_id, now)  # leave no job for later tests
