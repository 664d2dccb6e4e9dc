"""Does /suggest save labels? The active-learning loop measured through the API, as a client.

A simulated annotator drives a running service over HTTP only (httpx): it creates one project
per (dataset, strategy, seed), uploads the pool, labels what ``/suggest`` hands it from the
ground truth, retrains after each round through ``POST /projects/{id}/jobs`` and measures every
model version on a held-out test set that is never uploaded, by downloading the model
(``/models/{id}/download?format=onnx|config``) and running it with onnxruntime, preparing the
images from the preprocessing in ``config.json``.

    python -m bench.active_learning                       # full run, 3 seeds, every dataset
    python -m bench.active_learning --quick               # 1 seed, small pools, 4 rounds (<30 min, 2 cores)
    python -m bench.active_learning --smoke --out-dir D   # CI: tiny kites, 2 rounds, a minute
    python -m bench.active_learning --product             # the product's defaults, xmodel vs random
    python -m bench.active_learning --url URL --token ADMIN   # against a running service

``--product`` runs each dataset as a user's project gets it: MobileNetV2 at the task kind's
default image size and the service's own training defaults for that kind (supervised training
for regression and classification, the X-model for keypoints; 500 steps), a 4,000-image
Fashion-MNIST pool, ``xmodel`` against ``random``; results go to ``active_learning_product.*``.

Without ``--url`` it starts its own API + worker (``scripts/run_embedded.py``, as
``scripts/demo.py`` does) on a fresh data folder and stops them at the end.

Protocol (every strategy on the same seeds, the same X-model, the same settings; only the
choice of items differs):

- Pools and test sets are ``bench/datasets.py``'s fixed splits: UTKFace age (pool 4,000 faces,
  1,000 held out), Fashion-MNIST (pool 10,000 of the training side, the first 2,000 of the
  official test set), synthetic kites (keypoints; pool 2,000, test 500 from another generator
  seed). Images are uploaded as PNGs already at the project's size (the worker's bilinear
  resize is then the identity), named by their pool index.
- Cold start: 50 items from the service's cold-start strategy (``/suggest`` on a project with
  no model: ``cold_start_random``), asked once per (dataset, seed) on the first strategy's
  project; every other strategy's project of that seed labels the same 50 pool images, so the
  curves share their first point.
- Rounds: ``/suggest?k=50&strategy=S`` → label → retrain (the service warm-starts each job
  from the active model) → measure, up to 500 labels (10 models per run). The answer's
  ``strategy`` must equal the requested one after the cold start (no silent fallback).
- Strategies: ``xmodel`` (the product default: X-model disagreement walked across k-means
  clusters), ``xmodel_nodiv`` (disagreement only), ``random``, ``mc_dropout`` (dropout
  variance, scored by the worker when the project's ``training.score_strategies`` asks),
  ``entropy`` (classification only).
- Errors: UTKFace MAE in years, overall and balanced (the mean of the per-decade MAE: the overall MAE hides the rare old faces);
  Fashion-MNIST top-1 error in %; kites mean point distance in pixels. The prediction is the
  mean over the heads.

Chosen settings (full run; ``settings()`` holds them) and time on 2 CPU cores:

- UTKFace: MobileNetV2 (ImageNet) at 48 px, first 14 blocks frozen, 60 steps per round
  (batch 32 labelled + 32 unlabelled), lr 3e-3 (extractor x0.3), xmodel score with 2 views
  (plain + one weak warp) x 2 heads.
- Fashion-MNIST: small_cnn from scratch at 28 px, 100 steps per round, 2 score views.
- Kites: small_cnn at 48 px, 100 steps per round, 2 score views.
- Warm start: always (the service's behaviour); the step count per round stays fixed.

Measured on 2 CPU cores, 1 thread per process, two processes side by side: one run of 10 rounds (train, export, score the pool, measure) took
~6.9 min on UTKFace (~41 s a round), ~4.4 min on Fashion-MNIST and ~6.8 min on the kites (with
``mc_dropout`` the slowest). The whole protocol (every strategy, 3 seeds, three datasets: 39
runs) is ~3 h 50 min of process time. Split over two processes it takes about 2 h of wall time,
inside a 2.5 h budget: process A runs UTKFace, then the kites' ``xmodel_nodiv`` and
``mc_dropout`` with ``--cold-starts-from`` B's file (one dataset's strategies must share each
seed's cold start); process B runs Fashion-MNIST, then the kites' ``xmodel`` and ``random``;
``--merge`` joins the files (docs/RESULTS.md §4 has the commands). ``--seed-ids`` splits by seed
instead. Slower machines took ~55-70 s a UTKFace round. On a GPU worker the
same run takes minutes. Runs from different machines differ in floating-point detail (the same
50-label Fashion-MNIST model: 33.00 % on one, 33.95 % on another), so every strategy of one seed
runs on one machine.

Results:
``bench/results/active_learning[_quick].json`` (every round of every run, including the pool
indices picked), ``.png`` (test error against labels, one line per strategy, mean ± std band)
and ``.md`` (the tables for docs/RESULTS.md). An interrupted run resumes: finished
(dataset, strategy, seed) runs in the JSON are kept.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import io
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from xmodel_contracts.exported import CONFIG_FILE, ONNX_FILE, open_session, read_export_config
from xmodel_contracts.launch import free_port
from xmodel_contracts.training_defaults import DEFAULT_BACKBONE, default_image_size
from xmodel_core.export import atomic_write_bytes

from .datasets import FASHION_CLASSES, Benchmark, fashion_mnist, kites, utkface

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
ANNOTATOR = "simulated-annotator"
BASELINE_SCORES = {"mc_dropout", "entropy"}  # strategies whose scores the worker writes on request


def _demo() -> Any:
    """``scripts/demo.py`` (not a package): its ``Api`` client and ``start_local`` launcher."""
    spec = importlib.util.spec_from_file_location("xmodel_demo", REPO / "scripts" / "demo.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---- settings ----------------------------------------------------------------------------------
@dataclass
class Spec:
    """One dataset's project (task, backbone, training) and how its test error is measured."""

    build: Callable[[], Benchmark]
    task: dict[str, Any]
    image_size: int
    backbone: str
    training: dict[str, Any]
    strategies: list[str]
    unit: str
    balanced: bool = False  # also report the balanced error (UTKFace: mean per-decade MAE)
    cold_start: int = 50
    round_size: int = 50
    budget: int = 500
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def budgets(self) -> list[int]:
        return list(range(self.cold_start, self.budget + 1, self.round_size))


