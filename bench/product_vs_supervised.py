"""Does the product's default training beat plain training where users run it? Measured
through the API, as a client.

For every dataset, labelled budget and seed, the same labels are trained twice: once with the
product's defaults (an empty ``training`` setting: the worker's per-task defaults apply), once
with ``{"method": "supervised"}`` and everything else the same. Each method has its own project
per seed (same images, same labels), every job starts from the pretrained backbone
(``warm_start: false``) so the budgets are independent, and each model is downloaded and
measured with onnxruntime on a held-out test set that is never uploaded.

    python -m bench.product_vs_supervised                    # 3 datasets, budgets 50 and 250, 3 seeds
    python -m bench.product_vs_supervised --quick            # kites only, small pool, 1 seed
    python -m bench.product_vs_supervised --datasets utkface_age --seeds 0 1 2 --out F.json
    python -m bench.product_vs_supervised --report A.json B.json   # merge and print

Datasets (fixed splits of ``bench/datasets.py``; images uploaded as PNGs, the project at the
product's default size): UTKFace age (pool 4,000, test 1,000; MAE in years), Fashion-MNIST
(pool 4,000 of the training side uploaded at 28 px, test the first 2,000 of the official test
set; error in %), synthetic kites at the project size (pool 2,000, test 500 from another
generator seed; mean point error in pixels). Labels: a seeded random draw of the pool
(class-balanced for Fashion-MNIST), nested (the 50 are among the 250).

Saved (resumable: finished cells are kept): ``bench/results/product_vs_supervised.json`` with
every run and, per dataset and budget, ``ratio`` (mean product error / mean supervised error),
``seeds``, the paired differences and the wall time of each job. Where the product default for a task kind already is supervised
training, the supervised job would repeat the product's with the same settings: it is not run
again, and its rows are the product's, marked ``"same_job_as": "product"`` (ratio 1).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from xmodel_contracts.launch import free_port
from xmodel_contracts.training_defaults import product_defaults
from xmodel_core.export import atomic_write_bytes

from .active_learning import Annotator, Spec, _demo, product_settings
from .datasets import Benchmark, draw_labelled

RESULTS = Path(__file__).resolve().parent / "results"
METHODS = {"product": {}, "supervised": {"method": "supervised"}}
BUDGETS = [50, 250]


def specs(quick: bool) -> dict[str, Spec]:
    """Each dataset at its task kind's default image size (the kites smaller with ``quick``)."""
    return {
        name: replace(spec, strategies=["xmodel"])
        for name, spec in product_settings(
            kite_pool=300 if quick else 2000, kite_test=100 if quick else 500
        ).items()
    }


def same_as_product(spec: Spec) -> bool:
    """Whether the product default for this task kind already is supervised training, so the
    second job would repeat the first with the same settings (it is then not run twice)."""
    return bool(product_defaults(spec.task["kind"])["method"] == "supervised")


