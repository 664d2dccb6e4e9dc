"""How long a retrain takes, from ``POST /jobs`` to an active model, through the API: the cached
frozen trunk (the product's path) against the old path that recomputes it at every step
(``"trunk_cache": false``), side by side in one run, at the same settings.

    python -m bench.retrain_speed                 # UTKFace, 250 labels, 4,000-image pool, 3 seeds
    python -m bench.retrain_speed --quick         # 1 seed, 60 labels, a 500-image pool

It starts its own API + worker (``scripts/run_embedded.py``) on a fresh folder. Every (path,
seed) gets its own project with the same images and labels, so no job warm-starts from the
other path's model. Before each cached-path job the worker's trunk cache is emptied: the
figure is the cold first retrain of a project (later retrains of the same images only run the
trainable part); each cached project then gets a warm retrain, measured as well.

Printed and saved (``bench/results/retrain_speed[_quick].json``): seconds from request to
active model split into loading, caching, training, export and scoring (from the job's
metrics), training steps per second, pool scoring views per second against the onnxruntime
rate of the same exported model on the same images (``scoring_vs_onnxruntime``), the worker's
resident memory before, during (peak) and after each job, and the test error of each model on
held-out faces. ``speedup`` = old path seconds / cached path seconds (mean over seeds, cold
cache); ``speedup_warm`` the same for the warm retrain each seed's project gets next.

The cold and old-path jobs run with the worker's prefill off (``XM_PREFILL_VIEWS=false``), so
the cold cache is really cold. Then the service restarts with the prefill on, as the product
ships, and each seed gets one more project (``prefilled``): upload, labels, the worker fills
the cache from the upload and the labels (``prefill_seconds``: from the upload's end until
every view is stored), then the first job is timed. ``speedup_prefilled`` = old path seconds
/ that first job's seconds: what a user who trains after labelling waits for.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from xmodel_contracts.exported import CONFIG_FILE, ONNX_FILE, open_session, read_export_config
from xmodel_contracts.launch import free_port
from xmodel_contracts.training_defaults import default_image_size, product_defaults
from xmodel_core.export import atomic_write_bytes

from .active_learning import Annotator, Spec, _demo, prepare
from .datasets import utkface

RESULTS = Path(__file__).resolve().parent / "results"
PATHS = {"cached": {"trunk_cache": True}, "recompute": {"trunk_cache": False}}


def worker_pid(launcher_pid: int) -> int | None:
    """The embedded worker process (a child of the launcher running celery)."""
    for child in Path(f"/proc/{launcher_pid}/task").glob("*/children"):
        for pid in child.read_text().split():
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
            if b"celery" in cmdline:
                return int(pid)
    return None


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class PeakRss(threading.Thread):
    """Samples a process's resident memory every 0.2 s until stopped; keeps the peak."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self._stop_event = pid, 0.0, threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.peak = max(self.peak, rss_mb(self.pid))
            time.sleep(0.2)

    def stop(self) -> float:
        self._stop_event.set()
        self.join()
        return self.peak


def onnx_rate(folder: Path, images: torch.Tensor, threads: int) -> float:
    """Images per second of the exported model through onnxruntime (batch 256), the images
    already prepared (decoding is not counted, as it is not in the worker's figure either)."""
    config = read_export_config(folder / CONFIG_FILE)
    session = open_session(folder / ONNX_FILE, threads)
    batches = [
        prepare(images[s : s + 256], config["preprocess"]) for s in range(0, len(images), 256)
    ]
    session.run(None, {config["onnx"]["input"]: batches[0][:8]})
    start = time.perf_counter()
    for x in batches:
        session.run(None, {config["onnx"]["input"]: x})
    return len(images) / (time.perf_counter() - start)


def _record(
    runs: list[dict[str, Any]], path: str, seed: int, result: dict[str, Any], warm: bool
) -> None:
    """Keep one job's figures and print them (a warm-cache rerun without its test error)."""
    runs.append({"path": path, "seed": seed, "warm": warm, **result})
    where = f"seed {seed} {path:9s}" + (" (warm cache)" if warm else "")
    detail = "" if warm else f" test {result['test_error']:.3f} rss {result['rss_mb']}"
    print(f"{where}: {result['total_seconds']:.1f} s {result['phases']}{detail}", flush=True)


