"""Two real worker processes that share only PostgreSQL, Redis and the S3 store (each its own
working folder), several projects training at once, one job per project at a time. One
worker is SIGKILLed mid-job; the other finishes that job from the checkpoint it left in the
bucket. No job is lost and none runs twice to completion."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from s3_test_server import S3Server
from sqlalchemy import select
from worker_helpers import Client, WorkerProcess, finished, make_client, worker_env

from server.db.models import Job
from server.storage.s3 import S3Objects

pytestmark = pytest.mark.integration

TRAINING = {"steps": 100, "batch_size": 8, "unlabelled_batch_size": 8, "eval_every": 50}
N_PROJECTS = 3


@pytest.fixture(scope="module")
def fleet(
    pg_setup: dict,
    s3_server: S3Server,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Client, list[WorkerProcess], S3Objects, list[Path]]]:
    bucket = f"xm-fleet-{pg_setup['queue'][-8:]}"
    objects = S3Objects.connect(
        s3_server.endpoint_url,
        bucket,
        access_key_id=s3_server.access_key_id,
        secret_access_key=s3_server.secret_access_key,
    )
    folders = [tmp_path_factory.mktemp(f"worker{i}-local") for i in range(2)]
    workers = []
    for i, folder in enumerate(folders):
        logs = pg_setup["logs"] / f"fleet-worker{i}"
        logs.mkdir()
        env = worker_env(
            pg_setup["database_url"], folder, pg_setup["broker_url"], pg_setup["queue"]
        ) | s3_server.env(bucket)
        # a message the killed worker had reserved but not started is re-sent, not lost
        env["XM_RESEND_QUEUED_SECONDS"] = "5"
        workers.append(WorkerProcess(env, logs).launch())
    for process in workers:  # started together: each loads torch on its own core
        process.wait_ready()
    clients = make_client(
        pg_setup["database_url"],
        tmp_path_factory.mktemp("api-local"),
        pg_setup["broker_url"],
        pg_setup["queue"],
        **s3_server.settings(bucket),
    )
    yield next(clients), workers, objects, folders
    for process in workers:
        process.stop()
    clients.close()


def _owner_pid(client: Client, job_id: int) -> int | None:
    with client.engine.connect() as connection:
        owner = connection.scalar(select(Job.lease_owner).where(Job.id == job_id))
    return int(owner.split(":")[1]) if owner else None


def test_two_workers_one_killed_mid_job(
    fleet: tuple[Client, list[WorkerProcess], S3Objects, list[Path]],
) -> None:
    client, workers, objects, folders = fleet
    projects = [client.project(TRAINING, n_images=16, n_labelled=8) for _ in range(N_PROJECTS)]
    jobs = {project_id: client.train(project_id, owner) for project_id, owner, _ in projects}
    owners = {project_id: owner for project_id, owner, _ in projects}

    # both workers busy at once, each on its own project
    deadline = time.monotonic() + 120
    running: dict[int, int] = {}
    while time.monotonic() < deadline:
        running = {p: j for p, j in jobs.items() if client.job(j, owners[p])["status"] == "running"}
        if len(running) == 2:
            break
        time.sleep(0.2)
    assert len(running) == 2, [client.job(j, owners[p]) for p, j in jobs.items()]
    pids = {_owner_pid(client, j) for j in running.values()}
    assert pids == {w.proc.pid for w in workers if w.proc}  # one job each
    for project_id, job_id in running.items():  # one job per project at a time
        again = client.http.post(f"/projects/{project_id}/jobs", headers=owners[project_id])
        assert again.status_code == 200 and again.json()["id"] == job_id

    # kill the worker of the first job that has a checkpoint in the bucket
    victim_project, victim_job = None, None
    while time.monotonic() < deadline and victim_job is None:
        for project_id, job_id in running.items():
            if list(objects.names(f"jobs/{job_id}/checkpoint.pt")):
                victim_project, victim_job = project_id, job_id
                break
        time.sleep(0.1)
    assert victim_job is not None and victim_project is not None
    victim = next(w for w in workers if w.proc and w.proc.pid == _owner_pid(client, victim_job))
    victim.kill()  # SIGKILL: no clean-up; its lease simply stops being renewed
    at_kill = client.job(victim_job, owners[victim_project])
    assert at_kill["status"] == "running" and at_kill["progress_step"] < TRAINING["steps"]
    survivor = next(w for w in workers if w is not victim)

    done = {
        p: client.wait_job(j, owners[p], finished, timeout=240, worker=survivor)
        for p, j in jobs.items()
    }
    assert all(job["status"] == "succeeded" for job in done.values()), done
    finished_job = done[victim_project]
    assert finished_job["attempts"] == 2
    assert [(e["attempt"], e["kind"]) for e in finished_job["history"]] == [(1, "lost")]
    assert finished_job["metrics"]["resumed_from_step"] >= 5  # from the bucket's checkpoint
    assert finished_job["metrics"]["steps_done"] == TRAINING["steps"]

    for project_id, _, _ in projects:  # exactly one model and one score per item each
        counts = client.counts(project_id)
        assert counts == {"models": 1, "active": 1, "jobs": 1, "scores": 8, "scored_items": 8}
        assert list(objects.names(f"jobs/{jobs[project_id]}/")) == []  # scratch cleaned up
    # every job ran to completion once, by a live worker (Celery logs each task's outcome)
    # (the line follows the row's update by a moment)
    completions = [0]
    deadline = time.monotonic() + 20
    while sum(completions) < N_PROJECTS and time.monotonic() < deadline:
        time.sleep(0.2)
        completions = [w.log_text().count(": 'succeeded'") for w in (survivor, victim)]
    assert sum(completions) == N_PROJECTS, completions
    for folder in folders:  # nothing shared through the workers' own folders
        names = {p.parts[len(folder.parts)] for p in folder.rglob("*") if p.is_file()}
        assert names <= {"cache", "jobs"}, names
