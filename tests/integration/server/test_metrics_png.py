"""GET /projects/{id}/metrics.png: the learning curve as a picture."""

from __future__ import annotations

import io

import pytest
from PIL import Image
from server_test_helpers import register_model

pytestmark = pytest.mark.integration


def test_learning_curve_png(api) -> None:
    project_id, owner = api.create_project()
    register_model(api, project_id, labelled_count=10, metrics={"val_error": 0.6})
    register_model(api, project_id, labelled_count=30, metrics={"val_error": 0.4, "accuracy": 0.9})
    response = api.client.get(f"/projects/{project_id}/metrics.png", headers=owner)
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    with Image.open(io.BytesIO(response.content)) as image:
        assert image.format == "PNG" and image.size == (600, 400)
    other = api.client.get(
        f"/projects/{project_id}/metrics.png", headers=owner, params={"metric": "missing"}
    )
    assert other.status_code == 200 and other.content[:8] == b"\x89PNG\r\n\x1a\n"


def test_learning_curve_png_needs_access(api) -> None:
    project_id, _owner = api.create_project()
    other_project, other_owner = api.create_project()
    assert api.client.get(f"/projects/{project_id}/metrics.png").status_code == 401
    denied = api.client.get(f"/projects/{project_id}/metrics.png", headers=other_owner)
    assert denied.status_code in (403, 404) and denied.json()["error"]
