"""How long the bridge's ``/predict`` takes for a batch of 100 Label Studio tasks.

A real Label Studio (``make label-studio``), the embedded service and the bridge run as child
processes. Label Studio gets a classification project with ``--tasks`` imported images and the
bridge connected; a first ``/predict`` (no model yet) fetches every image from Label Studio and
uploads it (the cold path). Then ``--labels`` items are labelled through our API and a model is
trained, and ``/predict`` is timed for the same batch, whose images are now items:

* ``first_after_model_s``: the first call for the new model (every item's guess computed by the
  service's ONNX session, the suggest window ranked);
* ``repeat_s``: later calls (the service's prediction cache answers);
* ``label_studio_retrieve_s``: Label Studio's own "Retrieve predictions" action for all tasks,
  end to end (Label Studio → bridge → service → Label Studio stores the predictions).

Bar: ``first_after_model_s`` <= 2 s for 100 tasks. Prints and saves JSON under
``bench/results/label_studio_predict.json``.

    python -m bench.label_studio_predict [--tasks 100] [--backbone mobilenet_v2]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image

from bench.label_studio_live import bridge, label_studio, xmodel_service
from label_studio_bridge.bridge import project_name, project_uid
from xmodel_client import XModelClient

RESULTS = Path(__file__).resolve().parent / "results" / "label_studio_predict.json"
CONFIG = """<View><Image name="image" value="$image"/>
  <Choices name="label" toName="image"><Choice value="dark"/><Choice value="light"/></Choices>
</View>"""


def picture(seed: int, size: tuple[int, int] = (128, 96)) -> tuple[bytes, str]:
    """A noisy picture, darker or lighter (its class), different for every seed."""
    rng = np.random.default_rng(seed)
    light = seed % 2 == 1
    base = 170 if light else 70
    array = np.clip(rng.normal(base, 40, (size[1], size[0], 3)), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue(), "light" if light else "dark"


def timed(call: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    value = call()
    return time.perf_counter() - start, value


def run(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    for name in ("ls", "xm", "br"):
        (root / name).mkdir()
    training = {"steps": args.steps, "batch_size": 16, "unlabelled_batch_size": 16}
    project = {
        "image_size": args.image_size,
        "backbone": args.backbone,
        "training": training,
        "retrain_every": 0,
    }
    with (
        xmodel_service(root / "xm") as (xmodel_url, admin_token),
        label_studio(root / "ls") as studio,
        bridge(root / "br", xmodel_url, admin_token, project) as bridge_url,
    ):
        created = studio.api(
            "POST", "/api/projects", json={"title": "bench", "label_config": CONFIG}
        )
        ls_id = int(created["id"])
        pictures = [picture(seed) for seed in range(args.tasks)]
        studio.api(
            "POST",
            f"/api/projects/{ls_id}/import",
            files=[
                (f"img{i:03d}.jpg", (f"img{i:03d}.jpg", data, "image/jpeg"))
                for i, (data, _) in enumerate(pictures)
            ],
        )
        tasks = studio.api("GET", "/api/tasks", params={"project": ls_id, "page_size": 1000})
        tasks = sorted(tasks["tasks"], key=lambda t: t["id"])
        assert len(tasks) == args.tasks, len(tasks)
        studio.api("POST", "/api/ml", json={"url": bridge_url, "project": ls_id, "title": "xmodel"})
        uid = project_uid(created)
        body = {"tasks": tasks, "project": uid, "label_config": CONFIG}
        http = httpx.Client(base_url=bridge_url, timeout=300)

        def predict() -> dict[str, Any]:
            answer = http.post("/predict", json=body)
            answer.raise_for_status()
            return dict(answer.json())

        cold_s, cold = timed(predict)
        assert cold["model_version"] == "xmodel-untrained"

        admin = XModelClient(xmodel_url, admin_token)
        ours = next(p for p in admin.list_projects() if p.name == project_name(uid))
        items = {int(i.original_name.split("-")[2]): i for i in admin.iter_items(ours.id)}
        for task, (_, label) in list(zip(tasks, pictures, strict=True))[: args.labels]:
            admin.set_label(items[task["id"]].id, {"class": label})
        train_s, job = timed(lambda: admin.wait_for_job(admin.create_job(ours.id).id, timeout=1800))
        assert job.status == "succeeded", job

        first_s, first = timed(predict)
        assert first["model_version"] == "xmodel-v1"
        assert all(len(r) == 1 for r in first["results"])
        repeats = [timed(predict)[0] for _ in range(args.repeats)]

        retrieve_s, _ = timed(
            lambda: studio.api(
                "POST",
                "/api/dm/actions",
                params={"id": "retrieve_tasks_predictions", "project": ls_id},
                json={"selectedItems": {"all": True, "excluded": []}},
            )
        )
        stored = studio.api("GET", "/api/predictions", params={"project": ls_id})
        assert len(stored) == args.tasks, len(stored)
    return {
        "benchmark": "label_studio_predict",
        "tasks": args.tasks,
        "backbone": args.backbone,
        "image_size": args.image_size,
        "cold_first_contact_s": round(cold_s, 3),
        "train_s": round(train_s, 1),
        "first_after_model_s": round(first_s, 3),
        "repeat_s": {
            "median": round(statistics.median(repeats), 3),
            "max": round(max(repeats), 3),
            "runs": [round(r, 3) for r in repeats],
        },
        "label_studio_retrieve_s": round(retrieve_s, 3),
        "bar_s": 2.0,
        "meets_bar": first_s <= 2.0 and max(repeats) <= 2.0,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "label_studio": "1.23.2",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=100)
    parser.add_argument("--labels", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--backbone", default="mobilenet_v2", choices=["mobilenet_v2", "resnet18", "small_cnn"]
    )
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-ls-") as folder:
        result = run(args, Path(folder))
    print(json.dumps(result, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
