"""The token matrix: every route with its own token, another project's (404), a revoked
token (401) and none (401); plus admin and role rules."""

from __future__ import annotations

import pytest
from server_test_helpers import register_model, unique_png

pytestmark = pytest.mark.integration


@pytest.fixture
def world(api):
    """Project A with an item, a job and a model; project B with its own owner token."""
    a, owner_a = api.create_project()
    b, owner_b = api.create_project()
    _, annotator_a = api.create_token(a, owner_a)
    revoked_id, revoked = api.create_token(a, owner_a, role="owner", name="old")
    assert (
        api.client.delete(f"/projects/{a}/tokens/{revoked_id}", headers=owner_a).status_code == 200
    )
    item = api.upload(a, owner_a, [("a.png", unique_png())]).json()["items"][0]["item"]["id"]
    job = api.client.post(f"/projects/{a}/jobs", headers=owner_a).json()["id"]
    model = register_model(api, a)
    return {
        "a": a,
        "b": b,
        "owner_a": owner_a,
        "owner_b": owner_b,
        "annotator_a": annotator_a,
        "revoked": revoked,
        "item": item,
        "job": job,
        "model": model,
    }


def routes(w) -> list[tuple[str, str, dict]]:
    a, item, job, model = w["a"], w["item"], w["job"], w["model"]
    png = unique_png()
    return [
        ("GET", f"/projects/{a}", {}),
        ("PATCH", f"/projects/{a}", {"json": {"retrain_every": 5}}),
        ("GET", f"/projects/{a}/stats", {}),
        ("POST", f"/projects/{a}/tokens", {"json": {"role": "annotator"}}),
        ("GET", f"/projects/{a}/tokens", {}),
        ("POST", f"/projects/{a}/items", {"files": [("files", ("x.png", png, "image/png"))]}),
        (
            "POST",
            f"/projects/{a}/items/import",
            {"files": {"archive": ("x.zip", b"PK", "application/zip")}},
        ),
        ("GET", f"/projects/{a}/items", {}),
        ("GET", f"/items/{item}", {}),
        ("GET", f"/items/{item}/image", {}),
        ("PUT", f"/items/{item}/label", {"json": {"class": "cat"}}),
        ("GET", f"/items/{item}/label/revisions", {}),
        ("DELETE", f"/items/{item}/label", {}),
        ("GET", f"/projects/{a}/suggest", {}),
        ("POST", f"/projects/{a}/leases/renew", {}),
        ("DELETE", f"/projects/{a}/leases", {}),
        ("POST", f"/projects/{a}/jobs", {}),
        ("GET", f"/projects/{a}/jobs", {}),
        ("GET", f"/jobs/{job}", {}),
        ("POST", f"/jobs/{job}/cancel", {}),
        ("GET", f"/projects/{a}/models", {}),
        ("GET", f"/models/{model}", {}),
        ("GET", f"/models/{model}/download", {"params": {"format": "onnx"}}),
        ("POST", f"/models/{model}/predict", {"files": {"file": ("x.png", png, "image/png")}}),
        ("GET", f"/projects/{a}/metrics", {}),
        ("DELETE", f"/projects/{a}/tokens/999999", {}),
        ("DELETE", f"/items/{item}", {}),
    ]


def _call(api, method, path, headers, kwargs):
    return api.client.request(method, path, headers=headers, **kwargs)


def test_token_matrix(api, world) -> None:
    for method, path, kwargs in routes(world):
        label = f"{method} {path}"
        other = _call(api, method, path, world["owner_b"], kwargs)
        assert other.status_code == 404, (
            f"{label} with another project's token: {other.status_code}"
        )
        assert other.json()["error"] == "not_found"
        revoked = _call(api, method, path, world["revoked"], kwargs)
        assert revoked.status_code == 401 and "revoked" in revoked.json()["detail"], label
        missing = _call(api, method, path, {}, kwargs)
        assert missing.status_code == 401 and missing.json()["error"] == "unauthorized", label
        assert missing.headers["www-authenticate"] == "Bearer"
        garbage = _call(api, method, path, {"Authorization": "Bearer xm_not_a_token"}, kwargs)
        assert garbage.status_code == 401, label
    # Finally each route with the project's own owner token: never 401/403/404.
    for method, path, kwargs in routes(world):
        if path.endswith("/tokens/999999"):
            continue
        own = _call(api, method, path, world["owner_a"], kwargs)
        assert own.status_code not in (401, 403, 404), (
            f"{method} {path}: {own.status_code} {own.text}"
        )


def test_annotator_rights(api, world) -> None:
    a, item, job = world["a"], world["item"], world["job"]
    annotator = world["annotator_a"]
    assert (
        api.client.put(f"/items/{item}/label", headers=annotator, json={"class": "dog"}).status_code
        == 200
    )
    assert api.client.get(f"/projects/{a}/suggest", headers=annotator).status_code == 200
    assert api.client.get(f"/items/{item}/image", headers=annotator).status_code == 200
    for method, path, kwargs in [
        ("POST", f"/projects/{a}/tokens", {"json": {"role": "owner"}}),
        ("GET", f"/projects/{a}/tokens", {}),
        ("PATCH", f"/projects/{a}", {"json": {"retrain_every": 1}}),
        ("POST", f"/projects/{a}/jobs", {}),
        ("POST", f"/jobs/{job}/cancel", {}),
        ("DELETE", f"/items/{item}", {}),
    ]:
        response = _call(api, method, path, annotator, kwargs)
        assert response.status_code == 403 and response.json()["error"] == "forbidden", (
            f"{method} {path}"
        )


def test_only_admin_creates_projects_and_sees_all(api, world) -> None:
    body = {"name": "x", "task": {"kind": "classification", "classes": ["a", "b"]}}
    assert api.client.post("/projects", json=body, headers=world["owner_a"]).status_code == 403
    assert api.client.post("/projects", json=body).status_code == 401
    assert len(api.client.get("/projects", headers=api.admin).json()) == 2
    assert [p["id"] for p in api.client.get("/projects", headers=world["owner_b"]).json()] == [
        world["b"]
    ]
    assert api.client.get(f"/projects/{world['a']}", headers=api.admin).status_code == 200


def test_tokens_are_stored_only_as_hashes(api, world) -> None:
    from sqlalchemy import text

    created = api.client.post(
        f"/projects/{world['a']}/tokens", headers=world["owner_a"], json={"role": "annotator"}
    )
    secret = created.json()["token"]
    listed = api.client.get(f"/projects/{world['a']}/tokens", headers=world["owner_a"]).json()
    assert all("token" not in t for t in listed)
    with api.engine.connect() as connection:
        rows = connection.execute(text("SELECT token_hash FROM api_tokens")).scalars().all()
    assert secret not in rows and all(len(r) == 64 for r in rows)
