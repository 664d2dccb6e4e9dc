"""The whole active-learning loop over HTTP, as a user would run it, through the Python client.

    python scripts/demo.py                        # synthetic kites: needs no data set
    python scripts/demo.py --faces DIR            # UTKFace crops (age regression from file names)
    python scripts/demo.py --folder DIR           # any folder of class sub-folders (classification)
    python scripts/demo.py --url URL --token ADMIN_TOKEN   # against a running service

By default it draws synthetic kites (a coloured quadrilateral on a textured background; the
task is to find its four corners) into ``--data-dir``, so it runs on a fresh machine with
nothing downloaded. It creates a project, uploads the images, imports labels for a first few
(a JSON lines file, as a team would bring its own), trains with a live progress bar, asks
``/suggest`` which images to label next, labels them one by one (as an annotator would),
retrains, exports the labels, downloads the ONNX model and predicts the held-out images with
onnxruntime on this machine. Without ``--url`` it starts its own API and worker
(scripts/run_embedded.py) on a data folder of its own.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import numpy as np
from rich.console import Console

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script from anywhere

from xmodel_client import XModelClient, collect  # noqa: E402
from xmodel_client.cli import wait_with_bar  # noqa: E402
from xmodel_client.local_predict import LocalModel  # noqa: E402
from xmodel_client.sources import file_source  # noqa: E402
from xmodel_contracts.launch import embedded_command, wait_healthy  # noqa: E402

console = Console(stderr=True, highlight=False)


# ---- data ---------------------------------------------------------------------------------------
class DemoData(NamedTuple):
    """Images on disk with their true labels (the demo plays the annotator), a task, and how
    to score a prediction against the truth. (A NamedTuple, not a dataclass: the benchmark
    loads this file by path, without registering it as a module.)"""

    name: str
    task: dict[str, Any]
    image_size: int
    backbone: str
    training: dict[str, Any]
    pool: list[tuple[Path, dict[str, Any]]]
    held_out: list[tuple[Path, dict[str, Any]]]
    error: Callable[[dict[str, Any], dict[str, Any]], float]
    unit: str
    root: Path | None = None  # upload names are paths relative to it (else file names)


def kites(folder: Path, count: int, held_out: int, size: int = 48) -> DemoData:
    """Synthetic kites drawn with the core library's generator, saved as PNG files."""
    from PIL import Image

    from xmodel_core.synthetic import KITE_FLIP_PAIRS, KITE_POINTS, make_kites

    folder.mkdir(parents=True, exist_ok=True)
    images, points = make_kites(count + held_out, size=size, seed=7)
    rows = []
    for index in range(count + held_out):
        path = folder / f"kite{index:05d}.png"
        if not path.exists():
            Image.fromarray(images[index].permute(1, 2, 0).numpy()).save(path)
        label = {
            "points": [
                [round(float(x) * size, 2), round(float(y) * size, 2)]
                for x, y in points[index].tolist()
            ]
        }
        rows.append((path, label))

    def error(predicted: dict[str, Any], truth: dict[str, Any]) -> float:
        guess = np.array([predicted["points"][name] for name in KITE_POINTS])
        return float(np.linalg.norm(guess - np.array(truth["points"]), axis=1).mean())

    return DemoData(
        "kites",
        {
            "kind": "keypoints",
            "points": KITE_POINTS,
            "flip_pairs": [list(p) for p in KITE_FLIP_PAIRS],
        },
        size,
        "small_cnn",
        {"batch_size": 32, "unlabelled_batch_size": 32, "lr": 3e-3, "pretrained": False},
        rows[:count],
        rows[count:],
        error,
        "mean corner error (px)",
    )


def faces(folder: Path, count: int, held_out: int) -> DemoData:
    """UTKFace crops; the age is the first field of ``AGE_GENDER_RACE_DATE.jpg.chip.jpg``."""
    rows = []
    for path in sorted(folder.iterdir()):
        head = path.name.split("_", 1)[0]
        if path.is_file() and head.isdigit() and 1 <= int(head) <= 116:
            rows.append((path, {"values": {"age": float(head)}}))
    if not rows:
        raise SystemExit(f"no UTKFace images (AGE_..._.jpg) in {folder}")
    random.Random(0).shuffle(rows)
    return DemoData(
        "utkface-age",
        {"kind": "regression", "targets": ["age"], "ranges": {"age": [1, 116]}},
        64,
        "mobilenet_v2",
        {"batch_size": 32, "unlabelled_batch_size": 32, "freeze_blocks": 14},
        rows[:count],
        rows[count : count + held_out],
        lambda p, t: abs(p["values"]["age"] - t["values"]["age"]),
        "MAE (years)",
    )