REGRESSION = ["xmodel", "xmodel_nodiv", "random", "mc_dropout"]
CLASSIFICATION = [*REGRESSION, "entropy"]


def product_settings(kite_pool: int = 2000, kite_test: int = 500) -> dict[str, Spec]:
    """Each dataset as a user's project gets it: the task kind's default image size and the
    product's training defaults (no overrides), MobileNetV2."""
    common: dict[str, Any] = {
        "backbone": DEFAULT_BACKBONE,
        "training": {},
        "strategies": ["xmodel", "random"],
    }
    age, fashion, kite = (
        default_image_size(k) for k in ("regression", "classification", "keypoints")
    )
    return {
        "utkface_age": Spec(
            build=lambda: utkface(age, n_test=1000, pool_limit=4000),
            task={"kind": "regression", "targets": ["age"], "ranges": {"age": [1, 116]}},
            image_size=age,
            unit="MAE (years)",
            balanced=True,
            **common,
        ),
        "fashion_mnist": Spec(
            build=lambda: fashion_mnist(pool_limit=4000, test_limit=2000),
            task={"kind": "classification", "classes": list(FASHION_CLASSES)},
            image_size=fashion,
            unit="error (%)",
            **common,
        ),
        "kites_keypoints": Spec(
            build=lambda: kites(kite, n_pool=kite_pool, n_test=kite_test),
            task={
                "kind": "keypoints",
                "points": ["left", "right", "top", "bottom"],
                "flip_pairs": [["left", "right"]],
            },
            image_size=kite,
            unit=f"mean point error (px at {kite} px)",
            **common,
        ),
    }


