"""Projects, uploads, dedupe, zip import, listing, image bytes, delete."""

from __future__ import annotations

import pytest
from server_test_helpers import image_bytes, row_counts, unique_png, zip_bytes

pytestmark = pytest.mark.integration


def test_health_reports_database(api) -> None:
    response = api.client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": api.backend}


def test_upload_records_size_and_stores_file(api) -> None:
    project_id, owner = api.create_project()
    png = image_bytes(size=(40, 30), seed=1)
    response = api.upload(project_id, owner, [("a.png", png)])
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["created"] == 1 and body["duplicates"] == 0
    item = body["items"][0]["item"]
    assert (item["width"], item["height"], item["image_format"]) == (40, 30, "PNG")
    image = api.client.get(f"/items/{item['id']}/image", headers=owner)
    assert image.status_code == 200 and image.content == png
    assert image.headers["content-type"] == "image/png"
    assert api.store.count() == 1


def test_upload_many_with_aligned_labels(api) -> None:
    project_id, owner = api.create_project()
    files = [
        ("a.png", unique_png()),
        ("b.jpg", image_bytes(fmt="JPEG", seed=2)),
        ("c.webp", image_bytes(fmt="WEBP", seed=3)),
    ]
    response = api.upload(
        project_id, owner, files, labels=[{"class": "cat"}, None, {"class": "dog"}]
    )
    assert response.status_code == 201, response.text
    items = [entry["item"] for entry in response.json()["items"]]
    assert [i["label"] for i in items] == [{"class": "cat"}, None, {"class": "dog"}]
    assert [i["image_format"] for i in items] == ["PNG", "JPEG", "WEBP"]
    assert response.json()["labelled"] == 2


def test_duplicate_returns_existing_item(api) -> None:
    project_id, owner = api.create_project()
    png = unique_png()
    first = api.upload(project_id, owner, [("a.png", png)]).json()["items"][0]["item"]
    again = api.upload(project_id, owner, [("again.png", png), ("same.png", png)])
    assert again.status_code == 200
    assert again.json()["created"] == 0 and again.json()["duplicates"] == 2
    assert {e["item"]["id"] for e in again.json()["items"]} == {first["id"]}
    assert row_counts(api.engine)["items"] == 1 and api.store.count() == 1


def test_uploads_that_add_images_ask_for_a_prefill_of_their_views(api) -> None:
    """New images: the worker is asked to compute their cached views ahead of the next job;
    an upload of duplicates only, which adds nothing, asks for nothing, nor does a project
    whose jobs use no cached views (nothing frozen)."""
    plain_id, plain_owner = api.create_project()  # small_cnn: every stage trains
    assert api.upload(plain_id, plain_owner, [("a.png", unique_png())]).status_code == 201
    project_id, owner = api.create_project(backbone="mobilenet_v2")
    png = unique_png()
    assert api.upload(project_id, owner, [("a.png", png)]).status_code == 201
    assert api.queue.prefilled == [project_id]
    assert api.upload(project_id, owner, [("again.png", png)]).status_code == 200
    archive = zip_bytes({"b.png": unique_png(), "c.png": unique_png()})
    response = api.client.post(
        f"/projects/{project_id}/items/import",
        headers=owner,
        files={"archive": ("b.zip", archive, "application/zip")},
    )
    assert response.status_code == 201, response.text
    assert api.queue.prefilled == [project_id, project_id]
    assert api.queue.enqueued == []  # no labels, no training


def test_same_image_in_two_projects_is_two_items_one_file(api) -> None:
    png = unique_png()
    p1, o1 = api.create_project()
    p2, o2 = api.create_project()
    a = api.upload(p1, o1, [("a.png", png)]).json()["items"][0]["item"]["id"]
    b = api.upload(p2, o2, [("a.png", png)]).json()["items"][0]["item"]["id"]
    assert a != b and api.store.count() == 1
    assert api.client.delete(f"/items/{a}", headers=o1).status_code == 204
    assert api.store.count() == 1  # still used by project 2
    assert api.client.get(f"/items/{b}/image", headers=o2).status_code == 200
    assert api.client.delete(f"/items/{b}", headers=o2).status_code == 204
    assert api.store.count() == 0


def test_zip_import_with_labels_csv(api) -> None:
    project_id, owner = api.create_project()
    archive = zip_bytes(
        {
            "imgs/one.png": unique_png(),
            "imgs/two.png": unique_png(),
            "three.jpg": image_bytes(fmt="JPEG", seed=9),
            "labels.csv": b"filename,label\nimgs/one.png,cat\ntwo.png,dog\n",
        }
    )
    response = api.import_zip(project_id, owner, archive)
    assert response.status_code == 201, response.text
    labels = {e["name"]: e["item"]["label"] for e in response.json()["items"]}
    assert labels == {
        "imgs/one.png": {"class": "cat"},
        "imgs/two.png": {"class": "dog"},
        "three.jpg": None,
    }


def test_zip_import_with_labels_jsonl_regression(api) -> None:
    project_id, owner = api.create_project(
        task={"kind": "regression", "targets": ["age"], "ranges": {"age": [0, 120]}}
    )
    archive = zip_bytes(
        {
            "a.png": unique_png(),
            "labels.jsonl": b'{"filename": "a.png", "label": {"values": {"age": 31}}}\n',
        }
    )
    response = api.import_zip(project_id, owner, archive)
    assert response.status_code == 201, response.text
    assert response.json()["items"][0]["item"]["label"] == {"values": {"age": 31.0}}


def test_list_filters_and_cursor(api) -> None:
    project_id, owner = api.create_project()
    files = [(f"{i}.png", unique_png()) for i in range(5)]
    api.upload(
        project_id, owner, files, labels=[{"class": "cat"}, None, {"class": "dog"}, None, None]
    )
    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = api.client.get(f"/projects/{project_id}/items", headers=owner, params=params).json()
        seen += [i["id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 5 and seen == sorted(seen)
    labelled = api.client.get(
        f"/projects/{project_id}/items", headers=owner, params={"status": "labelled"}
    ).json()
    unlabelled = api.client.get(
        f"/projects/{project_id}/items", headers=owner, params={"status": "unlabelled"}
    ).json()
    assert len(labelled["items"]) == 2 and len(unlabelled["items"]) == 3
    api.client.get(f"/projects/{project_id}/suggest", headers=owner, params={"k": 2})
    leased = api.client.get(
        f"/projects/{project_id}/items", headers=owner, params={"status": "leased"}
    ).json()
    assert len(leased["items"]) == 2


def test_annotator_cannot_delete(api) -> None:
    project_id, owner = api.create_project()
    _, annotator = api.create_token(project_id, owner)
    item_id = api.upload(project_id, owner, [("a.png", unique_png())]).json()["items"][0]["item"][
        "id"
    ]
    response = api.client.delete(f"/items/{item_id}", headers=annotator)
    assert response.status_code == 403 and response.json()["error"] == "forbidden"
