"""Labels (revisions, who/when, keypoints), jobs (one per project, cancel, enqueue after
commit) and auto-retrain."""

from __future__ import annotations

import threading

import pytest
from server_test_helpers import row_counts, unique_png

from server.db.models import Job

pytestmark = pytest.mark.integration


def _item(api, project_id, owner, size=(32, 24)) -> int:
    return api.upload(project_id, owner, [("a.png", unique_png(size=size))]).json()["items"][0][
        "item"
    ]["id"]


def test_label_set_clear_and_revisions(api) -> None:
    project_id, owner = api.create_project()
    token_id, annotator = api.create_token(project_id, owner)
    item_id = _item(api, project_id, owner)
    first = api.client.put(f"/items/{item_id}/label", headers=annotator, json={"class": "cat"})
    assert first.status_code == 200, first.text
    assert first.json()["item"]["labelled_by_token_id"] == token_id
    api.client.put(f"/items/{item_id}/label", headers=annotator, json={"class": "dog"})
    cleared = api.client.delete(f"/items/{item_id}/label", headers=annotator)
    assert cleared.status_code == 200 and cleared.json()["label"] is None
    revisions = api.client.get(f"/items/{item_id}/label/revisions", headers=annotator).json()
    assert [r["value"] for r in revisions] == [{"class": "cat"}, {"class": "dog"}, None]
    assert all(r["token_id"] == token_id for r in revisions)


def test_keypoints_and_regression_labels(api) -> None:
    project_id, owner = api.create_project(
        task={"kind": "keypoints", "points": ["l", "r", "top"], "flip_pairs": [["l", "r"]]}
    )
    item_id = _item(api, project_id, owner, size=(50, 40))
    ok = api.client.put(
        f"/items/{item_id}/label", headers=owner, json={"points": [[0, 0], [50, 40], [10.5, 3, 0]]}
    )
    assert ok.status_code == 200, ok.text
    assert ok.json()["item"]["label"] == {"points": [[0, 0, 2], [50, 40, 2], [10.5, 3, 0]]}
    project_id, owner = api.create_project(task={"kind": "regression", "targets": ["x", "y"]})
    item_id = _item(api, project_id, owner)
    ok = api.client.put(f"/items/{item_id}/label", headers=owner, json={"values": [1.5, -2]})
    assert ok.json()["item"]["label"] == {"values": {"x": 1.5, "y": -2.0}}


def test_train_job_created_once_and_enqueued_after_commit(api) -> None:
    project_id, owner = api.create_project(training={"steps": 100})
    first = api.client.post(
        f"/projects/{project_id}/jobs",
        headers=owner,
        json={"kind": "train", "training": {"lr": 0.01}},
    )
    assert first.status_code == 201, first.text
    job = first.json()
    assert job["status"] == "queued" and job["params"] == {"steps": 100, "lr": 0.01}
    second = api.client.post(f"/projects/{project_id}/jobs", headers=owner)
    assert second.status_code == 200 and second.json()["id"] == job["id"]
    assert api.queue.enqueued == [job["id"]] and api.queue.visible_at_enqueue == [True]
    listed = api.client.get(f"/projects/{project_id}/jobs", headers=owner).json()
    assert [j["id"] for j in listed] == [job["id"]]


def test_failed_request_enqueues_nothing(api) -> None:
    """If the transaction fails after the job row was written, no id reaches the queue."""
    from server.db.session import run_in_transaction
    from server.jobs.service import request_training
    from server.projects.service import get_project

    project_id, _owner = api.create_project()
    factory = api.client.app.state.session_factory
    with pytest.raises(RuntimeError):
        for session in run_in_transaction(factory):
            request_training(session, api.queue, get_project(session, project_id), None, None)
            raise RuntimeError("crash before commit")
    assert api.queue.enqueued == [] and row_counts(api.engine)["jobs"] == 0


def test_concurrent_train_requests_make_one_job(api) -> None:
    project_id, owner = api.create_project()
    results: list[int] = []

    def request() -> None:
        response = api.client.post(f"/projects/{project_id}/jobs", headers=owner)
        results.append(response.json()["id"])

    threads = [threading.Thread(target=request) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(results)) == 1 and row_counts(api.engine)["jobs"] == 1
    assert api.queue.enqueued == [results[0]]


def test_cancel_queued_and_running(api) -> None:
    project_id, owner = api.create_project()
    job_id = api.client.post(f"/projects/{project_id}/jobs", headers=owner).json()["id"]
    cancelled = api.client.post(f"/jobs/{job_id}/cancel", headers=owner).json()
    assert cancelled["status"] == "cancelled" and cancelled["finished_at"] is not None
    job_id = api.client.post(f"/projects/{project_id}/jobs", headers=owner).json()["id"]
    with api.session() as session, session.begin():  # the worker claims it
        session.get(Job, job_id).status = "running"
    running = api.client.post(f"/jobs/{job_id}/cancel", headers=owner).json()
    assert running["status"] == "running" and running["cancel_requested"] is True
    again = api.client.post(f"/projects/{project_id}/jobs", headers=owner)
    assert again.status_code == 200 and again.json()["id"] == job_id


def test_auto_retrain_after_n_labels(api) -> None:
    project_id, owner = api.create_project(retrain_every=3)
    ids = [
        e["item"]["id"]
        for e in api.upload(
            project_id, owner, [(f"{i}.png", unique_png()) for i in range(4)]
        ).json()["items"]
    ]
    for item_id in ids[:2]:
        response = api.client.put(f"/items/{item_id}/label", headers=owner, json={"class": "cat"})
        assert response.json()["retrain_job_id"] is None
    third = api.client.put(f"/items/{ids[2]}/label", headers=owner, json={"class": "dog"}).json()
    assert third["retrain_job_id"] is not None
    fourth = api.client.put(f"/items/{ids[3]}/label", headers=owner, json={"class": "dog"}).json()
    assert fourth["retrain_job_id"] == third["retrain_job_id"]
    assert api.queue.enqueued == [third["retrain_job_id"]]