def settings(mode: str) -> dict[str, Spec]:
    """``mode``: ``full``, ``quick``, ``smoke`` or ``product`` (:func:`product_settings`)."""
    if mode == "product":
        return product_settings()
    quick, smoke = mode == "quick", mode == "smoke"
    steps = {"utkface_age": 60, "fashion_mnist": 100, "kites_keypoints": 100}
    if quick:
        steps = {"utkface_age": 30, "fashion_mnist": 40, "kites_keypoints": 40}
    base = {"batch_size": 32, "unlabelled_batch_size": 32, "lr": 3e-3, "score_views": 2}
    budget: dict[str, Any] = {"budget": 200} if quick else {}
    if smoke:
        return {
            "kites_keypoints": Spec(
                build=lambda: kites(24, n_pool=80, n_val=1, n_test=40),
                task={
                    "kind": "keypoints",
                    "points": ["left", "right", "top", "bottom"],
                    "flip_pairs": [["left", "right"]],
                },
                image_size=24,
                backbone="small_cnn",
                training={
                    **base,
                    "steps": 4,
                    "eval_every": 2,
                    "batch_size": 8,
                    "unlabelled_batch_size": 8,
                    "pretrained": False,
                    "checkpoint_every": 0,
                },
                strategies=["xmodel", "random", "mc_dropout"],
                unit="mean point error (px at 24 px)",
                cold_start=10,
                round_size=10,
                budget=20,
            )
        }
    return {
        "utkface_age": Spec(
            build=lambda: utkface(
                48, n_test=500 if quick else 1000, pool_limit=1000 if quick else 4000
            ),
            task={"kind": "regression", "targets": ["age"], "ranges": {"age": [1, 116]}},
            image_size=48,
            backbone="mobilenet_v2",
            training={
                **base,
                "steps": steps["utkface_age"],
                "eval_every": 20,
                "freeze_blocks": 14,
                "extractor_lr_scale": 0.3,
            },
            strategies=REGRESSION,
            unit="MAE (years)",
            balanced=True,
            **budget,
        ),
        "fashion_mnist": Spec(
            build=lambda: fashion_mnist(
                pool_limit=2000 if quick else 10_000, test_limit=1000 if quick else 2000
            ),
            task={"kind": "classification", "classes": list(FASHION_CLASSES)},
            image_size=28,
            backbone="small_cnn",
            training={
                **base,
                "steps": steps["fashion_mnist"],
                "eval_every": 25,
                "pretrained": False,
            },
            strategies=CLASSIFICATION,
            unit="error (%)",
            **budget,
        ),
        "kites_keypoints": Spec(
            build=lambda: kites(48, n_pool=500 if quick else 2000, n_test=250 if quick else 500),
            task={
                "kind": "keypoints",
                "points": ["left", "right", "top", "bottom"],
                "flip_pairs": [["left", "right"]],
            },
            image_size=48,
            backbone="small_cnn",
            training={
                **base,
                "steps": steps["kites_keypoints"],
                "eval_every": 25,
                "pretrained": False,
            },
            strategies=REGRESSION,
            unit="mean point error (px at 48 px)",
            **budget,
        ),
    }


# ---- the simulated annotator ------------------------------------------------------------------
def png(image: torch.Tensor) -> bytes:
    """uint8 ``[3, H, W]`` -> PNG bytes."""
    buffer = io.BytesIO()
    Image.fromarray(image.permute(1, 2, 0).numpy()).save(buffer, format="PNG")
    return buffer.getvalue()


def label_json(spec: Spec, target: torch.Tensor) -> dict[str, Any]:
    """Ground truth -> the service's label body."""
    kind = spec.task["kind"]
    if kind == "regression":
        return {"values": {spec.task["targets"][0]: float(target.reshape(-1)[0])}}
    if kind == "classification":
        return {"class": spec.task["classes"][int(target)]}
    side = spec.image_size
    return {
        "points": [[float(x) * side, float(y) * side] for x, y in target.reshape(-1, 2).tolist()]
    }


