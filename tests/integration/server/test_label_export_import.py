"""Label export (csv, jsonl, coco) and import (csv, jsonl, COCO categories and keypoints)
through the Python client, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest
from server_test_helpers import ADMIN_TOKEN, row_counts, unique_png
from sqlalchemy import insert

from server.db.base import utcnow
from server.db.models import Item, LabelRevision
from xmodel_client import XModelClient
from xmodel_client.errors import BadRequest, InvalidLabel

pytestmark = pytest.mark.integration
KITE = {
    "kind": "keypoints",
    "points": ["left", "right", "top", "bottom"],
    "flip_pairs": [["left", "right"]],
}
PETS = {"kind": "classification", "classes": ["cat", "dog", "bird"]}


def _clients(api: Any, task: dict[str, Any], name: str = "kites") -> tuple[XModelClient, int]:
    admin = XModelClient("http://testserver", ADMIN_TOKEN, http=api.client)
    project = admin.create_project(name, task, image_size=16, backbone="small_cnn")
    return admin.with_token(project.owner_token), project.id


def _upload(api: Any, client: XModelClient, project_id: int, images: dict[str, bytes]) -> None:
    files = [("files", (name, data, "image/png")) for name, data in images.items()]
    response = api.client.post(
        f"/projects/{project_id}/items",
        files=files,
        headers={"Authorization": f"Bearer {client.token}"},
    )
    assert response.status_code == 201, response.text


def _export(client: XModelClient, project_id: int, fmt: str, **kwargs: Any) -> bytes:
    buffer = io.BytesIO()
    client.export_labels(project_id, fmt, buffer, **kwargs)  # type: ignore[arg-type]
    return buffer.getvalue()


def _coco_source(images: dict[str, bytes]) -> dict[str, Any]:
    """A third-party COCO keypoints file: its own ids, point order and a hidden/unlabelled mix."""
    names = list(images)
    order = ["top", "left", "right", "bottom"]  # not the project's order: matched by name
    points: list[dict[str, list[float]]] = [
        {"top": [10, 2, 2], "left": [3, 12, 2], "right": [29, 12, 1], "bottom": [16, 22, 2]},
        {"top": [11, 1, 2], "left": [0, 0, 0], "right": [30, 11, 2], "bottom": [15, 23, 2]},
        {"top": [12.5, 3.25, 1], "left": [4, 10, 2], "right": [28, 13, 2], "bottom": [0, 0, 0]},
        {"top": [9, 4, 2], "left": [5, 9, 2], "right": [27, 9, 2], "bottom": [17, 21, 1]},
    ]
    return {
        "images": [
            {"id": 100 + i, "file_name": n, "width": 32, "height": 24} for i, n in enumerate(names)
        ],
        "categories": [{"id": 7, "name": "kite", "keypoints": order, "skeleton": [[2, 3]]}],
        "annotations": [
            {
                "id": 500 + i,
                "image_id": 100 + i,
                "category_id": 7,
                "num_keypoints": 4,
                "keypoints": [v for name in order for v in p[name]],
            }
            for i, p in enumerate(points)
        ],
    }


def _normalise_coco(data: bytes) -> bytes:
    """Ids and revisions are per project: key images by file name, drop the rest."""
    document = json.loads(data)
    names = {image["id"]: image["file_name"] for image in document["images"]}
    images = sorted(
        (i["file_name"], i["sha256"], i["width"], i["height"]) for i in document["images"]
    )
    annotations = sorted(
        (
            names[a["image_id"]],
            json.dumps({k: v for k, v in a.items() if k not in ("id", "image_id")}, sort_keys=True),
        )
        for a in document["annotations"]
    )
    return json.dumps(
        {"categories": document["categories"], "images": images, "annotations": annotations},
        sort_keys=True,
    ).encode()


def test_coco_keypoints_round_trip_between_projects(api) -> None:
    images = {f"kite{i}.png": unique_png() for i in range(5)}  # kite4 stays unlabelled
    first, first_id = _clients(api, KITE)
    second, second_id = _clients(api, KITE)
    _upload(api, first, first_id, images)
    _upload(api, second, second_id, images)

    source = json.dumps(_coco_source(images)).encode()
    report = first.import_labels(first_id, "coco", source)
    assert (report.records, report.matched, report.created, report.changed) == (4, 4, 4, 0)
    item = next(i for i in first.iter_items(first_id) if i.original_name == "kite1.png")
    # task order (left, right, top, bottom); visibility kept, a hidden point stays hidden
    assert item.label == {"points": [[0, 0, 0], [30, 11, 2], [11, 1, 2], [15, 23, 2]]}

    exported = _export(first, first_id, "coco")
    dry = second.import_labels(second_id, "coco", exported, dry_run=True)
    assert (dry.dry_run, dry.created) == (True, 4)
    assert second.project_stats(second_id).labelled == 0  # a dry run stores nothing
    report = second.import_labels(second_id, "coco", exported)
    assert (report.matched, report.created) == (4, 4)
    again = second.import_labels(second_id, "coco", exported)
    assert (again.created, again.changed, again.unchanged) == (0, 0, 4)

    assert _normalise_coco(_export(second, second_id, "coco")) == _normalise_coco(exported)
    document = json.loads(exported)
    assert document["categories"][0]["keypoints"] == KITE["points"]
    assert len(document["images"]) == 4 and all(len(i["sha256"]) == 64 for i in document["images"])
    assert all(isinstance(i["label_revision"], int) for i in document["images"])
    with_unlabelled = json.loads(_export(first, first_id, "coco", include_unlabelled=True))
    assert len(with_unlabelled["images"]) == 5 and len(with_unlabelled["annotations"]) == 4


def test_coco_categories_csv_and_jsonl_round_trip(api) -> None:
    images = {f"pet{i}.png": unique_png() for i in range(6)}
    first, first_id = _clients(api, PETS, "pets")
    _upload(api, first, first_id, images)
    coco: dict[str, Any] = {
        "images": [
            {"id": i, "file_name": n, "width": 32, "height": 24} for i, n in enumerate(images)
        ],
        "categories": [
            {"id": 1, "name": "dog"},
            {"id": 2, "name": "cat"},
            {"id": 3, "name": "bird"},
            {"id": 4, "name": "fish"},  # not a class of the project, but unused: fine
        ],
        "annotations": [{"id": 10 + i, "image_id": i, "category_id": 1 + i % 3} for i in range(5)],
    }
    fishy = {
        **coco,
        "annotations": [*coco["annotations"], {"id": 99, "image_id": 5, "category_id": 4}],
    }
    with pytest.raises(
        InvalidLabel, match="annotation id 99: category id 4 \\('fish'\\) is not a class"
    ):
        first.import_labels(first_id, "coco", json.dumps(fishy).encode())
    assert first.project_stats(first_id).labelled == 0
    assert first.import_labels(first_id, "coco", json.dumps(coco).encode()).created == 5

    for fmt in ("csv", "jsonl", "coco"):
        exported = _export(first, first_id, fmt)
        other, other_id = _clients(api, PETS, "pets")
        _upload(api, other, other_id, images)
        # the csv and jsonl exports carry sha256; match by file name too, to cover both paths
        report = other.import_labels(other_id, fmt, exported, match="name")
        assert report.created == 5, fmt
        labels = {i.original_name: i.label for i in other.iter_items(other_id)}
        assert labels == {i.original_name: i.label for i in first.iter_items(first_id)}, fmt
    rows = list(csv.DictReader(io.StringIO(_export(first, first_id, "csv").decode())))
    assert [r["label"] for r in rows] == ["dog", "cat", "bird", "dog", "cat"]
    assert rows[0]["file_name"] == "pet0.png" and rows[0]["label_revision"].isdigit()


def test_export_follows_every_row_past_a_page(api) -> None:
    """More rows than one database page: every labelled row once, in id order."""
    client, project_id = _clients(api, PETS, "many")
    now = utcnow()
    rows = [
        {
            "project_id": project_id,
            "sha256": f"{n:064x}",
            "width": 8,
            "height": 8,
            "image_format": "PNG",
            "byte_size": 1,
            "original_name": f"{n}.png",
            "random_key": 0.5,
            "created_at": now,
            "label": {"class": "cat"} if n % 3 else None,
            "labelled_at": now if n % 3 else None,
        }
        for n in range(11000)
    ]
    with api.engine.begin() as connection:
        connection.execute(insert(Item), rows)
        ids = [
            i
            for (i,) in connection.exec_driver_sql(
                f"SELECT id FROM items WHERE project_id = {project_id} AND labelled_at IS NOT NULL"
            )
        ]
        connection.execute(
            insert(LabelRevision),
            [{"item_id": i, "value": {"class": "cat"}, "created_at": now} for i in ids],
        )
    lines = _export(client, project_id, "jsonl").decode().splitlines()
    exported = [json.loads(line) for line in lines]
    assert [e["item_id"] for e in exported] == sorted(ids)
    assert all(e["label_revision"] is not None for e in exported)
    everything = _export(client, project_id, "jsonl", include_unlabelled=True).decode().splitlines()
    assert len(everything) == 11000


def _bad_coco(images: dict[str, bytes], case: str) -> tuple[str, bytes, str]:
    document = _coco_source(images)
    if case == "unknown category":
        document["annotations"][2]["category_id"] = 99
        return "coco", json.dumps(document).encode(), "annotation id 502: unknown category_id 99"
    if case == "point outside the image":
        document["annotations"][1]["keypoints"][3:6] = [500, 5, 2]  # 'left' of image 101
        return "coco", json.dumps(document).encode(), "annotation id 501"
    if case == "missing image reference":
        document["annotations"][3]["image_id"] = 999
        return "coco", json.dumps(document).encode(), "annotation id 503: image_id 999 is not among"
    names = list(images)
    lines = [
        json.dumps({"file_name": names[0], "label": {"points": [[1, 1], [2, 2], [3, 3], [4, 4]]}}),
        json.dumps({"file_name": names[1], "label": {"points": [[1, 1], [2, 2], [3, 3], [4, 4]]}}),
        '{"file_name": "kite2.png", "label": {"points": [[1, 1]',
        json.dumps({"file_name": names[3], "label": {"points": [[1, 1], [2, 2], [3, 3], [4, 4]]}}),
    ]
    return "jsonl", "\n".join(lines).encode(), "line 3: not valid JSON"


@pytest.mark.parametrize(
    "case",
    [
        "unknown category",
        "point outside the image",
        "missing image reference",
        "malformed JSON line",
    ],
)
def test_bad_label_files_name_the_place_and_store_nothing(api, case: str) -> None:
    images = {f"kite{i}.png": unique_png() for i in range(4)}
    client, project_id = _clients(api, KITE)
    _upload(api, client, project_id, images)
    fmt, data, expected = _bad_coco(images, case)
    before = row_counts(api.engine)
    with pytest.raises(BadRequest) as caught:
        client.import_labels(project_id, fmt, data)  # type: ignore[arg-type]
    assert expected in caught.value.detail, caught.value.detail
    if case == "point outside the image":
        assert (
            isinstance(caught.value, InvalidLabel)
            and "outside the 32x24 image" in caught.value.detail
        )
    assert row_counts(api.engine) == before
    assert client.project_stats(project_id).labelled == 0


def test_import_refuses_unmatched_images_unless_allowed(api) -> None:
    images = {f"kite{i}.png": unique_png() for i in range(4)}
    client, project_id = _clients(api, KITE)
    _upload(api, client, project_id, dict(list(images.items())[:3]))
    source = json.dumps(_coco_source(images)).encode()
    with pytest.raises(BadRequest, match="kite3.png"):
        client.import_labels(project_id, "coco", source)
    assert client.project_stats(project_id).labelled == 0
    report = client.import_labels(project_id, "coco", source, allow_unmatched=True)
    assert (report.created, report.unmatched) == (3, ["kite3.png"])


def test_regression_projects_export_csv_but_not_coco(api) -> None:
    client, project_id = _clients(api, {"kind": "regression", "targets": ["age"]}, "ages")
    _upload(api, client, project_id, {"a.png": unique_png()})
    item = next(client.iter_items(project_id))
    client.set_label(item.id, {"values": {"age": 31}})
    with pytest.raises(BadRequest, match="csv or jsonl"):
        _export(client, project_id, "coco")
    rows = list(csv.DictReader(io.StringIO(_export(client, project_id, "csv").decode())))
    assert json.loads(rows[0]["label"]) == {"values": {"age": 31.0}}
    lines = b"sha256,label\n" + f"{item.sha256},42\n".encode()
    assert client.import_labels(project_id, "csv", lines).changed == 1
    assert client.get_item(item.id).label == {"values": {"age": 42.0}}
