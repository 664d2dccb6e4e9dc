"""Inputs at the edge of what the API accepts: ids past 64 bits, numbers past a float,
training settings the worker could not run, and the contract the OpenAPI schema declares."""

from __future__ import annotations

import pytest
from server_test_helpers import row_counts, unique_png

pytestmark = pytest.mark.integration

HUGE = 2**63
ID_ROUTES = [
    ("GET", "/projects/{id}"),
    ("PATCH", "/projects/{id}"),
    ("GET", "/projects/{id}/stats"),
    ("GET", "/projects/{id}/items"),
    ("GET", "/items/{id}"),
    ("GET", "/items/{id}/image"),
    ("DELETE", "/items/{id}"),
    ("PUT", "/items/{id}/label"),
    ("GET", "/items/{id}/label/revisions"),
    ("GET", "/jobs/{id}"),
    ("POST", "/jobs/{id}/cancel"),
    ("GET", "/models/{id}"),
    ("GET", "/models/{id}/download"),
    ("GET", "/projects/{id}/suggest"),
    ("GET", "/projects/{id}/jobs"),
    ("GET", "/projects/{id}/tokens"),
    ("DELETE", "/projects/1/tokens/{id}"),
]


@pytest.mark.parametrize("method, route", ID_ROUTES)
def test_ids_past_64_bits_are_refused_at_the_edge(api, method: str, route: str) -> None:
    project_id, owner = api.create_project()
    for value in (HUGE, 10**30, -HUGE - 1):
        for headers in (api.admin, owner):
            response = api.client.request(
                method,
                route.format(id=value),
                headers=headers,
                json={"class": "cat"} if method in ("PUT", "PATCH") else None,
            )
            assert response.status_code in (404, 422), (route, value, response.text)
            assert response.json()["error"] in ("not_found", "validation_error")


def test_cursor_and_after_id_past_64_bits(api) -> None:
    project_id, owner = api.create_project()
    for cursor in (str(HUGE), "9" * 40, "-1", "１２"):
        response = api.client.get(
            f"/projects/{project_id}/items", headers=owner, params={"cursor": cursor}
        )
        assert response.status_code in (400, 422), response.text
    response = api.client.get(
        f"/projects/{project_id}/jobs", headers=owner, params={"after_id": HUGE}
    )
    assert response.status_code == 422, response.text
    last = api.client.get(
        f"/projects/{project_id}/items", headers=owner, params={"cursor": str(HUGE - 1)}
    )
    assert last.status_code == 200 and last.json()["items"] == []


HUGE_INT = "9" * 400
TASKS = {
    "classification": {"kind": "classification", "classes": ["cat", "dog"]},
    "regression": {"kind": "regression", "targets": ["age"]},
    "keypoints": {"kind": "keypoints", "points": ["left", "right"]},
}
NUMBER_CASES = {
    "regression_400_digits": ("regression", '{"values": {"age": ' + HUGE_INT + "}}"),
    "regression_400_digits_list": ("regression", '{"values": [-' + HUGE_INT + "]}"),
    "regression_1e308_without_range": ("regression", '{"values": {"age": 1e308}}'),
    "regression_beyond_float": ("regression", '{"values": {"age": 1e400}}'),
    "keypoint_400_digits": ("keypoints", '{"points": [[' + HUGE_INT + ", 1], [1, 1]]}"),
    "keypoint_invisible_far_away": ("keypoints", '{"points": [[-1e308, 1e308, 0], [1, 1]]}'),
    "keypoint_visibility_400_digits": (
        "keypoints",
        '{"points": [[1, 1, ' + HUGE_INT + "], [1, 1]]}",
    ),
}