def class_folders(folder: Path, count: int, held_out: int) -> DemoData:
    """``folder/<class>/*.jpg``: the sub-folder names are the classes."""
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(classes) < 2:
        raise SystemExit(f"{folder} needs at least two class sub-folders")
    sources, _skipped = collect([folder])
    rows = [
        (Path(s.origin), {"class": s.name.split("/", 1)[0]})
        for s in sources
        if "/" in s.name and Path(s.origin).is_file()
    ]  # zip entries are left out
    random.Random(0).shuffle(rows)
    return DemoData(
        folder.name,
        {"kind": "classification", "classes": classes},
        96,
        "mobilenet_v2",
        {"batch_size": 32, "unlabelled_batch_size": 32},
        rows[:count],
        rows[count : count + held_out],
        lambda p, t: float(p["class"] != t["class"]),
        "error rate",
        folder,
    )


# ---- the service --------------------------------------------------------------------------------
class Api:
    """A thin ``call(method, path, headers=..., **httpx kwargs)`` over the client, for scripts
    that speak raw paths (``bench.active_learning``). Errors raise the client's typed
    exceptions; ``http`` is the underlying ``httpx.Client`` (base URL set)."""

    def __init__(self, url: str, token: str) -> None:
        self.client = XModelClient(url, token)
        self.http: httpx.Client = self.client.http

    def call(
        self, method: str, path: str, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> Any:
        response = self.client.request(method, path, headers=headers, **kwargs)
        if response.headers.get("content-type", "").startswith("application/json"):
            return response.json()
        return response


def start_local(port: int, data_dir: Path) -> tuple[subprocess.Popen[bytes], str, str]:
    """Start scripts/run_embedded.py (API + worker) on ``data_dir``; returns (child, URL, admin token)."""
    log_path = data_dir / "service.log"
    log = open(log_path, "ab")  # noqa: SIM115 - lives as long as the child
    child = subprocess.Popen(
        embedded_command(port, data_dir), cwd=REPO, stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, [child], log=log_path, timeout=180)
    except RuntimeError as error:
        child.terminate()
        raise SystemExit(f"the local service did not start: {error}") from error
    return child, url, (data_dir / "admin_token").read_text().strip()


# ---- the loop -----------------------------------------------------------------------------------
def train(owner: XModelClient, project: int) -> Any:
    job = wait_with_bar(owner, owner.create_job(project), console, interval=0.5)
    if job.status != "succeeded":
        raise SystemExit(f"training ended {job.status}: {job.error}")
    return job


def run(owner: XModelClient, project: int, data: DemoData, args: argparse.Namespace) -> None:
    def upload_name(path: Path) -> str:
        return path.relative_to(data.root).as_posix() if data.root else path.name

    truth_by_name = {upload_name(path): label for path, label in data.pool}
    sources = [file_source(path, upload_name(path)) for path, _ in data.pool]
    started = time.perf_counter()
    outcomes = owner.upload_sources(project, sources)
    item_of = {o.source.name: o.item_id for o in outcomes if o.item_id is not None}
    refused = [o for o in outcomes if o.status == "refused"]
    print(
        f"uploaded {len(item_of)} images in {time.perf_counter() - started:.1f} s"
        + (f"; refused {len(refused)}: {refused[0].reason}" if refused else "")
    )

    rng = random.Random(args.seed)
    first = rng.sample(sorted(item_of), min(args.labels, len(item_of)))
    lines = "".join(
        json.dumps({"file_name": name, "label": truth_by_name[name]}) + "\n" for name in first
    )
    report = owner.import_labels(project, "jsonl", lines.encode())
    print(f"imported {report.created} labels from a JSON lines file; training round 1")
    job = train(owner, project)
    print(
        f"  model v1: validation error {job.metrics.get('val_error')} "
        f"({job.metrics.get('steps_per_second')} steps/s on {job.metrics.get('device')})"
    )

    suggestion = owner.suggest(project, args.suggest, strategy="xmodel")
    name_of = {item_id: name for name, item_id in item_of.items()}
    print(
        f"/suggest ({suggestion.strategy}, model v{suggestion.model_version}) picked "
        f"{len(suggestion.items)} images; top scores {[round(i.score or 0, 4) for i in suggestion.items[:5]]}"
    )
    for picked in suggestion.items:
        owner.set_label(picked.item_id, truth_by_name[name_of[picked.item_id]])
    print(
        f"labelled them ({len(first) + len(suggestion.items)} labels in all); training round 2 (warm start)"
    )
    job = train(owner, project)
    print(f"  model v2: validation error {job.metrics.get('val_error')}")

    out = args.data_dir / "downloads"
    size = owner.export_labels(project, "jsonl", out / f"project-{project}-labels.jsonl")
    folder = out / f"model-{job.model_id}"
    owner.download_model(job.model_id, folder / "model.onnx", "onnx")
    owner.download_model(job.model_id, folder / "config.json", "config")
    model = LocalModel(folder)
    held = data.held_out
    predictions = [
        p
        for start in range(0, len(held), 64)
        for p in model.predict([path for path, _ in held[start : start + 64]])
    ]
    errors = [
        data.error(p["prediction"], truth) for p, (_, truth) in zip(predictions, held, strict=True)
    ]
    served = owner.predict(job.model_id, held[0][0])
    print(f"exported the labels ({size} bytes) and downloaded model {job.model_id} to {out}")
    print(f"on {len(held)} held-out images, local onnxruntime: {data.unit} {np.mean(errors):.3f}")
    print(f"API predict on {held[0][0].name}: {json.dumps(served.prediction)[:200]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", help="a running service (default: start one here)")
    parser.add_argument(
        "--token", default=os.environ.get("XM_ADMIN_TOKEN"), help="admin token (with --url)"
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--faces", type=Path, help="UTKFace crops folder (age regression)")
    source.add_argument(
        "--folder", type=Path, help="a folder of class sub-folders (classification)"
    )
    parser.add_argument("--images", type=int, default=600, help="images to upload")
    parser.add_argument("--held-out", type=int, default=200, help="images kept for the final check")
    parser.add_argument(
        "--labels", type=int, default=50, help="labels imported before the first model"
    )
    parser.add_argument(
        "--suggest", type=int, default=50, help="images to label after the first model"
    )
    parser.add_argument("--steps", type=int, default=150, help="training steps per round")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--data-dir", type=Path, default=REPO / "var" / "demo")
    args = parser.parse_args(argv)
    args.data_dir = args.data_dir.resolve()
    args.data_dir.mkdir(parents=True, exist_ok=True)

    if args.faces:
        data = faces(args.faces, args.images, args.held_out)
    elif args.folder:
        data = class_folders(args.folder, args.images, args.held_out)
    else:
        data = kites(args.data_dir / "kites", args.images, args.held_out)
    child = None
    if args.url:
        if not args.token:
            raise SystemExit("--url needs --token (or XM_ADMIN_TOKEN)")
        url, token = args.url, args.token
    else:
        print(f"starting a local API + worker in {args.data_dir} ...")
        child, url, token = start_local(args.port, args.data_dir)
    try:
        t0 = time.monotonic()
        admin = XModelClient(url, token)
        project = admin.create_project(
            f"{data.name}-{int(time.time())}",
            data.task,
            image_size=data.image_size,
            backbone=data.backbone,
            training={**data.training, "steps": args.steps, "eval_every": max(10, args.steps // 5)},
        )
        print(f"project {project.id} ({data.name}, {data.task['kind']}) at {url}")
        run(admin.with_token(project.owner_token), project.id, data, args)
        print(f"done in {time.monotonic() - t0:.0f} s")
    finally:
        if child is not None:
            child.send_signal(2)  # SIGINT: the launcher stops the API and the worker
            child.wait(60)
    return 0


if __name__ == "__main__":
    sys.exit(main())