class Annotator:
    """One project seen from outside: uploads, suggestions, labels, training, evaluation."""

    def __init__(
        self, api: Any, spec: Spec, bench: Benchmark, name: str, seed: int, strategy: str
    ) -> None:
        self.api, self.spec, self.bench, self.strategy = api, spec, bench, strategy
        training = {**spec.training, "seed": seed}
        if strategy in BASELINE_SCORES:
            training["score_strategies"] = [strategy]
        project = api.call(
            "POST",
            "/projects",
            json={
                "name": name,
                "task": spec.task,
                "image_size": spec.image_size,
                "backbone": spec.backbone,
                "training": training,
            },
        )
        self.project = project["id"]
        self.owner = {"Authorization": f"Bearer {project['owner_token']}"}
        self.item_of: dict[int, int] = {}  # pool index -> item id
        self.index_of: dict[int, int] = {}  # item id -> first pool index with that image

    def upload(self, batch: int = 250) -> float:
        started = time.perf_counter()
        images = self.bench.pool.images
        for start in range(0, len(images), batch):
            files = [
                ("files", (f"{i:06d}.png", png(images[i]), "image/png"))
                for i in range(start, min(len(images), start + batch))
            ]
            result = self.api.call(
                "POST", f"/projects/{self.project}/items", headers=self.owner, files=files
            )
            for entry in result["items"]:
                index, item_id = int(entry["name"].split(".")[0]), int(entry["item"]["id"])
                self.item_of[index] = item_id
                self.index_of.setdefault(item_id, index)
        return time.perf_counter() - started

    def suggest(self, k: int) -> tuple[list[int], dict[str, Any]]:
        """Pool indices of ``k`` suggestions and the answer's header (strategy, cold start)."""
        answer = self.api.call(
            "GET",
            f"/projects/{self.project}/suggest",
            headers=self.owner,
            params={"k": k, "strategy": self.strategy, "annotator": ANNOTATOR},
        )
        picks = [self.index_of[item["item_id"]] for item in answer["items"]]
        return picks, {
            key: answer[key] for key in ("strategy", "cold_start", "model_version", "note")
        }

    def label(self, indices: list[int]) -> None:
        for index in indices:
            self.api.call(
                "PUT",
                f"/items/{self.item_of[index]}/label",
                headers=self.owner,
                json=label_json(self.spec, self.bench.pool.targets[index]),
            )

    def train(self, timeout: float = 3600) -> dict[str, Any]:
        job = self.api.call("POST", f"/projects/{self.project}/jobs", headers=self.owner)
        deadline = time.monotonic() + timeout
        while job["status"] in ("queued", "running"):
            if time.monotonic() > deadline:
                raise RuntimeError(f"job {job['id']} still {job['status']} after {timeout:.0f}s")
            time.sleep(0.5)
            job = self.api.call("GET", f"/jobs/{job['id']}", headers=self.owner)
        if job["status"] != "succeeded":
            raise RuntimeError(
                f"training job {job['id']} ended {job['status']}: {job.get('error')}"
            )
        return job

    def test_model(self, model_id: int, folder: Path, threads: int) -> dict[str, float]:
        """Download model ``model_id`` into ``folder``; its errors on the benchmark's test set."""
        folder = self.download(model_id, folder)
        predicted = onnx_predict(folder, self.bench.test.images, threads)
        return test_errors(self.spec, predicted, self.bench.test.targets)

    def download(self, model_id: int, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        for fmt, name in (("onnx", "model.onnx"), ("config", "config.json")):
            response = self.api.http.get(
                f"/models/{model_id}/download", headers=self.owner, params={"format": fmt}
            )
            response.raise_for_status()
            (folder / name).write_bytes(response.content)
        return folder


# ---- measuring a downloaded model ---------------------------------------------------------------
def prepare(images: torch.Tensor, preprocess: dict[str, Any]) -> np.ndarray:
    """uint8 ``[N, 3, S, S]`` -> the model's float input, as ``config.json`` says."""
    if preprocess.get("channels", "RGB") != "RGB" or preprocess.get("layout", "NCHW") != "NCHW":
        raise ValueError(f"unexpected preprocessing {preprocess}")
    height, width = preprocess["size"]
    if tuple(images.shape[-2:]) != (height, width):
        images = torch.stack(
            [
                torch.from_numpy(
                    np.asarray(
                        Image.fromarray(im.permute(1, 2, 0).numpy()).resize(
                            (width, height), Image.Resampling.BILINEAR
                        )
                    ).copy()
                ).permute(2, 0, 1)
                for im in images
            ]
        )
    x = images.numpy().astype(np.float32) * float(preprocess.get("scale", 1 / 255))
    if not preprocess.get("normalize_inside_model", True):
        mean = np.asarray(preprocess["mean"], np.float32).reshape(1, -1, 1, 1)
        std = np.asarray(preprocess["std"], np.float32).reshape(1, -1, 1, 1)
        x = (x - mean) / std
    return x


def onnx_predict(folder: Path, images: torch.Tensor, threads: int, batch: int = 256) -> np.ndarray:
    """Mean over heads of the exported model's decoded output -> ``[N, D]``."""
    config = read_export_config(folder / CONFIG_FILE)
    session = open_session(folder / ONNX_FILE, threads)
    out = []
    for start in range(0, len(images), batch):
        x = prepare(images[start : start + batch], config["preprocess"])
        out.append(session.run([config["onnx"]["output"]], {config["onnx"]["input"]: x})[0].mean(0))
    return np.concatenate(out)


def test_errors(spec: Spec, prediction: np.ndarray, targets: torch.Tensor) -> dict[str, float]:
    """``test_error`` (and ``balanced_error`` where the spec asks) in the dataset's unit."""
    kind = spec.task["kind"]
    if kind == "regression":
        truth = targets.numpy().reshape(len(targets), -1)
        per_item = np.abs(prediction.reshape(len(truth), -1) - truth).mean(-1)
        decades = np.minimum(truth[:, 0] // 10, 9)  # 90+ is one group (few faces)
        balanced = float(np.mean([per_item[decades == d].mean() for d in np.unique(decades)]))
        return {"test_error": float(per_item.mean()), "balanced_error": balanced}
    if kind == "classification":
        truth = targets.numpy()
        wrong = (prediction.argmax(-1) != truth).astype(np.float64) * 100
        balanced = float(np.mean([wrong[truth == c].mean() for c in np.unique(truth)]))
        return {"test_error": float(wrong.mean()), "balanced_error": balanced}
    points = targets.numpy().reshape(len(targets), -1, 2)
    distance = (
        np.linalg.norm(prediction.reshape(points.shape) - points, axis=-1).mean(-1)
        * spec.image_size
    )
    return {"test_error": float(distance.mean())}


# ---- one run -----------------------------------------------------------------------------------
def run_one(
    api: Any,
    spec: Spec,
    bench: Benchmark,
    dataset: str,
    strategy: str,
    seed: int,
    cold: list[int] | None,
    work: Path,
    threads: int,
    log: Callable[[str], None],
    on_cold_start: Callable[[list[int]], None] | None = None,
) -> tuple[dict[str, Any], list[int]]:
    """One strategy on one seed, cold start to budget. ``cold``: the seed's cold-start pool
    indices, or None to ask the service (then handed to ``on_cold_start`` at once, so another
    process waiting on it can start, and returned for the other strategies)."""
    started = time.perf_counter()
    who = Annotator(
        api, spec, bench, f"al-{dataset}-{strategy}-s{seed}-{int(time.time())}", seed, strategy
    )
    upload_seconds = who.upload()
    distinct = len(who.index_of)
    if cold is None:
        cold, header = who.suggest(spec.cold_start)
        if not header["cold_start"]:
            raise RuntimeError(f"expected a cold start, got {header}")
        cold_source = header["strategy"]
        if on_cold_start is not None:
            on_cold_start(cold)
    else:
        cold_source = "shared"
    labelled: list[int] = []
    rounds: list[dict[str, Any]] = []
    picks, header = list(cold), {"strategy": cold_source, "cold_start": True}
    while True:
        already = set(labelled)
        fresh = [i for i in picks if i not in already]
        who.label(fresh)
        labelled += fresh
        job = who.train()
        errors = who.test_model(
            job["model_id"], work / f"{dataset}-{strategy}-s{seed}" / f"m{job['model_id']}", threads
        )
        metrics = job.get("metrics") or {}
        rounds.append(
            {
                "labels": len(labelled),
                **errors,
                "val_error": metrics.get("val_error"),
                "train_seconds": metrics.get("train_seconds"),
                "job_seconds": metrics.get("total_seconds"),
                "suggested_by": header["strategy"],
                "picked": fresh,
            }
        )
        extra = f" balanced {errors['balanced_error']:.3f}" if spec.balanced else ""
        log(
            f"{dataset} {strategy:12s} seed {seed} {len(labelled):4d} labels: test {errors['test_error']:.3f}{extra} "
            f"(job {metrics.get('total_seconds', float('nan')):.0f}s)"
        )
        if len(labelled) >= spec.budget:
            break
        picks, header = who.suggest(min(spec.round_size, spec.budget - len(labelled)))
        if header["strategy"] != strategy:
            raise RuntimeError(
                f"/suggest fell back to {header['strategy']!r} for {strategy!r}: {header.get('note')}"
            )
        if not picks:
            break
    run = {
        "dataset": dataset,
        "strategy": strategy,
        "seed": seed,
        "project_id": who.project,
        "pool": len(bench.pool),
        "distinct_items": distinct,
        "test": len(bench.test),
        "upload_seconds": round(upload_seconds, 2),
        "wall_seconds": round(time.perf_counter() - started, 2),
        "cold_start_source": cold_source,
        "rounds": rounds,
    }
    return run, cold


# ---- summaries -----------------------------------------------------------------------------------
SeedCurves = dict[str, dict[int, dict[int, float]]]  # strategy -> seed -> labels -> error


def seed_curves(runs: list[dict[str, Any]], dataset: str, key: str) -> SeedCurves:
    """Every run's errors by strategy and seed: what the means, the same-seed comparisons with
    random and the paired differences are all read from."""
    out: SeedCurves = {}
    for run in runs:
        if run["dataset"] == dataset:
            out.setdefault(run["strategy"], {})[run["seed"]] = {
                r["labels"]: r[key] for r in run["rounds"] if r.get(key) is not None
            }
    return out


def curves(by_seed: SeedCurves, seeds: set[int] | None = None) -> dict[str, dict[int, list[float]]]:
    """strategy -> labels -> the seeds' errors (only ``seeds`` when given)."""
    out: dict[str, dict[int, list[float]]] = {}
    for strategy, per_seed in by_seed.items():
        for seed, curve in per_seed.items():
            if seeds is None or seed in seeds:
                for labels, error in curve.items():
                    out.setdefault(strategy, {}).setdefault(labels, []).append(error)
    return out


def _paired(by_seed: SeedCurves, strategy: str) -> list[float]:
    ours, ref = by_seed.get(strategy, {}), by_seed.get("random", {})
    return [
        ours[s][b] - ref[s][b]
        for s in sorted(set(ours) & set(ref))
        for b in sorted(ours[s])[1:]
        if b in ref[s]
    ]


def paired_differences(
    runs: list[dict[str, Any]], dataset: str, key: str, strategy: str
) -> list[float]:
    """``strategy`` minus ``random`` on the same seed and budget, for every (seed, budget) both
    measured after the shared cold start: a paired view that the seeds' spread does not swamp."""
    return _paired(seed_curves(runs, dataset, key), strategy)


def labels_to_reach(mean_curve: list[tuple[int, float]], target: float) -> float | None:
    """First label count where the mean curve reaches ``target`` (linear interpolation between
    measured budgets); None when it never does."""
    for i, (b, e) in enumerate(mean_curve):
        if e <= target:
            if i == 0:
                return float(b)
            b0, e0 = mean_curve[i - 1]
            return b0 + (e0 - target) / (e0 - e) * (b - b0)
    return None


def _std(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def table(runs: list[dict[str, Any]], dataset: str, key: str, title: str) -> list[str]:
    """One Markdown table; every strategy is compared with ``random`` on the seeds it ran
    itself, so a strategy with fewer seeds is not held against other seeds' random runs."""
    by_seed = seed_curves(runs, dataset, key)
    data = curves(by_seed)
    if not data:
        return []
    budgets = sorted({b for c in data.values() for b in c})
    lines = [
        f"#### {title}",
        "",
        "| strategy | "
        + " | ".join(str(b) for b in budgets)
        + " | labels to reach random@max | within 1 std of random | seeds | paired with random |",
        "|---|" + "---|" * (len(budgets) + 4),
    ]
    top = budgets[-1]
    for strategy, curve in data.items():
        ref = curves({"random": by_seed.get("random", {})}, set(by_seed[strategy])).get(
            "random", {}
        )
        target = statistics.fmean(ref[top]) if top in ref else None
        cells = [
            f"{statistics.fmean(curve[b]):.2f} ± {_std(curve[b]):.2f}" if b in curve else "–"
            for b in budgets
        ]
        mean_curve = [(b, statistics.fmean(curve[b])) for b in budgets if b in curve]
        if target is None:
            reach = "–"
        else:
            needed = labels_to_reach(mean_curve, target)
            reach = (
                f"{needed:.0f} ({needed / top:.0%})"
                if needed is not None
                else f"not reached (> {top})"
            )
        seeds = min((len(v) for v in curve.values()), default=0)
        if strategy == "random" or not ref:
            within = "–"
        elif seeds < 2 or min(len(v) for v in ref.values()) < 2:
            within = "n/a (1 seed)"
        else:
            gaps = [
                (statistics.fmean(curve[b]) - statistics.fmean(ref[b])) / max(_std(ref[b]), 1e-12)
                for b in budgets[1:]
                if b in curve and b in ref
            ]
            within = f"{'yes' if max(gaps, default=0) <= 1 else 'no'} (worst {max(gaps, default=0):+.1f} std)"
        diffs = _paired(by_seed, strategy) if strategy != "random" else []
        paired = (
            f"better in {sum(d < 0 for d in diffs)}/{len(diffs)}, mean {statistics.fmean(diffs):+.2f}"
            if diffs
            else "–"
        )
        lines.append(
            f"| {strategy} | " + " | ".join(cells) + f" | {reach} | {within} | {seeds} | {paired} |"
        )
    lines.append("")
    return lines


def summarise(runs: list[dict[str, Any]], specs: dict[str, Spec]) -> str:
    lines = [
        "Test error (mean ± std over seeds) against labels; the cold start (first column) is "
        'shared. "labels to reach random@max": labels each strategy\'s mean curve needs to reach '
        "the error random sampling reaches with the most labels on the same seeds (linear interpolation; share of "
        "that budget). \"within 1 std\": mean never above random's mean by more than random's "
        'std at any budget after the cold start. "paired with random": over every (seed, budget) '
        "after the cold start that both ran, how often the strategy's error is lower than "
        "random's on the same seed, and the mean difference.",
        "",
    ]
    for dataset in dict.fromkeys(r["dataset"] for r in runs):
        spec = specs.get(dataset)
        unit = spec.unit if spec else ""
        seeds = len({r["seed"] for r in runs if r["dataset"] == dataset})
        lines += [f"### {dataset} — {unit}, {seeds} seed(s)", ""]
        lines += table(runs, dataset, "test_error", "overall")
        if spec is not None and spec.balanced:
            lines += table(runs, dataset, "balanced_error", "balanced (mean of per-decade MAE)")
    return "\n".join(lines)


COLOURS = {
    "random": "C0",
    "xmodel": "C1",
    "xmodel_nodiv": "C2",
    "mc_dropout": "C3",
    "entropy": "C4",
}  # the same in every panel


def plot(runs: list[dict[str, Any]], specs: dict[str, Spec], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    panels = []
    for dataset in dict.fromkeys(r["dataset"] for r in runs):
        spec = specs.get(dataset)
        panels.append((dataset, "test_error", spec.unit if spec else ""))
        if spec is not None and spec.balanced:
            panels.append((dataset, "balanced_error", f"balanced {spec.unit}"))
    figure = Figure(figsize=(5 * max(1, len(panels)), 4), dpi=100)
    for n, (dataset, key, unit) in enumerate(panels):
        axes = figure.add_subplot(1, len(panels), n + 1)
        for strategy, curve in curves(seed_curves(runs, dataset, key)).items():
            budgets = sorted(curve)
            mean = np.array([statistics.fmean(curve[b]) for b in budgets])
            std = np.array([_std(curve[b]) for b in budgets])
            line = axes.plot(
                budgets,
                mean,
                marker="o",
                markersize=3,
                label=strategy,
                color=COLOURS.get(strategy),
                linewidth=2.2 if strategy == "xmodel" else 1.2,
                linestyle="--" if strategy == "random" else "-",
            )[0]
            axes.fill_between(budgets, mean - std, mean + std, color=line.get_color(), alpha=0.12)
        axes.set_title(dataset if key == "test_error" else f"{dataset} (balanced)")
        axes.set_xlabel("labels")
        axes.set_ylabel(f"test {unit}")
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path)


# ---- main ------------------------------------------------------------------------------------
def wait_for_cold_start(
    path: Path, key: str, log: Callable[[str], None], poll: float = 15.0, timeout: float = 6 * 3600
) -> list[int]:
    """The cold start ``key`` ("dataset/seed") from another process's result file, waiting until
    that process has written it: one dataset's strategies split over processes must share it."""
    deadline = time.monotonic() + timeout
    logged = False
    while True:
        cold = (
            json.loads(path.read_text()).get("cold_starts", {}).get(key) if path.exists() else None
        )
        if cold:
            return [int(i) for i in cold]
        if time.monotonic() > deadline:
            raise SystemExit(f"no cold start {key} in {path} after {timeout:.0f} s")
        if not logged:
            log(f"waiting for the cold start {key} in {path}")
            logged = True
        time.sleep(poll)


def save(path: Path, document: dict[str, Any]) -> None:
    """Write the result document atomically (an interrupted run keeps its finished runs)."""
    atomic_write_bytes(path, json.dumps(document, indent=1).encode())


def write_outputs(out: Path, document: dict[str, Any], specs: dict[str, Spec]) -> str:
    """The JSON, the PNG (one line per strategy) and the Markdown tables of one result document."""
    save(out, document)
    plot(document["runs"], specs, out.with_suffix(".png"))
    summary = summarise(document["runs"], specs)
    out.with_suffix(".md").write_text(summary + "\n")
    return summary


def merge(paths: list[Path], out: Path, seed_ids: list[int] | None = None) -> str:
    """One result document from runs split over processes (a run found twice counts once);
    ``seed_ids`` keeps only those seeds (e.g. the seeds every strategy ran)."""
    documents = [json.loads(path.read_text()) for path in paths]
    mode = documents[0]["meta"]["mode"]
    if any(d["meta"]["mode"] != mode for d in documents):
        raise SystemExit("cannot merge results of different modes")
    runs: dict[tuple[str, str, int], dict[str, Any]] = {}
    cold_starts: dict[str, list[int]] = {}
    meta = {**documents[0]["meta"], "settings": {}, "merged_from": [str(p) for p in paths]}
    if seed_ids is not None:
        meta["seed_ids"] = sorted(seed_ids)
    for document in documents:
        for run in document["runs"]:
            if seed_ids is None or run["seed"] in seed_ids:
                runs.setdefault((run["dataset"], run["strategy"], run["seed"]), run)
        for key, cold in document["cold_starts"].items():
            if seed_ids is not None and int(key.rsplit("/", 1)[1]) not in seed_ids:
                continue
            if cold_starts.setdefault(key, cold) != cold:
                raise SystemExit(f"the files disagree on the cold start {key}")
        meta["settings"] |= document["meta"]["settings"]
    specs = {n: s for n, s in settings(mode).items() if n in meta["settings"]}
    return write_outputs(
        out, {"meta": meta, "cold_starts": cold_starts, "runs": list(runs.values())}, specs
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--quick", action="store_true", help="1 seed, small pools, rounds up to 200 labels"
    )
    mode.add_argument(
        "--smoke", action="store_true", help="CI: tiny kites, two rounds, a few steps"
    )
    mode.add_argument(
        "--product",
        action="store_true",
        help="each dataset at the product's defaults for its task kind (size, method, steps); "
        "xmodel against random",
    )
    parser.add_argument(
        "--seeds", type=int, default=None, help="number of seeds (default 3; quick/smoke 1)"
    )
    parser.add_argument("--datasets", nargs="*", default=None)
    parser.add_argument(
        "--strategies", nargs="*", default=None, help="subset of each dataset's strategies"
    )
    parser.add_argument("--url", help="a running service (default: start one here)")
    parser.add_argument(
        "--token", default=os.environ.get("XM_ADMIN_TOKEN"), help="admin token (with --url)"
    )
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    parser.add_argument(
        "--data-dir", type=Path, default=None, help="the local service's data (default: a temp dir)"
    )
    parser.add_argument(
        "--merge",
        nargs="+",
        type=Path,
        default=None,
        help="only merge these result files (a run split over processes) into --out-dir's files",
    )
    parser.add_argument(
        "--seed-ids",
        nargs="+",
        type=int,
        default=None,
        help="run only these seeds instead of 0..--seeds-1 (seeds split over processes); with "
        "--merge: keep only these seeds (e.g. 0 1 2, the seeds every strategy ran)",
    )
    parser.add_argument(
        "--cold-starts-from",
        type=Path,
        default=None,
        help="another process's result file: take each seed's cold start from it, waiting "
        "until it is there (one dataset's strategies split over processes)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch/onnxruntime threads here and in the local worker (default: all cores)",
    )
    args = parser.parse_args(argv)

    mode_name = (
        "smoke" if args.smoke else "quick" if args.quick else "product" if args.product else "full"
    )
    suffix = {"full": "", "quick": "_quick", "smoke": "_smoke", "product": "_product"}[mode_name]
    args.out_dir.mkdir(parents=True, exist_ok=True)
    if args.merge:
        print(merge(args.merge, args.out_dir / f"active_learning{suffix}.json", args.seed_ids))
        return 0
    threads = args.threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    seeds = args.seeds or (3 if mode_name in ("full", "product") else 1)
    specs = {
        n: s for n, s in settings(mode_name).items() if not args.datasets or n in args.datasets
    }
    if not specs:
        raise SystemExit(f"no dataset among {args.datasets}; known: {sorted(settings(mode_name))}")
    out = args.out_dir / f"active_learning{suffix}.json"
    previous = json.loads(out.read_text()) if out.exists() else {}
    runs: list[dict[str, Any]] = previous.get("runs", [])
    cold_starts: dict[str, list[int]] = previous.get("cold_starts", {})
    finished = {(r["dataset"], r["strategy"], r["seed"]) for r in runs}
    meta = {
        "mode": mode_name,
        "seeds": len(args.seed_ids) if args.seed_ids else seeds,
        "threads": threads,
        "settings": {
            n: {
                "task": s.task,
                "image_size": s.image_size,
                "backbone": s.backbone,
                "training": s.training,
                "strategies": s.strategies,
                "budgets": s.budgets,
                "unit": s.unit,
            }
            for n, s in specs.items()
        },
    }
    t0 = time.perf_counter()

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - t0:7.0f}s] {message}", flush=True)

    def checkpoint() -> None:
        save(out, {"meta": meta, "cold_starts": cold_starts, "runs": runs})

    def keep_cold_start(key: str, picked: list[int]) -> None:
        cold_starts[key] = picked  # saved before the run, for a process with --cold-starts-from
        checkpoint()

    demo = _demo()
    child = None
    scratch = tempfile.TemporaryDirectory(prefix="xm-al-")
    try:
        if args.url:
            if not args.token:
                raise SystemExit("--url needs --token (or XM_ADMIN_TOKEN)")
            url, token = args.url, args.token
        else:
            data_dir = (args.data_dir or Path(scratch.name) / "service").resolve()
            data_dir.mkdir(parents=True, exist_ok=True)
            os.environ.setdefault("OMP_NUM_THREADS", str(threads))  # the worker inherits it
            os.environ.setdefault("MKL_NUM_THREADS", str(threads))
            log(f"starting a local API + worker in {data_dir}")
            child, url, token = demo.start_local(free_port(), data_dir)
        api = demo.Api(url, token)
        for dataset, spec in specs.items():
            bench = spec.build()
            log(f"{dataset}: pool {len(bench.pool)}, test {len(bench.test)}")
            strategies = [s for s in spec.strategies if not args.strategies or s in args.strategies]
            for seed in args.seed_ids if args.seed_ids is not None else range(seeds):
                cold_key = f"{dataset}/{seed}"
                for strategy in strategies:
                    if (dataset, strategy, seed) in finished:
                        continue
                    cold = cold_starts.get(cold_key)
                    if cold is None and args.cold_starts_from is not None:
                        cold = wait_for_cold_start(args.cold_starts_from, cold_key, log)
                    run, cold = run_one(
                        api,
                        spec,
                        bench,
                        dataset,
                        strategy,
                        seed,
                        cold,
                        Path(scratch.name) / "models",
                        threads,
                        log,
                        functools.partial(keep_cold_start, cold_key),
                    )
                    cold_starts[cold_key] = cold
                    runs.append(run)
                    checkpoint()
    finally:
        if child is not None:
            child.send_signal(2)  # SIGINT: the launcher stops the API and the worker
            child.wait(90)
        scratch.cleanup()
    print(write_outputs(out, {"meta": meta, "cold_starts": cold_starts, "runs": runs}, specs))
    log(f"wrote {out}, {out.with_suffix('.png')} and {out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
