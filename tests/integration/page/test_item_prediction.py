"""``GET /items/{id}/prediction`` and the ``/suggest`` options the page uses, against a live
API process on the embedded defaults."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from page_helpers import (
    LiveServer,
    create_project,
    create_token,
    picture,
    register_model,
    upload,
)

pytestmark = pytest.mark.integration

TASKS: list[dict[str, Any]] = [
    {"kind": "classification", "classes": ["cat", "dog", "bird"]},
    {"kind": "regression", "targets": ["age", "height"]},
    {"kind": "keypoints", "points": ["left_eye", "right_eye", "nose"]},
]


def flat(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested answer -> {"points.nose.0": 12.5, "class": "cat", ...} for approx comparison."""
    if isinstance(value, dict):
        return {
            k: v for key, item in value.items() for k, v in flat(item, f"{prefix}{key}.").items()
        }
    if isinstance(value, list):
        return {
            k: v for i, item in enumerate(value) for k, v in flat(item, f"{prefix}{i}.").items()
        }
    return {prefix: value}


@pytest.mark.parametrize("task", TASKS, ids=[t["kind"] for t in TASKS])
def test_prediction_of_a_stored_item_equals_predict_on_its_bytes(
    server: LiveServer, task: dict[str, Any]
) -> None:
    project_id, owner = create_project(server, task)
    images = [picture(7000 + i, size=(40 + 8 * i, 30)) for i in range(3)]
    items = upload(server, project_id, owner, [(f"{i}.png", data) for i, data in enumerate(images)])
    model_id = register_model(server, project_id, task, seed=3)
    with server.client(owner) as client:
        for item, data in zip(items, images, strict=True):
            response = client.get(f"/items/{item['id']}/prediction")
            assert response.status_code == 200, response.text
            body = response.json()
            direct = client.post(
                f"/models/{model_id}/predict", files={"file": ("x.png", data, "image/png")}
            ).json()
            assert body["item_id"] == item["id"] and body["model_id"] == model_id
            assert body["model_version"] == 1 and body["task"] == task["kind"]
            assert np.allclose(body["heads"], direct["heads"], atol=1e-6)
            assert body["disagreement"] == pytest.approx(direct["disagreement"])
            assert flat(body["prediction"]) == pytest.approx(flat(direct["prediction"]))
            heads = np.array(body["heads"])
            assert heads.shape[0] == 2
            assert body["disagreement"] == pytest.approx(float(heads.var(axis=0).mean()))
            if task["kind"] == "keypoints":
                points = body["prediction"]["points"]
                assert list(points) == task["points"]
                expected = heads.mean(axis=0).reshape(-1, 2) * [item["width"], item["height"]]
                assert np.allclose(list(points.values()), expected)
            if task["kind"] == "classification":
                probabilities = body["prediction"]["probabilities"]
                assert sum(probabilities.values()) == pytest.approx(1, abs=1e-5)
                assert body["prediction"]["class"] == max(probabilities, key=probabilities.get)


def test_prediction_follows_the_active_model_and_needs_one(server: LiveServer) -> None:
    task = TASKS[0]
    project_id, owner = create_project(server, task)
    (item,) = upload(server, project_id, owner, [("a.png", picture(8100))])
    with server.client(owner) as client:
        response = client.get(f"/items/{item['id']}/prediction")
        assert response.status_code == 404
        assert "no trained model" in response.json()["detail"]
        first = register_model(server, project_id, task, seed=1)
        answer = client.get(f"/items/{item['id']}/prediction").json()
        assert answer["model_id"] == first
        second = register_model(server, project_id, task, seed=2)
        again = client.get(f"/items/{item['id']}/prediction").json()
        # A new model never answers from the old model's cache.
        assert again["model_id"] == second and again["model_version"] == 2
        assert not np.allclose(again["heads"], answer["heads"])


def test_prediction_is_only_for_the_items_project(server: LiveServer) -> None:
    task = TASKS[0]
    project_a, owner_a = create_project(server, task)
    project_b, owner_b = create_project(server, task)
    (item,) = upload(server, project_a, owner_a, [("a.png", picture(8200))])
    register_model(server, project_a, task)
    with server.client(owner_b) as client:
        response = client.get(f"/items/{item['id']}/prediction")
        assert response.status_code == 404 and response.json()["error"] == "not_found"
    with server.client("xm_not-a-token") as client:
        assert client.get(f"/items/{item['id']}/prediction").status_code == 401
    with server.client(owner_a) as client:
        assert client.get("/items/99999999999/prediction").status_code == 404
        assert (
            client.get(f"/items/{2**63}/prediction").status_code == 404
        )  # past 64 bits: not found, before any route


def test_suggest_attaches_predictions_excludes_and_keeps_leases(server: LiveServer) -> None:
    task = TASKS[2]
    project_id, owner = create_project(server, task)
    items = upload(server, project_id, owner, [(f"{i}.png", picture(8300 + i)) for i in range(6)])
    register_model(
        server, project_id, task, scores=[(it["id"], float(i), 0) for i, it in enumerate(items)]
    )
    _tid, token = create_token(server, project_id, owner)
    base = f"/projects/{project_id}/suggest"
    with server.client(token) as client:
        plain = client.get(base, params={"k": 2, "annotator": "ann"}).json()
        assert all(item["prediction"] is None for item in plain["items"])
        first = client.get(base, params={"k": 2, "annotator": "ann", "predictions": "true"}).json()
        assert [i["item_id"] for i in first["items"]] == [i["item_id"] for i in plain["items"]]
        for suggested in first["items"]:
            alone = client.get(f"/items/{suggested['item_id']}/prediction").json()
            assert suggested["prediction"] == alone
        held = [i["item_id"] for i in first["items"]]
        more = client.get(
            base,
            params={"k": 2, "annotator": "ann", "keep_leases": "true", "exclude": held},
        ).json()
        added = [i["item_id"] for i in more["items"]]
        assert len(added) == 2 and not set(added) & set(held)

        def leased() -> set[int]:
            page = client.get(f"/projects/{project_id}/items", params={"status": "leased"}).json()
            return {row["id"] for row in page["items"]}

        assert leased() == set(held) | set(added)  # keep_leases released nothing
        released = client.delete(
            f"/projects/{project_id}/leases", params={"annotator": "ann", "item_id": held[0]}
        )
        assert released.status_code == 200
        assert leased() == set(held[1:]) | set(added)
        # Without keep_leases a call replaces the batch, as before.
        client.get(base, params={"k": 1, "annotator": "ann", "exclude": held + added})
        assert len(leased()) == 1