def one_job(
    who: Annotator,
    overrides: dict[str, Any],
    pid: int,
    cache_dir: Path,
    cold: bool,
    work: Path,
    threads: int,
) -> dict[str, Any]:
    if cold:
        shutil.rmtree(cache_dir, ignore_errors=True)
    time.sleep(2)
    before = rss_mb(pid)
    peak = PeakRss(pid)
    peak.start()
    started = time.perf_counter()
    job = who.api.call(
        "POST", f"/projects/{who.project}/jobs", headers=who.owner, json={"training": overrides}
    )
    while job["status"] in ("queued", "running"):
        time.sleep(0.25)
        job = who.api.call("GET", f"/jobs/{job['id']}", headers=who.owner)
    seconds = time.perf_counter() - started
    during = peak.stop()
    if job["status"] != "succeeded":
        raise RuntimeError(f"job {job['id']} ended {job['status']}: {job.get('error')}")
    time.sleep(3)
    after = rss_mb(pid)
    m = job.get("metrics") or {}
    folder = work / f"m{job['model_id']}"
    errors = who.test_model(job["model_id"], folder, threads)
    steps = m.get("steps_done") or 0
    return {
        "total_seconds": round(seconds, 2),
        "phases": {k: m.get(f"{k}_seconds") for k in ("load", "cache", "train", "export", "score")},
        "steps_per_second": round(steps / m["train_seconds"], 3)
        if m.get("train_seconds")
        else None,
        "scoring_views_per_second": round(m["scored_views"] / m["score_seconds"], 1)
        if m.get("score_seconds")
        else None,
        "cache_hits": m.get("cache_hits"),
        "cache_misses": m.get("cache_misses"),
        "rss_mb": {"before": round(before, 1), "peak": round(during, 1), "after": round(after, 1)},
        "model_dir": str(folder),
        **errors,
    }


@contextlib.contextmanager
def running_service(demo: Any, work: Path) -> Iterator[tuple[Any, int]]:
    """The embedded API + worker on ``work/data`` (environment inherited): (client, worker pid)."""
    server, url, token = demo.start_local(free_port(), work / "data")
    try:
        time.sleep(5)
        pid = worker_pid(server.pid)
        if pid is None:
            raise RuntimeError("could not find the embedded worker process")
        yield demo.Api(url, token), pid
    finally:
        server.terminate()
        server.wait(timeout=60)


