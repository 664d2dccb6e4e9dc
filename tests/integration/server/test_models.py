"""Model registry: list, download with sha256, predict with the ONNX export, learning curve."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from server_test_helpers import image_bytes, register_model

from bench.stub_model import tiny_onnx

pytestmark = pytest.mark.integration


def test_list_get_download_with_sha(api) -> None:
    project_id, owner = api.create_project()
    model_id = register_model(api, project_id, labelled_count=10, metrics={"accuracy": 0.7})
    listed = api.client.get(f"/projects/{project_id}/models", headers=owner).json()
    assert [m["id"] for m in listed] == [model_id] and listed[0]["is_active"] is True
    model = api.client.get(f"/models/{model_id}", headers=owner).json()
    shas = {a["format"]: a["sha256"] for a in model["artefacts"]}
    assert set(shas) == {"safetensors", "onnx", "torchscript", "config"}
    for fmt in shas:
        response = api.client.get(
            f"/models/{model_id}/download", headers=owner, params={"format": fmt}
        )
        assert response.status_code == 200
        assert (
            response.headers["x-content-sha256"]
            == shas[fmt]
            == hashlib.sha256(response.content).hexdigest()
        )
    assert (
        api.client.get(
            f"/models/{model_id}/download", headers=owner, params={"format": "pickle"}
        ).status_code
        == 422
    )


def test_predict_matches_a_manual_forward_pass(api) -> None:
    import onnxruntime as ort

    project_id, owner = api.create_project()
    model_id = register_model(api, project_id)
    image = image_bytes(color=(200, 30, 90), size=(40, 20), seed=3)
    response = api.client.post(
        f"/models/{model_id}/predict", headers=owner, files={"file": ("x.png", image, "image/png")}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["task"] == "classification" and body["model_version"] == 1
    heads = np.array(body["heads"])
    assert heads.shape == (2, 2) and np.allclose(heads.sum(axis=1), 1, atol=1e-5)
    probabilities = body["prediction"]["probabilities"]
    assert np.allclose([probabilities["cat"], probabilities["dog"]], heads.mean(axis=0))
    assert body["prediction"]["class"] == ["cat", "dog"][int(np.argmax(heads.mean(axis=0)))]
    assert body["disagreement"] == pytest.approx(float(heads.var(axis=0).mean()))
    # The same forward pass by hand: resize to 16x16 bilinear, scale, NCHW.
    from io import BytesIO

    from PIL import Image

    pixels = (
        np.asarray(
            Image.open(BytesIO(image)).convert("RGB").resize((16, 16), Image.Resampling.BILINEAR),
            dtype=np.float32,
        )
        / 255
    )
    session = ort.InferenceSession(
        tiny_onnx("classification", 2), providers=["CPUExecutionProvider"]
    )
    expected = session.run(None, {"images": pixels.transpose(2, 0, 1)[None]})[0][:, 0, :]
    assert np.allclose(heads, expected, atol=1e-5)


def test_predict_rejects_non_images(api) -> None:
    project_id, owner = api.create_project()
    model_id = register_model(api, project_id)
    response = api.client.post(
        f"/models/{model_id}/predict",
        headers=owner,
        files={"file": ("x.png", b"text", "image/png")},
    )
    assert response.status_code == 400 and response.json()["error"] == "invalid_image"


def test_learning_curve_one_point_per_version(api) -> None:
    project_id, owner = api.create_project()
    register_model(api, project_id, labelled_count=10, metrics={"accuracy": 0.6})
    second = register_model(api, project_id, labelled_count=30, metrics={"accuracy": 0.8})
    curve = api.client.get(f"/projects/{project_id}/metrics", headers=owner).json()
    assert [
        (p["version"], p["labelled_count"], p["metrics"]["accuracy"]) for p in curve["points"]
    ] == [(1, 10, 0.6), (2, 30, 0.8)]
    assert [p["is_active"] for p in curve["points"]] == [False, True]
    assert curve["points"][1]["model_id"] == second
