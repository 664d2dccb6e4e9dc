"""The whole active-learning loop on UTKFace (age regression), over HTTP, as a user would.

    python scripts/demo.py [--url http://host:8000 --token ADMIN] [--images 2000] [--labels 50]

Creates a project (regression "age" in 1-116, MobileNetV2 at 64 px), uploads faces, labels a
few from their file names (``AGE_GENDER_RACE_DATE.jpg.chip.jpg``), trains, shows progress,
asks ``/suggest`` which faces to label next, labels them, retrains, then downloads the ONNX
model and predicts held-out faces with onnxruntime. Without ``--url`` it starts its own API
and worker (scripts/run_embedded.py) on a data folder of its own. Images stay where they
are (``XM_UTKFACE_DIR``, default /work/shared/data/utkface/crop_part1)."""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_FACES = "/work/shared/data/utkface/crop_part1"


def faces(folder: Path) -> list[tuple[Path, float]]:
    """``(path, age)`` for every face whose file name starts with an age."""
    out = []
    for path in sorted(folder.iterdir()):
        head = path.name.split("_", 1)[0]
        if path.is_file() and head.isdigit() and 1 <= int(head) <= 116:
            out.append((path, float(head)))
    if not out:
        raise SystemExit(f"no UTKFace images (AGE_..._.jpg) in {folder}")
    return out


class Api:
    def __init__(self, url: str, token: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=120, headers={"Authorization": f"Bearer {token}"})

    def call(self, method: str, path: str, headers: dict[str, str] | None = None, **kwargs: Any) -> Any:
        response = self.http.request(method, path, headers=headers, **kwargs)
        if response.status_code >= 400:
            raise SystemExit(f"{method} {path}: {response.status_code} {response.text}")
        return response.json() if response.headers.get("content-type", "").startswith("application/json") else response