def run_seed(
    api: Any,
    spec: Spec,
    bench: Benchmark,
    dataset: str,
    method: str,
    seed: int,
    budgets: list[int],
    work: Path,
    threads: int,
    log: Any,
) -> list[dict[str, Any]]:
    """One project: upload the pool, then label and train up to each budget in turn."""
    who = Annotator(
        api, spec, bench, f"pvs-{dataset}-{method}-s{seed}-{int(time.time())}", seed, "xmodel"
    )
    who.upload()
    order = draw_labelled(bench, max(budgets), seed)  # nested budgets: the first n of one draw
    if bench.balanced:  # keep every budget class-balanced: interleave the classes
        by_class: dict[int, list[int]] = {}
        for i in order.tolist():
            by_class.setdefault(int(bench.pool.targets[i]), []).append(i)
        order = torch.tensor([i for group in zip(*by_class.values(), strict=False) for i in group])
    labelled: list[int] = []
    rows = []
    for budget in budgets:
        fresh = [int(i) for i in order[len(labelled) : budget]]
        who.label(fresh)
        labelled += fresh
        started = time.perf_counter()
        job = who.api.call(
            "POST",
            f"/projects/{who.project}/jobs",
            headers=who.owner,
            json={"training": {**METHODS[method], "warm_start": False, "seed": seed}},
        )
        while job["status"] in ("queued", "running"):
            time.sleep(0.5)
            job = who.api.call("GET", f"/jobs/{job['id']}", headers=who.owner)
        if job["status"] != "succeeded":
            raise RuntimeError(f"job {job['id']} ended {job['status']}: {job.get('error')}")
        seconds = time.perf_counter() - started
        errors = who.test_model(
            job["model_id"], work / f"{dataset}-{method}-s{seed}" / f"m{job['model_id']}", threads
        )
        metrics = job.get("metrics") or {}
        rows.append(
            {
                "dataset": dataset,
                "method": method,
                "seed": seed,
                "budget": budget,
                **errors,
                "val_error": metrics.get("val_error"),
                "job_seconds": round(seconds, 1),
                "settings": metrics.get("settings"),
            }
        )
        log(
            f"{dataset} {method:10s} seed {seed} {budget:4d} labels: test {errors['test_error']:.3f} ({seconds:.0f} s)"
        )
    return rows


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per dataset and budget: means, std, ratio, paired differences (product - supervised)."""
    out: dict[str, Any] = {}
    for dataset in dict.fromkeys(r["dataset"] for r in runs):
        out[dataset] = {}
        for budget in sorted({r["budget"] for r in runs if r["dataset"] == dataset}):
            cell = {
                m: {
                    r["seed"]: r
                    for r in runs
                    if r["dataset"] == dataset and r["budget"] == budget and r["method"] == m
                }
                for m in METHODS
            }
            seeds = sorted(set(cell["product"]) & set(cell["supervised"]))
            if not seeds:
                continue
            err = {m: [cell[m][s]["test_error"] for s in seeds] for m in METHODS}
            diffs = [p - q for p, q in zip(err["product"], err["supervised"], strict=True)]
            std = {m: statistics.stdev(v) if len(v) > 1 else 0.0 for m, v in err.items()}
            diff_std = statistics.stdev(diffs) if len(diffs) > 1 else 0.0
            out[dataset][str(budget)] = {
                "seeds": seeds,
                "product": round(statistics.mean(err["product"]), 3),
                "product_std": round(std["product"], 3),
                "supervised": round(statistics.mean(err["supervised"]), 3),
                "supervised_std": round(std["supervised"], 3),
                "ratio": round(
                    statistics.mean(err["product"]) / statistics.mean(err["supervised"]), 3
                ),
                "paired_differences": [round(d, 3) for d in diffs],
                "paired_mean": round(statistics.mean(diffs), 3),
                "paired_std": round(diff_std, 3),
                # the bar: never worse than supervised by more than one std (paired over seeds)
                "worse_by_more_than_1_std": statistics.mean(diffs) > max(diff_std, 1e-12)
                if len(diffs) > 1
                else None,
                "job_seconds": {
                    m: round(statistics.mean(cell[m][s]["job_seconds"] for s in seeds), 1)
                    for m in METHODS
                },
            }
    return out


def table(summary: dict[str, Any]) -> str:
    lines = [
        "| dataset | labels | product default | supervised | ratio | paired diff (mean ± std) | "
        "seeds | job s (product / supervised) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for dataset, budgets in summary.items():
        for budget, c in budgets.items():
            lines.append(
                f"| {dataset} | {budget} | {c['product']:.3f} ± {c['product_std']:.3f} | "
                f"{c['supervised']:.3f} ± {c['supervised_std']:.3f} | {c['ratio']:.3f} | "
                f"{c['paired_mean']:+.3f} ± {c['paired_std']:.3f} | {len(c['seeds'])} | "
                f"{c['job_seconds']['product']:.0f} / {c['job_seconds']['supervised']:.0f} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="kites only, a small pool, one seed")
    parser.add_argument("--datasets", nargs="+", default=None)
    parser.add_argument("--seeds", type=int, nargs="+", default=None)
    parser.add_argument("--budgets", type=int, nargs="+", default=None)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--report", type=Path, nargs="+", default=None, help="merge result files and print"
    )
    args = parser.parse_args(argv)
    if args.report:
        runs = [r for path in args.report for r in json.loads(path.read_text())["runs"]]
        print(table(summarise(runs)))
        return 0
    all_specs = specs(args.quick)
    datasets = args.datasets or (["kites_keypoints"] if args.quick else list(all_specs))
    seeds = args.seeds or ([0] if args.quick else [0, 1, 2])
    budgets = args.budgets or ([10, 30] if args.quick else BUDGETS)
    out = args.out or RESULTS / f"product_vs_supervised{'_quick' if args.quick else ''}.json"
    document = json.loads(out.read_text()) if out.exists() else {"runs": []}
    done = {(r["dataset"], r["method"], r["seed"]) for r in document["runs"]}
    threads = torch.get_num_threads()
    demo = _demo()
    work = Path(tempfile.mkdtemp(prefix="pvs-"))
    (work / "data").mkdir(parents=True)
    server, url, token = demo.start_local(free_port(), work / "data")

    def log(message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)

    try:
        api = demo.Api(url, token)
        for dataset in datasets:
            spec = all_specs[dataset]
            bench = spec.build()
            for seed in seeds:
                for method in METHODS:
                    if (dataset, method, seed) in done:
                        continue
                    if method == "supervised" and same_as_product(spec):
                        rows = [
                            {**r, "method": method, "same_job_as": "product"}
                            for r in document["runs"]
                            if (r["dataset"], r["method"], r["seed"]) == (dataset, "product", seed)
                        ]
                    else:
                        rows = run_seed(
                            api, spec, bench, dataset, method, seed, budgets, work, threads, log
                        )
                    document["runs"] += rows
                    document["summary"] = summarise(document["runs"])
                    out.parent.mkdir(parents=True, exist_ok=True)
                    atomic_write_bytes(out, json.dumps(document, indent=1).encode())
    finally:
        server.terminate()
        server.wait(timeout=60)
    print(table(summarise(document["runs"])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
