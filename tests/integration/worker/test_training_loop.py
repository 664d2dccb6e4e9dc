"""The full loop through a real worker: upload, label, train, suggest, download, reload."""

from __future__ import annotations

import io
import json
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from worker_helpers import Client, WorkerProcess, finished, png

from xmodel_core.export import load_model

pytestmark = pytest.mark.integration

TRAINING = {"steps": 20, "batch_size": 8, "unlabelled_batch_size": 8, "eval_every": 10}


def test_full_loop(client: Client, worker: WorkerProcess, tmp_path: Path) -> None:
    project_id, owner, ids = client.project(TRAINING)

    # Two train requests at once: one job, one training.
    answers: list[int] = []
    threads = [
        threading.Thread(target=lambda: answers.append(client.train(project_id, owner)))
        for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(answers)) == 1
    job_id = answers[0]

    phases: set[str] = set()

    def done(job: dict) -> bool:
        phases.add(job["phase"] or "")
        return finished(job)

    job = client.wait_job(job_id, owner, done, timeout=180, worker=worker)
    assert job["status"] == "succeeded", (job, worker.log_text()[-4000:])
    assert job["progress_step"] > 0 and job["attempts"] == 1 and job["model_id"]
    assert job["metrics"]["steps_done"] == 20 and job["metrics"]["scored"] == 12
    assert "training" in phases or "scoring" in phases or "exporting" in phases
    counts = client.counts(project_id)
    assert counts == {"models": 1, "active": 1, "jobs": 1, "scores": 12, "scored_items": 12}

    # /suggest ranks by the model's disagreement.
    response = client.http.get(
        f"/projects/{project_id}/suggest?k=5&strategy=xmodel_nodiv", headers=owner
    )
    assert response.status_code == 200, response.text
    suggestion = response.json()
    assert suggestion["model_id"] == job["model_id"] and not suggestion["cold_start"]
    scores = [item["score"] for item in suggestion["items"]]
    assert len(scores) == 5 and scores == sorted(scores, reverse=True)
    assert {item["item_id"] for item in suggestion["items"]} <= set(ids[12:])
    diverse = client.http.get(
        f"/projects/{project_id}/suggest?k=4&strategy=xmodel&annotator=b", headers=owner
    )
    assert diverse.status_code == 200 and len(diverse.json()["items"]) == 4

    # Download, reload with the core library: the same predictions as the API's (ONNX) predict.
    model_id = job["model_id"]
    folder = tmp_path / "model"
    folder.mkdir()
    for fmt, name in (("safetensors", "model.safetensors"), ("config", "config.json")):
        response = client.http.get(f"/models/{model_id}/download?format={fmt}", headers=owner)
        assert response.status_code == 200, response.text
        (folder / name).write_bytes(response.content)
    model, task = load_model(folder)
    assert json.loads((folder / "config.json").read_text())["job_id"] == job_id
    image = png((200, 30, 30), 999_999)
    predicted = client.http.post(
        f"/models/{model_id}/predict", headers=owner, files={"file": ("x.png", image, "image/png")}
    )
    assert predicted.status_code == 200, predicted.text
    rgb = Image.open(io.BytesIO(image)).convert("RGB").resize((16, 16), Image.Resampling.BILINEAR)
    x = torch.from_numpy(np.asarray(rgb, dtype=np.float32) / 255).permute(2, 0, 1)[None]
    with torch.no_grad():
        heads = task.decode(task.to_comparison(model(x)))[:, 0]  # [H, D] probabilities
    np.testing.assert_allclose(np.array(predicted.json()["heads"]), heads.numpy(), atol=1e-4)