def wait_for_views(cache_dir: Path, counts: dict[str, int], timeout: float) -> None:
    """Until the cache holds at least ``counts[kind]`` entries of each kind (the prefill)."""
    deadline = time.monotonic() + timeout
    while True:
        found = {kind: len(list(cache_dir.rglob(f"*.{kind}.safetensors"))) for kind in counts}
        if all(found[kind] >= n for kind, n in counts.items()):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"the prefill stored {found} of {counts} views in {timeout} s")
        time.sleep(1.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seeds", type=int, nargs="+", default=None)
    parser.add_argument(
        "--image-size", type=int, default=None, help="default: the product's project default"
    )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    seeds = args.seeds or ([0] if args.quick else [0, 1, 2])
    labels, pool = (60, 500) if args.quick else (250, 4000)
    defaults = product_defaults("regression")  # recorded with the results
    size = args.image_size or default_image_size("regression")
    bench = utkface(size, n_test=300 if args.quick else 1000, pool_limit=labels + pool)
    training: dict[str, Any] = {}  # the worker's product defaults apply
    spec = Spec(
        build=lambda: bench,
        task={"kind": "regression", "targets": ["age"], "ranges": {"age": [1, 116]}},
        image_size=size,
        backbone="mobilenet_v2",
        training=training,
        strategies=["xmodel"],
        unit="MAE (years)",
    )
    threads = torch.get_num_threads()
    out = args.out or RESULTS / f"retrain_speed{'_quick' if args.quick else ''}.json"
    saved = json.loads(out.read_text()) if out.exists() else {}
    runs: list[dict[str, Any]] = saved.get("runs", [])  # resumable: finished (path, seed) runs stay
    done = {(r["path"], r["seed"]) for r in runs if not r["warm"]}
    ort: float | None = saved.get("onnxruntime_images_per_second")

    def save() -> dict[str, Any]:
        summary = summarise(runs, ort)
        document = {
            "settings": {
                "labels": labels,
                "pool": pool,
                "image_size": size,
                "threads": threads,
                "training": defaults,
                "seeds": sorted({r["seed"] for r in runs} | set(seeds)),
            },
            "runs": runs,
            **summary,
        }
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(out, json.dumps(document, indent=1).encode())
        return summary

    demo = _demo()
    work = Path(tempfile.mkdtemp(prefix="retrain-speed-"))
    (work / "data").mkdir(parents=True)
    cache_dir = work / "data" / "storage" / "cache" / "trunk"
    labelled = list(range(labels))
    os.environ["XM_PREFILL_VIEWS"] = "false"  # the cold cache stays cold until its job
    with running_service(demo, work) as (api, pid):
        for seed in seeds:
            for path in ("cached", "recompute") if seed % 2 == 0 else ("recompute", "cached"):
                if (path, seed) in done:
                    continue
                who = Annotator(api, spec, bench, f"speed-{path}-s{seed}", seed, "xmodel")
                who.upload()
                who.label(labelled)
                result = one_job(who, PATHS[path], pid, cache_dir, True, work, threads)
                _record(runs, path, seed, result, warm=False)
                if path == "cached":
                    if ort is None:  # the onnxruntime rate of this very model, same pool images
                        ort = onnx_rate(
                            Path(result["model_dir"]), bench.pool.images[labels:], threads
                        )
                    again = one_job(who, PATHS[path], pid, cache_dir, False, work, threads)
                    _record(runs, path, seed, again, warm=True)
                save()
    os.environ["XM_PREFILL_VIEWS"] = "true"  # as the product ships
    with running_service(demo, work) as (api, pid):
        for seed in seeds:
            if ("prefilled", seed) in done:
                continue
            shutil.rmtree(cache_dir, ignore_errors=True)
            who = Annotator(api, spec, bench, f"speed-prefilled-s{seed}", seed, "xmodel")
            who.upload()
            uploaded = time.perf_counter()
            who.label(labelled)
            items = len(set(who.item_of.values()))  # (a repeated image is one item)
            marked = len({who.item_of[i] for i in labelled})
            counts = {"plain": items, "strong": items, "weak": marked}
            wait_for_views(cache_dir, counts, timeout=1800)
            prefill = time.perf_counter() - uploaded
            result = one_job(who, PATHS["cached"], pid, cache_dir, False, work, threads)
            _record(
                runs, "prefilled", seed, {**result, "prefill_seconds": round(prefill, 1)}, False
            )
            save()
    print(json.dumps(save(), indent=1))
    shutil.rmtree(work, ignore_errors=True)
    return 0


def summarise(runs: list[dict[str, Any]], ort_rate: float | None) -> dict[str, Any]:
    def mean(path: str, key: str, warm: bool = False) -> float:
        values = [
            r[key]
            for r in runs
            if r["path"] == path and r["warm"] == warm and r.get(key) is not None
        ]
        return float(statistics.mean(values)) if values else float("nan")

    cached, old = mean("cached", "total_seconds"), mean("recompute", "total_seconds")
    scoring = mean("cached", "scoring_views_per_second")
    return {
        "total_seconds": {
            "cached": round(cached, 1),
            "recompute": round(old, 1),
            "cached_warm": round(mean("cached", "total_seconds", True), 1),
            "cached_prefilled": round(mean("prefilled", "total_seconds"), 1),
        },
        "speedup": round(old / cached, 2),
        # the first job of a project whose views the worker prefilled while labels came in
        "speedup_prefilled": round(old / mean("prefilled", "total_seconds"), 2),
        "prefill_seconds": round(mean("prefilled", "prefill_seconds"), 1),
        # a retrain of the same project: its images' views are in the cache
        "speedup_warm": round(old / mean("cached", "total_seconds", True), 2),
        "test_error": {
            "cached": round(mean("cached", "test_error"), 3),
            "recompute": round(mean("recompute", "test_error"), 3),
            "cached_warm": round(mean("cached", "test_error", True), 3),
            "prefilled": round(mean("prefilled", "test_error"), 3),
        },
        "paired_test_difference": [
            round(a["test_error"] - b["test_error"], 3)
            for a in runs
            for b in runs
            if a["path"] == "cached"
            and b["path"] == "recompute"
            and not a["warm"]
            and not b["warm"]
            and a["seed"] == b["seed"]
        ],
        "steps_per_second": {
            "cached": mean("cached", "steps_per_second"),
            "recompute": mean("recompute", "steps_per_second"),
        },
        "scoring_views_per_second": {
            "cached": scoring,
            "recompute": mean("recompute", "scoring_views_per_second"),
        },
        "onnxruntime_images_per_second": round(ort_rate, 1) if ort_rate else None,
        "scoring_vs_onnxruntime": round(scoring / ort_rate, 2) if ort_rate else None,
        "scoring_vs_onnxruntime_warm": round(
            mean("cached", "scoring_views_per_second", True) / ort_rate, 2
        )
        if ort_rate
        else None,
        "scoring_vs_onnxruntime_prefilled": round(
            mean("prefilled", "scoring_views_per_second") / ort_rate, 2
        )
        if ort_rate
        else None,
        "rss_after_minus_before_mb": [
            round(r["rss_mb"]["after"] - r["rss_mb"]["before"], 1) for r in runs
        ],
    }


if __name__ == "__main__":
    raise SystemExit(main())
