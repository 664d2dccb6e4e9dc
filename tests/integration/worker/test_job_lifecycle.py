"""Cancel a running job; kill a worker mid-training and let another finish from the checkpoint."""

from __future__ import annotations

import time

import pytest
from worker_helpers import Client, WorkerProcess, finished

pytestmark = pytest.mark.integration

LONG = {"steps": 5000, "batch_size": 32, "unlabelled_batch_size": 32, "eval_every": 1000}


def test_cancel_running_job(client: Client, worker: WorkerProcess) -> None:
    project_id, owner, _ = client.project(LONG)
    job_id = client.train(project_id, owner)
    client.wait_job(
        job_id,
        owner,
        lambda j: j["status"] == "running" and j["progress_step"] >= 3,
        timeout=60,
        worker=worker,
    )
    response = client.http.post(f"/jobs/{job_id}/cancel", headers=owner)
    assert response.status_code == 200 and response.json()["cancel_requested"]
    asked = time.monotonic()
    job = client.wait_job(job_id, owner, finished, timeout=30, worker=worker)
    assert job["status"] == "cancelled", job
    assert time.monotonic() - asked < 10
    assert job["progress_step"] < 5000 and job["model_id"] is None
    counts = client.counts(project_id)
    assert counts["models"] == 0 and counts["scores"] == 0
    assert client.http.get(f"/projects/{project_id}/models", headers=owner).json() == []


def test_killed_worker_job_resumes_from_checkpoint(
    client: Client, worker: WorkerProcess, pg_setup: dict
) -> None:
    project_id, owner, _ = client.project({**LONG, "steps": 300})
    job_id = client.train(project_id, owner)
    checkpoint = pg_setup["storage"] / "jobs" / str(job_id) / "checkpoint.pt"
    client.wait_job(
        job_id,
        owner,
        lambda j: j["progress_step"] >= 15 and checkpoint.exists(),
        timeout=90,
        worker=worker,
    )
    worker.kill()  # SIGKILL: no clean-up, the lease simply stops being renewed
    killed_at = client.job(job_id, owner)
    assert killed_at["status"] == "running" and killed_at["progress_step"] < 300

    worker.start()  # a new worker process; its reaper requeues the job once the lease expires
    job = client.wait_job(job_id, owner, finished, timeout=150, worker=worker)
    assert job["status"] == "succeeded", (job, worker.log_text()[-5000:])
    assert [(e["attempt"], e["kind"]) for e in job["history"]] == [(1, "lost")]
    assert "stopped answering" in job["history"][0]["reason"]
    assert job["attempts"] == 2
    assert job["metrics"]["resumed_from_step"] >= 5, job["metrics"]  # not from scratch
    assert job["metrics"]["steps_done"] == 300
    counts = client.counts(project_id)
    assert counts == {"models": 1, "active": 1, "jobs": 1, "scores": 12, "scored_items": 12}
    assert not checkpoint.exists()  # cleaned up after success


def test_bad_data_fails_at_once_with_a_readable_error(
    client: Client, worker: WorkerProcess
) -> None:
    project_id, owner, _ = client.project({"steps": 5}, n_images=4, n_labelled=0)
    job = client.wait_job(
        client.train(project_id, owner), owner, finished, timeout=60, worker=worker
    )
    assert job["status"] == "failed" and job["attempts"] == 1
    assert "no labelled images" in job["error"]
    # settings the worker cannot run are refused by the API (same schema), no job is made
    bad = client.http.post(
        f"/projects/{project_id}/jobs", headers=owner, json={"training": {"stepz": 3}}
    )
    assert bad.status_code == 422 and "stepz" in bad.json()["detail"], bad.text
    assert client.counts(project_id)["jobs"] == 1
    assert client.counts(project_id)["models"] == 0
