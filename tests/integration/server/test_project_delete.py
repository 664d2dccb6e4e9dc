"""``DELETE /projects/{id}``: confirmation, access, every row and file of the project gone,
an image another project shares kept, a running training job stopped first."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from server_test_helpers import ADMIN_TOKEN, register_model, unique_png
from sqlalchemy import text

from xmodel_client import XModelClient
from xmodel_client.errors import BadRequest, Forbidden, NotFound, Unauthorized

pytestmark = pytest.mark.integration
PETS = {"kind": "classification", "classes": ["cat", "dog"]}


def _project(admin: XModelClient, name: str) -> tuple[XModelClient, int]:
    created = admin.create_project(name, PETS, image_size=16, backbone="small_cnn")
    return admin.with_token(created.owner_token), created.id


def _upload(client: XModelClient, project_id: int, images: dict[str, bytes]) -> dict[str, int]:
    response = client.http.post(
        f"/projects/{project_id}/items",
        files=[("files", (n, d, "image/png")) for n, d in images.items()],
        headers={"Authorization": f"Bearer {client.token}"},
    )
    assert response.status_code == 201, response.text
    return {e["name"]: e["item"]["id"] for e in response.json()["items"]}


def _rows_of(
    api: Any, project_id: int, item_ids: list[int], model_id: int, job_id: int
) -> dict[str, int]:
    items = ",".join(map(str, item_ids))
    queries = {
        "projects": f"SELECT count(*) FROM projects WHERE id = {project_id}",
        "items": f"SELECT count(*) FROM items WHERE project_id = {project_id}",
        "label_revisions": f"SELECT count(*) FROM label_revisions WHERE item_id IN ({items})",
        "item_leases": f"SELECT count(*) FROM item_leases WHERE project_id = {project_id}",
        "jobs": f"SELECT count(*) FROM jobs WHERE project_id = {project_id} OR id = {job_id}",
        "model_versions": f"SELECT count(*) FROM model_versions WHERE project_id = {project_id}",
        "item_scores": f"SELECT count(*) FROM item_scores WHERE model_id = {model_id} OR item_id IN ({items})",
        "api_tokens": f"SELECT count(*) FROM api_tokens WHERE project_id = {project_id}",
    }
    with api.engine.connect() as connection:
        return {
            name: int(connection.execute(text(sql)).scalar_one()) for name, sql in queries.items()
        }


def test_delete_removes_every_row_and_file_but_keeps_a_shared_image(api) -> None:
    admin = XModelClient("http://testserver", ADMIN_TOKEN, http=api.client)
    doomed, doomed_id = _project(admin, "doomed")
    kept, kept_id = _project(admin, "kept")
    shared, own = unique_png(), unique_png()
    ids = _upload(
        doomed, doomed_id, {"shared.png": shared, "own.png": own, "more.png": unique_png()}
    )
    kept_ids = _upload(kept, kept_id, {"shared-too.png": shared})
    for item_id in ids.values():
        doomed.set_label(item_id, {"class": "cat"})
    doomed.set_label(ids["own.png"], {"class": "dog"})
    doomed.clear_label(ids["more.png"])
    model_id = register_model(api, doomed_id, scores=[(i, 0.5, 0) for i in ids.values()])
    doomed.suggest(doomed_id, 1)  # a lease
    job = doomed.create_job(doomed_id)
    scratch = api.settings.storage_dir / "jobs" / str(job.id)
    scratch.mkdir(parents=True)
    (scratch / "checkpoint.pt").write_bytes(b"x")
    annotator = XModelClient(
        "http://testserver", doomed.create_token(doomed_id)["token"], http=api.client
    )
    before = _rows_of(api, doomed_id, list(ids.values()), model_id, job.id)
    assert all(before[k] > 0 for k in before), before

    with pytest.raises(BadRequest, match="confirm"):
        doomed.delete_project(doomed_id, confirm="")
    with pytest.raises(BadRequest, match="'doomed'"):
        doomed.delete_project(doomed_id, confirm="kept")
    with pytest.raises(Forbidden):
        annotator.delete_project(doomed_id, confirm="doomed")
    with pytest.raises(NotFound):
        kept.delete_project(doomed_id, confirm="doomed")
    assert _rows_of(api, doomed_id, list(ids.values()), model_id, job.id) == before

    gone = doomed.delete_project(doomed_id, confirm="doomed")
    assert (gone.items, gone.models, gone.jobs, gone.images_removed) == (3, 1, 1, 2)
    assert gone.label_revisions == 5 and gone.scores == 3 and gone.cancelled_job_id == job.id
    after = _rows_of(api, doomed_id, list(ids.values()), model_id, job.id)
    assert after == dict.fromkeys(after, 0)
    storage = api.settings.storage_dir
    assert not (storage / "models" / str(doomed_id)).exists() and not scratch.exists()
    assert api.store.count() == 1  # only the shared image is left
    assert kept.get_item_image(kept_ids["shared-too.png"]) == shared
    with pytest.raises(Unauthorized):
        doomed.list_projects()  # the project's tokens went with it
    with pytest.raises(NotFound):
        admin.get_project(doomed_id)


def test_a_running_job_is_cancelled_before_the_delete(api) -> None:
    admin = XModelClient("http://testserver", ADMIN_TOKEN, http=api.client)
    owner, project_id = _project(admin, "busy")
    _upload(owner, project_id, {"a.png": unique_png()})
    job = owner.create_job(project_id)
    with api.engine.begin() as connection:  # a worker claims it
        connection.execute(
            text("UPDATE jobs SET status = 'running', lease_owner = 'w' WHERE id = :id"),
            {"id": job.id},
        )
    seen: list[bool] = []

    def worker() -> None:
        """Does what a worker does when its heartbeat reads ``cancel_requested``."""
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            with api.engine.begin() as connection:
                flag = connection.execute(
                    text("SELECT cancel_requested FROM jobs WHERE id = :id"), {"id": job.id}
                ).scalar()
                if flag:
                    seen.append(True)
                    connection.execute(
                        text("UPDATE jobs SET status = 'cancelled' WHERE id = :id"), {"id": job.id}
                    )
                    return
            time.sleep(0.05)

    thread = threading.Thread(target=worker)
    thread.start()
    gone = owner.delete_project(project_id, confirm="busy")
    thread.join()
    assert seen == [True] and gone.cancelled_job_id == job.id and gone.jobs == 1
