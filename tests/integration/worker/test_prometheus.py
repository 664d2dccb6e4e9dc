"""Prometheus metrics scraped for real: the API's ``/metrics`` (requests per route template,
jobs by state, queue depth in Redis, oldest queued job's age) and a worker's scrape port
(training steps, scoring rate, job durations) after a real job."""

from __future__ import annotations

import httpx
import pytest
from worker_helpers import (
    REDIS_URL,
    Client,
    WorkerProcess,
    finished,
    scrape,
    worker_env,
)

from xmodel_contracts.launch import free_port

pytestmark = pytest.mark.integration

TRAINING = {"steps": 6, "batch_size": 4, "unlabelled_batch_size": 4, "eval_every": 6}


def _api_metrics(client: Client) -> dict:
    response = client.http.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    return scrape(response.text)


def test_api_and_worker_metrics(
    client: Client,
    pg_setup: dict,
    own_workers: list[WorkerProcess],
) -> None:
    project_id, owner, _ = client.project(TRAINING, n_images=10, n_labelled=6)
    for _ in range(3):
        assert client.http.get(f"/projects/{project_id}", headers=owner).status_code == 200
    assert client.http.get("/no/such/path").status_code == 404
    job_id = client.train(project_id, owner)  # no worker yet: it waits in the queue

    before = _api_metrics(client)
    route = ("method", "GET"), ("route", "/projects/{project_id}"), ("status", "200")
    assert before[("xmodel_http_requests_total", route)] == 3
    assert before[("xmodel_http_request_duration_seconds_count", route[:2])] == 3
    assert (
        before[
            ("xmodel_http_requests_total", (*route[:1], ("route", "unmatched"), ("status", "404")))
        ]
        == 1
    )
    assert not any(
        f"/projects/{project_id}" in dict(labels).get("route", "") for _, labels in before
    )
    assert before[("xmodel_jobs", (("status", "queued"),))] >= 1
    assert before[("xmodel_queue_depth", ())] == 1  # the real Redis list
    assert before[("xmodel_oldest_queued_job_age_seconds", ())] > 0

    port = free_port()
    env = worker_env(pg_setup["database_url"], pg_setup["storage"], REDIS_URL, pg_setup["queue"])
    worker = WorkerProcess(env | {"XM_WORKER_METRICS_PORT": str(port)}, pg_setup["logs"]).start()
    own_workers.append(worker)
    job = client.wait_job(job_id, owner, finished, timeout=120, worker=worker)
    assert job["status"] == "succeeded", job

    after = _api_metrics(client)
    queued, succeeded_jobs = (
        ("xmodel_jobs", (("status", "queued"),)),
        (
            "xmodel_jobs",
            (("status", "succeeded"),),
        ),
    )
    assert after[("xmodel_queue_depth", ())] == 0
    assert after[queued] == before[queued] - 1  # the session's database is shared by modules
    assert after[succeeded_jobs] == before[succeeded_jobs] + 1
    if after[queued] == 0:
        assert after[("xmodel_oldest_queued_job_age_seconds", ())] == 0

    worker_metrics = scrape(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text)
    assert worker_metrics[("xmodel_worker_training_steps_total", ())] == 6
    assert worker_metrics[("xmodel_worker_training_steps_per_second", ())] > 0
    assert worker_metrics[("xmodel_worker_scored_images_total", ())] == 4
    assert worker_metrics[("xmodel_worker_scoring_images_per_second", ())] > 0
    succeeded = (("outcome", "succeeded"),)
    assert worker_metrics[("xmodel_worker_job_duration_seconds_count", succeeded)] == 1
    assert worker_metrics[("xmodel_worker_job_duration_seconds_sum", succeeded)] > 0