@pytest.mark.parametrize("case", list(NUMBER_CASES))
def test_numbers_past_a_float_are_a_400_and_keep_the_connection(api, case: str) -> None:
    kind, raw = NUMBER_CASES[case]
    project_id, owner = api.create_project(task=TASKS[kind])
    item_id = api.upload(project_id, owner, [("a.png", unique_png())]).json()["items"][0]["item"][
        "id"
    ]
    before = row_counts(api.engine)
    response = api.client.put(
        f"/items/{item_id}/label",
        content=raw,
        headers={**owner, "Content-Type": "application/json"},
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_label"
    assert row_counts(api.engine) == before
    assert api.client.get(f"/items/{item_id}", headers=owner).json()["label"] is None
    # the same label through the upload's labels field
    label = raw.encode()
    response = api.client.post(
        f"/projects/{project_id}/items",
        headers=owner,
        data={"labels": "[" + label.decode() + "]"},
        files=[("files", ("b.png", unique_png(), "image/png"))],
    )
    assert response.status_code == 400, response.text
    assert row_counts(api.engine) == before


def test_invisible_keypoint_at_origin_is_accepted(api) -> None:
    project_id, owner = api.create_project(task=TASKS["keypoints"])
    item_id = api.upload(project_id, owner, [("a.png", unique_png())]).json()["items"][0]["item"][
        "id"
    ]
    response = api.client.put(
        f"/items/{item_id}/label", headers=owner, json={"points": [[0, 0, 0], [3.5, 4, 2]]}
    )
    assert response.status_code == 200, response.text
    assert response.json()["item"]["label"] == {"points": [[0.0, 0.0, 0], [3.5, 4.0, 2]]}


BAD_TRAINING = {
    "unknown_key": ({"backbone": "small_cnn"}, "backbone"),
    "bool_as_int": ({"seed": True}, "seed"),
    "string_number": ({"lr": "0.1"}, "lr"),
    "too_many_steps": ({"steps": 10**12}, "steps"),
    "unknown_method": ({"method": "magic"}, "method"),
    "unknown_score": ({"score_strategies": ["bald"]}, "score_strategies"),
    "nan_rate": ("NAN", "lr"),
}


@pytest.mark.parametrize("case", list(BAD_TRAINING))
def test_training_settings_the_worker_would_refuse_are_refused_by_the_api(api, case: str) -> None:
    training, field = BAD_TRAINING[case]
    project_id, owner = api.create_project()
    before = row_counts(api.engine)

    def send(method: str, url: str, body: str, headers: dict[str, str]):
        return api.client.request(
            method, url, content=body, headers={**headers, "Content-Type": "application/json"}
        )

    import json

    settings = '{"lr": NaN}' if training == "NAN" else json.dumps(training)
    for method, url, body, headers in (
        ("POST", f"/projects/{project_id}/jobs", '{"training": ' + settings + "}", owner),
        ("PATCH", f"/projects/{project_id}", '{"training": ' + settings + "}", owner),
        (
            "POST",
            "/projects",
            '{"name": "x", "task": {"kind": "classification", "classes": ["a", "b"]},'
            ' "training": ' + settings + "}",
            api.admin,
        ),
    ):
        response = send(method, url, body, headers)
        assert response.status_code == 422, (method, url, response.text)
        assert field in response.json()["detail"]
    assert row_counts(api.engine) == before
    assert api.queue.enqueued == []


def test_good_training_settings_round_trip(api) -> None:
    project_id, owner = api.create_project(
        training={"steps": 20, "lr": 1, "score_strategies": ["entropy"]}
    )
    response = api.client.patch(
        f"/projects/{project_id}",
        headers=owner,
        json={"training": {"steps": 30, "pretrained": False, "patience": 3}},
    )
    assert response.status_code == 200, response.text
    assert response.json()["training"] == {"steps": 30, "pretrained": False, "patience": 3}
    job = api.client.post(
        f"/projects/{project_id}/jobs", headers=owner, json={"training": {"seed": 4}}
    )
    assert job.status_code == 201, job.text
    assert job.json()["params"] == {"steps": 30, "pretrained": False, "patience": 3, "seed": 4}


def test_booleans_are_not_integers(api) -> None:
    project_id, owner = api.create_project()
    for body in ({"retrain_every": False}, {"retrain_every": True}):
        response = api.client.patch(f"/projects/{project_id}", headers=owner, json=body)
        assert response.status_code == 422, response.text
    response = api.client.post(
        "/projects",
        headers=api.admin,
        json={"name": "x", "task": TASKS["classification"], "image_size": True},
    )
    assert response.status_code == 422


def test_schema_declares_what_the_routes_answer(api) -> None:
    schema = api.client.get("/openapi.json").json()
    paths = schema["paths"]
    k = next(
        p for p in paths["/projects/{project_id}/suggest"]["get"]["parameters"] if p["name"] == "k"
    )
    assert k["schema"]["maximum"] == 200
    for route in ("/projects/{project_id}/items", "/projects/{project_id}/items/import"):
        assert {"200", "201", "400", "413", "415"} <= set(paths[route]["post"]["responses"])
    download = paths["/models/{model_id}/download"]["get"]["responses"]["200"]["content"]
    assert {"application/octet-stream", "application/json"} <= set(download)
    item_id = next(
        p for p in paths["/items/{item_id}"]["get"]["parameters"] if p["name"] == "item_id"
    )
    assert item_id["schema"]["maximum"] == 2**63 - 1
    project_id, owner = api.create_project()
    response = api.client.get(f"/projects/{project_id}/suggest", headers=owner, params={"k": 201})
    assert response.status_code == 422


def test_options_and_405_list_every_method_of_the_path(api) -> None:
    project_id, owner = api.create_project()
    item_id = api.upload(project_id, owner, [("a.png", unique_png())]).json()["items"][0]["item"][
        "id"
    ]
    response = api.client.options(f"/items/{item_id}", headers=owner)
    assert response.status_code == 204
    assert {"GET", "DELETE", "OPTIONS"} <= set(response.headers["allow"].split(", "))
    response = api.client.post(f"/items/{item_id}", headers=owner)
    assert response.status_code == 405 and response.json()["error"] == "method_not_allowed"
    assert {"GET", "DELETE"} <= set(response.headers["allow"].split(", "))
    label = api.client.options(f"/items/{item_id}/label", headers=owner)
    assert {"PUT", "DELETE"} <= set(label.headers["allow"].split(", "))


def test_the_last_owner_token_cannot_be_revoked(api) -> None:
    project_id, owner = api.create_project()
    tokens = api.client.get(f"/projects/{project_id}/tokens", headers=owner).json()
    first = next(t["id"] for t in tokens if t["role"] == "owner")
    annotator_id, _ = api.create_token(project_id, owner)
    before = row_counts(api.engine)
    response = api.client.delete(f"/projects/{project_id}/tokens/{first}", headers=owner)
    assert response.status_code == 409 and "last owner" in response.json()["detail"]
    response = api.client.delete(f"/projects/{project_id}/tokens/{first}", headers=api.admin)
    assert response.status_code == 409
    assert row_counts(api.engine) == before
    assert api.client.get(f"/projects/{project_id}", headers=owner).status_code == 200
    second_id, second = api.create_token(project_id, owner, role="owner", name="second")
    assert (
        api.client.delete(f"/projects/{project_id}/tokens/{first}", headers=second).status_code
        == 200
    )
    assert (
        api.client.delete(f"/projects/{project_id}/tokens/{second_id}", headers=second).status_code
        == 409
    )
    assert (
        api.client.delete(
            f"/projects/{project_id}/tokens/{annotator_id}", headers=second
        ).status_code
        == 200
    )


@pytest.mark.parametrize(
    "task, size",
    [
        ({"kind": "regression", "targets": ["age"]}, 128),
        ({"kind": "classification", "classes": ["a", "b"]}, 96),
        ({"kind": "keypoints", "points": ["nose"]}, 96),
    ],
)
def test_a_project_without_an_image_size_gets_its_task_kinds_default(
    api, task: dict[str, object], size: int
) -> None:
    body = {"name": "sized", "task": task}
    created = api.client.post("/projects", json=body, headers=api.admin)
    assert created.status_code == 201, created.text
    assert created.json()["image_size"] == size
    chosen = api.client.post("/projects", json={**body, "image_size": 48}, headers=api.admin)
    assert chosen.json()["image_size"] == 48
    unset = api.client.post("/projects", json={**body, "image_size": None}, headers=api.admin)
    assert unset.status_code == 201 and unset.json()["image_size"] == size
