"""Retraining on cached frozen-trunk views through a real worker: the upload's prefill stores
each image's plain and strong views, the first job computes only what came after it (the weak
views of the labels set later), the next job of the project reuses them all, and the model,
scores and suggestions come out as on the recomputing path."""

from __future__ import annotations

from pathlib import Path

import pytest
from worker_helpers import Client, WorkerProcess, finished

pytestmark = pytest.mark.integration

# small_cnn's first 4 modules (conv, bn, relu, pool) frozen: a cacheable trunk
TRAINING = {
    "steps": 12,
    "batch_size": 8,
    "unlabelled_batch_size": 8,
    "eval_every": 6,
    "freeze_blocks": 4,
    "weak_views": 2,
    "strong_views": 2,
}


def run_job(
    client: Client,
    worker: WorkerProcess,
    project_id: int,
    owner: dict[str, str],
    overrides: dict | None = None,
) -> dict:
    response = client.http.post(
        f"/projects/{project_id}/jobs",
        headers=owner,
        json={"training": overrides} if overrides else None,
    )
    assert response.status_code in (200, 201), response.text
    job = client.wait_job(int(response.json()["id"]), owner, finished, timeout=180, worker=worker)
    assert job["status"] == "succeeded", (job, worker.log_text()[-4000:])
    return job


def test_views_prefilled_at_upload_then_reused_by_every_job(
    client: Client, worker: WorkerProcess, pg_setup: dict
) -> None:
    project_id, owner, ids = client.project(TRAINING, n_images=24, n_labelled=12)
    storage = Path(str(pg_setup["storage"]))
    # the upload asked for a prefill; the worker runs it before any later job (one at a time)
    first = run_job(client, worker, project_id, owner)
    m = first["metrics"]
    assert m["trunk_cache"] is True and m["settings"]["freeze_blocks"] == 4
    # 12 labels (train + val) and 12 unlabelled. The upload's prefill stored the plain and
    # strong views of all 24; the labels' prefill (sent at the first label) stored the weak
    # views of the labels given by the time it ran. So at most the training labels' weak
    # views are computed here, and only those images are decoded (the pool's are not).
    consistency = m["train"] + 12 if m["settings"]["method"] != "supervised" else 0
    needed = m["train"] + consistency + m["val"]  # weak: train; strong: pool + train; plain: val
    assert m["cache_hits"] + m["cache_misses"] == needed, (m, worker.log_text()[-3000:])
    assert m["cache_misses"] <= m["train"] and m["cache_hits"] >= consistency + m["val"] > 0
    assert m["images_decoded"] == m["cache_misses"]
    assert m["scored"] == 12 and m["scored_views"] == 12 * 3  # plain + 2 strong views each
    entries = list((storage / "cache" / "trunk").rglob("*.safetensors"))
    assert len(entries) >= 24 * 2 + m["train"]  # (the folder is shared with other tests)

    second = run_job(client, worker, project_id, owner)
    assert (
        second["metrics"]["cache_misses"] == 0
        and second["metrics"]["cache_hits"] == m["cache_hits"] + m["cache_misses"]
        and second["metrics"]["images_decoded"] == 0
    )
    assert client.counts(project_id) == {
        "models": 2,
        "active": 1,
        "jobs": 2,
        "scores": 24,
        "scored_items": 12,
    }
    suggestion = client.http.get(
        f"/projects/{project_id}/suggest?k=4&strategy=xmodel_nodiv", headers=owner
    )
    assert suggestion.status_code == 200 and suggestion.json()["model_id"] == second["model_id"]
    assert {item["item_id"] for item in suggestion.json()["items"]} <= set(ids[12:])


def test_the_recomputing_path_stays_selectable(client: Client, worker: WorkerProcess) -> None:
    project_id, owner, _ = client.project(TRAINING, n_images=16, n_labelled=8)
    job = run_job(client, worker, project_id, owner, {"trunk_cache": False, "score_views": 3})
    assert job["metrics"]["trunk_cache"] is False and "cache_misses" not in job["metrics"]
    assert job["metrics"]["scored_views"] == 8 * 3 and job["metrics"]["scored"] == 8