def start_local(port: int, data_dir: Path) -> tuple[subprocess.Popen[bytes], str, str]:
    log = open(data_dir / "service.log", "ab")  # noqa: SIM115 - lives as long as the child
    child = subprocess.Popen([sys.executable, str(REPO / "scripts" / "run_embedded.py"), "--port", str(port),
                              "--data-dir", str(data_dir)], cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise SystemExit(f"the local service did not start; see {data_dir / 'service.log'}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return child, url, (data_dir / "admin_token").read_text().strip()
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    child.terminate()
    raise SystemExit("the local service did not answer within 180 s")


def upload(api: Api, project: int, owner: dict[str, str], chosen: list[tuple[Path, float]]) -> dict[int, float]:
    """Upload in batches; returns ``{item_id: age}``."""
    ages: dict[int, float] = {}
    batch = 200
    for start in range(0, len(chosen), batch):
        part = chosen[start : start + batch]
        files = [("files", (p.name, p.read_bytes(), "image/jpeg")) for p, _ in part]
        result = api.call("POST", f"/projects/{project}/items", headers=owner, files=files)
        by_name = {p.name: age for p, age in part}
        for entry in result["items"]:
            ages[entry["item"]["id"]] = by_name[entry["name"]]
        print(f"\r  uploaded {min(start + batch, len(chosen))}/{len(chosen)}", end="", flush=True)
    print()
    return ages


def label(api: Api, owner: dict[str, str], ids: list[int], ages: dict[int, float]) -> None:
    for item_id in ids:
        api.call("PUT", f"/items/{item_id}/label", headers=owner, json={"values": {"age": ages[item_id]}})


def train(api: Api, project: int, owner: dict[str, str]) -> dict[str, Any]:
    job = api.call("POST", f"/projects/{project}/jobs", headers=owner)
    started = time.monotonic()
    while job["status"] in ("queued", "running"):
        time.sleep(1)
        job = api.call("GET", f"/jobs/{job['id']}", headers=owner)
        m = job.get("metrics") or {}
        total = job["progress_total"] or 0
        bar = "#" * int(30 * job["progress_step"] / total) if total else ""
        eta = f" eta {m['eta_seconds']:.0f}s" if m.get("eta_seconds") and job["phase"] == "training" else ""
        loss = f" loss {m['loss']:.3f}" if "loss" in m else ""
        print(f"\r  job {job['id']} {job['status']:<9} {job['phase'] or '':<15} [{bar:<30}] "
              f"{job['progress_step']}/{total or '?'}{loss}{eta}  {time.monotonic() - started:5.0f}s   ",
              end="", flush=True)
    print()
    if job["status"] != "succeeded":
        raise SystemExit(f"training ended {job['status']}: {job['error']}")
    return job


def predict_onnx(model_dir: Path, images: list[Path]) -> np.ndarray:
    """The downloaded model, on its own: onnxruntime + the preprocessing in config.json."""
    import onnxruntime as ort
    from PIL import Image

    config = json.loads((model_dir / "config.json").read_text())
    h, w = config["preprocess"]["size"]
    session = ort.InferenceSession(str(model_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    batch = np.stack([np.asarray(Image.open(p).convert("RGB").resize((w, h), Image.Resampling.BILINEAR),
                                 dtype=np.float32).transpose(2, 0, 1) / 255 for p in images])
    heads = session.run([config["onnx"]["output"]], {config["onnx"]["input"]: batch})[0]
    return heads.mean(0)[:, 0]  # mean over heads, the one target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="a running service (default: start one here)")
    parser.add_argument("--token", default=os.environ.get("XM_ADMIN_TOKEN"), help="admin token (with --url)")
    parser.add_argument("--faces", type=Path, default=Path(os.environ.get("XM_UTKFACE_DIR", DEFAULT_FACES)))
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--labels", type=int, default=50)
    parser.add_argument("--suggest", type=int, default=50, help="faces to label after the first model")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--data-dir", type=Path, default=REPO / "var" / "demo")
    args = parser.parse_args(argv)

    every = faces(args.faces)
    rng = random.Random(0)
    rng.shuffle(every)
    chosen, held_out = every[: args.images], every[args.images : args.images + 200]
    child = None
    if args.url:
        if not args.token:
            raise SystemExit("--url needs --token (or XM_ADMIN_TOKEN)")
        url, token = args.url, args.token
    else:
        args.data_dir.mkdir(parents=True, exist_ok=True)
        print(f"starting a local API + worker in {args.data_dir} ...")
        child, url, token = start_local(args.port, args.data_dir)
    try:
        api = Api(url, token)
        t0 = time.monotonic()
        body = {"name": f"utkface-age-{int(time.time())}",
                "task": {"kind": "regression", "targets": ["age"], "ranges": {"age": [1, 116]}},
                "image_size": 64, "backbone": "mobilenet_v2",
                "training": {"steps": args.steps, "batch_size": 32, "unlabelled_batch_size": 32,
                             "eval_every": max(10, args.steps // 5), "freeze_blocks": 14}}
        project = api.call("POST", "/projects", json=body)
        pid, owner = project["id"], {"Authorization": f"Bearer {project['owner_token']}"}
        print(f"project {pid} at {url}; uploading {len(chosen)} faces from {args.faces}")
        ages = upload(api, pid, owner, chosen)
        first = rng.sample(sorted(ages), args.labels)
        label(api, owner, first, ages)
        print(f"labelled {len(first)} faces from their file names; training round 1")
        job1 = train(api, pid, owner)
        print(f"  model v1: validation MAE {job1['metrics'].get('val_error')} years "
              f"({job1['metrics'].get('steps_per_second')} steps/s on {job1['metrics'].get('device')})")

        suggestion = api.call("GET", f"/projects/{pid}/suggest", headers=owner,
                              params={"k": args.suggest, "strategy": "xmodel"})
        picks = [item["item_id"] for item in suggestion["items"]]
        top = suggestion["items"][:5]
        print(f"/suggest ({suggestion['strategy']}, model v{suggestion['model_version']}) picked {len(picks)} faces; "
              f"top scores {[round(i['score'], 4) for i in top]}, true ages {[ages[i['item_id']] for i in top]}")
        label(api, owner, picks, ages)
        print(f"labelled them ({len(first) + len(picks)} labels in all); training round 2 (warm start)")
        job2 = train(api, pid, owner)
        print(f"  model v2: validation MAE {job2['metrics'].get('val_error')} years")

        model_id = job2["model_id"]
        out = args.data_dir / "downloads" / f"model-{model_id}"
        out.mkdir(parents=True, exist_ok=True)
        for fmt, name in (("onnx", "model.onnx"), ("config", "config.json")):
            response = api.http.get(f"/models/{model_id}/download", headers=owner, params={"format": fmt})
            response.raise_for_status()
            (out / name).write_bytes(response.content)
        predicted = predict_onnx(out, [p for p, _ in held_out])
        truth = np.array([age for _, age in held_out])
        mae = float(np.abs(predicted - truth).mean())
        baseline = float(np.abs(truth - np.median([ages[i] for i in first + picks])).mean())
        served = api.call("POST", f"/models/{model_id}/predict", headers=owner,
                          files={"file": (held_out[0][0].name, held_out[0][0].read_bytes(), "image/jpeg")})
        print(f"downloaded model {model_id} to {out}; on {len(held_out)} held-out faces: "
              f"MAE {mae:.2f} years (predicting the labelled median: {baseline:.2f})")
        print(f"API predict on {held_out[0][0].name}: {served['prediction']['values']['age']:.1f} "
              f"(local ONNX {predicted[0]:.1f}, true {held_out[0][1]:.0f})")
        print(f"done in {time.monotonic() - t0:.0f} s")
    finally:
        if child is not None:
            child.send_signal(2)  # SIGINT: the launcher stops the API and the worker
            child.wait(60)
    return 0


if __name__ == "__main__":
    sys.exit(main())
