"""Does the X-model learn more from few labels than supervised training? Measured side by side.

For each dataset x budget x seed, every method trains the same backbone for the same number of
steps with the same weak augmentation and the same validation-based checkpoint selection. Every
method gets the same care for its hyper-parameters: a tuning phase trains each method at the
smallest budget with a tuning seed (not one of the evaluation seeds) over a grid and keeps the
point with the lowest *validation* error. Supervised training has one knob (the learning rate,
five factors); each semi-supervised method has two, tuned jointly (three learning-rate factors x
three consistency weights). The ablation ``xmodel_no_minimax`` keeps the X-model's choices and
only drops the minimax term. Test sets are fixed and only produce the final figures.

    python -m bench.label_efficiency            # full run (see docs/RESULTS.md)
    python -m bench.label_efficiency --quick    # smoke of every cell, ~15 min on 2 CPU cores
    python -m bench.label_efficiency --product  # at the product's operating point

Writes ``bench/results/label_efficiency[_product][_quick].json`` (every run) and a Markdown summary.

``--product`` measures at the operating point users get: ImageNet MobileNetV2 with the first
14 stages frozen, each task kind's image size (UTKFace 128 px, Fashion-MNIST and the kites
96 px), 500 steps, the product's learning rates, trained on cached trunk views as the worker
does (``bench/cached_training.py``; the views live in an on-disk cache shared by every run).
On validation at the smallest budget, supervised training tunes its one knob, the learning
rate (×0.3, ×1, ×3, ×10 of the library's 1e-3); the consistency methods tune two jointly, the
learning rate (×1, ×3) and their weight (0.1, 0.3, 1). Widening a grid and running again trains
only the new points, and reruns only the cells whose chosen point changed (the replaced cells
are kept under ``superseded``).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from xmodel_contracts.training_defaults import FROZEN_STAGES, IMAGE_SIZES
from xmodel_core.export import atomic_write_bytes
from xmodel_core.model import ModelConfig, XModel
from xmodel_core.trainer import TrainConfig, Trainer
from xmodel_core.trunk_cache import TrunkCache

from .cached_training import train_cached
from .datasets import (
    CACHE_DIR,
    Benchmark,
    at_product_size,
    draw_labelled,
    error_scale,
    fashion_mnist,
    kites,
    utkface,
)

RESULTS = Path(__file__).resolve().parent / "results"
VIEW_CACHE = CACHE_DIR / "label_efficiency_views"  # --product: trunk views, shared by runs
METHODS: dict[str, dict[str, Any]] = {
    "supervised": {"method": "supervised"},
    "mean_teacher": {"method": "mean_teacher"},
    "xmodel_no_minimax": {"method": "xmodel", "minimax_weight": 0.0},
    "xmodel": {"method": "xmodel"},
}
MINIMAX_PER_CONSISTENCY = 0.3  # the X-model's λ moves with its η: λ = 0.3 η (the defaults' ratio)
TUNED_LIKE = {"xmodel_no_minimax": "xmodel"}  # an ablation keeps the full method's choices


@dataclass
class Setting:
    """How one dataset is trained: backbone, image size, steps, base learning rate."""

    build: Any
    budgets: list[int]
    model: dict[str, Any]
    train: dict[str, Any]
    error_scale: float = 1.0  # test error shown in these units (years, %, pixels)
    unit: str = ""
    lr_grid: list[float] = field(default_factory=lambda: [1.0])  # semi-supervised methods
    supervised_lr_grid: list[float] = field(
        default_factory=lambda: [1.0]
    )  # its only knob: a wider grid
    weight_grid: list[float] = field(
        default_factory=lambda: [1.0]
    )  # consistency weight η (MT: its weight)
    cache: TrunkCache | None = None  # set: train on cached trunk views, as the product does


def method_overrides(method: str, weight: float) -> dict[str, Any]:
    """TrainConfig fields of ``method`` at consistency weight ``weight`` (ignored by supervised)."""
    overrides = dict(METHODS[method])
    if overrides["method"] != "supervised":
        overrides["consistency_weight"] = weight
    if overrides["method"] == "xmodel" and "minimax_weight" not in overrides:
        overrides["minimax_weight"] = MINIMAX_PER_CONSISTENCY * weight
    return overrides


def candidates(setting: Setting, method: str) -> list[tuple[float, float]]:
    """The (learning-rate factor, consistency weight) points the tuning phase tries for ``method``."""
    if METHODS[method]["method"] == "supervised":
        return [(f, 0.0) for f in setting.supervised_lr_grid]
    return [(f, w) for f in setting.lr_grid for w in setting.weight_grid]


def settings(
    quick: bool, product: bool = False, cache_dir: Path | None = None
) -> dict[str, Setting]:
    """Per dataset: the benchmark's own small operating point, or with ``product`` the
    product's (views cached under ``cache_dir``)."""
    if product:
        return product_settings(quick, TrunkCache(cache_dir or VIEW_CACHE, max_bytes=20 * 2**30))
    steps = (
        {"utkface_age": 30, "fashion_mnist": 40, "kites_keypoints": 40}
        if quick
        else {"utkface_age": 150, "fashion_mnist": 300, "kites_keypoints": 300}
    )
    grid: dict[str, Any] = (
        {"lr_grid": [1.0], "supervised_lr_grid": [1.0], "weight_grid": [1.0]}
        if quick
        else {
            "lr_grid": [0.3, 1.0, 3.0],
            "supervised_lr_grid": [0.1, 0.3, 1.0, 3.0, 10.0],
            "weight_grid": [0.1, 0.3, 1.0],
        }
    )
    return {
        "utkface_age": Setting(
            build=lambda: utkface(48, pool_limit=2000 if quick else None),
            budgets=[50, 250, 1000],
            model={
                "backbone": "mobilenet_v2",
                "image_size": 48,
                "freeze_blocks": 14,
                "pretrained": True,
            },
            train={
                "steps": steps["utkface_age"],
                "lr": 3e-3,
                "extractor_lr_scale": 0.3,
                "eval_every": 50,
            },
            unit="MAE (years)",
            **grid,
        ),
        "fashion_mnist": Setting(
            build=lambda: fashion_mnist(
                pool_limit=5000 if quick else 20000, test_limit=2000 if quick else None
            ),
            budgets=[40, 250, 1000],
            model={"backbone": "small_cnn", "image_size": 28, "pretrained": False},
            train={
                "steps": steps["fashion_mnist"],
                "lr": 3e-3,
                "extractor_lr_scale": 1.0,
                "eval_every": 50,
            },
            error_scale=100.0,
            unit="error (%)",
            **grid,
        ),
        "kites_keypoints": Setting(
            build=lambda: kites(48, n_pool=1000 if quick else 5000),
            budgets=[50, 250],
            model={"backbone": "small_cnn", "image_size": 48, "pretrained": False},
            train={
                "steps": steps["kites_keypoints"],
                "lr": 3e-3,
                "extractor_lr_scale": 1.0,
                "eval_every": 50,
            },
            error_scale=48.0,
            unit="mean point error (px at 48 px)",
            **grid,
        ),
    }


KIND = {
    "utkface_age": "regression",
    "fashion_mnist": "classification",
    "kites_keypoints": "keypoints",
}


def product_settings(quick: bool, cache: TrunkCache) -> dict[str, Setting]:
    """The product's operating point per dataset (see the module docstring)."""
    grid: dict[str, Any] = (
        {"lr_grid": [1.0], "supervised_lr_grid": [1.0], "weight_grid": [1.0]}
        if quick
        else {
            "lr_grid": [1.0, 3.0],
            "supervised_lr_grid": [0.3, 1.0, 3.0, 10.0],
            "weight_grid": [0.1, 0.3, 1.0],
        }
    )
    defaults = TrainConfig()
    train = {
        "steps": 40 if quick else defaults.steps,
        "lr": defaults.lr,
        "extractor_lr_scale": defaults.extractor_lr_scale,
        "eval_every": 20 if quick else 50,
    }
    budgets = {
        "utkface_age": [50, 250, 1000],
        "fashion_mnist": [40, 250, 1000],
        "kites_keypoints": [50, 250],
    }
    units = {"utkface_age": "MAE (years)", "fashion_mnist": "error (%)"}
    out = {}
    for name, kind in KIND.items():
        size = IMAGE_SIZES[kind]
        out[name] = Setting(
            build=lambda name=name, size=size: at_product_size(name, size),
            budgets=budgets[name][:2] if quick else budgets[name],
            model={
                "backbone": "mobilenet_v2",
                "image_size": size,
                "freeze_blocks": FROZEN_STAGES["mobilenet_v2"],
                "pretrained": True,
            },
            train=train,
            error_scale=error_scale(name, size),
            unit=units.get(name, f"mean point error (px at {size} px)"),
            cache=cache,
            **grid,
        )
    return out


def train_once(
    bench: Benchmark,
    labelled_idx: torch.Tensor,
    setting: Setting,
    method: str,
    seed: int,
    lr_factor: float = 1.0,
    weight: float = 1.0,
) -> dict[str, Any]:
    """Train one method on one labelled subset; return validation and test errors."""
    overrides = {**method_overrides(method, weight), **setting.train}
    overrides["lr"] = overrides["lr"] * lr_factor
    if setting.cache is not None:
        run = train_cached(
            bench, labelled_idx, setting.model, overrides, cache=setting.cache, seed=seed
        )
    else:
        run = _train_recomputing(bench, labelled_idx, setting, overrides, seed)
    return {
        **run,
        "test_error": run["test_error"] * setting.error_scale,
        "lr": overrides["lr"],
        "consistency_weight": overrides.get("consistency_weight", 0.0),
        "minimax_weight": overrides.get("minimax_weight", 0.0),
    }


def _train_recomputing(
    bench: Benchmark,
    labelled_idx: torch.Tensor,
    setting: Setting,
    overrides: dict[str, Any],
    seed: int,
) -> dict[str, Any]:
    """The whole network on the images at every step (the benchmark's own operating point)."""
    torch.manual_seed(seed)
    labelled = bench.pool.subset(labelled_idx)
    mask = torch.ones(len(bench.pool), dtype=torch.bool)
    mask[labelled_idx] = False
    unlabelled = bench.pool.images[mask]
    bench.task.fit(labelled.targets)
    model = XModel(ModelConfig(output_dim=bench.task.output_dim, **setting.model))
    trainer = Trainer(model, bench.task, TrainConfig(**overrides, seed=seed))
    start = time.perf_counter()
    result = trainer.fit(labelled, unlabelled, val=bench.val)
    return {
        "val_error": result.best_val_error,
        "test_error": trainer.evaluate(bench.test),
        "best_step": result.best_step,
        "seconds": time.perf_counter() - start,
    }


TUNING_SEED = 100  # never one of the evaluation seeds


def point_key(lr: float, weight: float) -> str:
    """How a tuning point is named in the result files."""
    return f"lr={lr:.4g} w={weight:g}"


def tune(
    bench: Benchmark, setting: Setting, method: str, known: dict[str, float] | None = None
) -> dict[str, Any]:
    """Pick ``method``'s (learning-rate factor, consistency weight) on validation at the
    smallest budget. Points already in ``known`` (validation errors by :func:`point_key`,
    from an earlier run of a smaller grid) are not trained again."""
    idx = draw_labelled(bench, setting.budgets[0], TUNING_SEED)
    errors = dict(known or {})
    points = candidates(setting, method)
    for factor, weight in points:
        name = point_key(setting.train["lr"] * factor, weight)
        if name not in errors:
            errors[name] = train_once(bench, idx, setting, method, TUNING_SEED, factor, weight)[
                "val_error"
            ]
    best = min(points, key=lambda c: errors[point_key(setting.train["lr"] * c[0], c[1])])
    return {"factor": best[0], "weight": best[1], "val_error": errors}


def tuned_fully(setting: Setting, method: str, choice: dict[str, Any] | None) -> bool:
    """Whether ``choice`` was made over every point of ``method``'s current grid."""
    return choice is not None and all(
        point_key(setting.train["lr"] * f, w) in choice["val_error"]
        for f, w in candidates(setting, method)
    )


def ran_at(row: dict[str, Any], setting: Setting, method: str, choice: dict[str, Any]) -> bool:
    """Whether a stored cell ran at ``choice``'s point (not one a wider grid replaced)."""
    weight = 0.0 if METHODS[method]["method"] == "supervised" else choice["weight"]
    return (
        math.isclose(row["lr"], setting.train["lr"] * choice["factor"])
        and row["consistency_weight"] == weight
    )


def run_cell(
    bench: Benchmark, setting: Setting, budget: int, method: str, seed: int, choice: dict[str, Any]
) -> dict[str, Any]:
    """One (budget, method, seed) at the method's tuned point."""
    return train_once(
        bench,
        draw_labelled(bench, budget, seed),
        setting,
        method,
        seed,
        choice["factor"],
        choice.get("weight", 1.0),
    )


def summarise(rows: list[dict[str, Any]], units: dict[str, str]) -> str:
    """Markdown tables: mean ± std per cell and the ratio X-model / supervised."""
    lines: list[str] = []
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        sub = [r for r in rows if r["dataset"] == dataset]
        budgets = sorted({r["budget"] for r in sub})
        lines += [
            f"### {dataset} — test {units.get(dataset, '')}, mean ± std over seeds",
            "",
            "| method | " + " | ".join(f"{b} labels" for b in budgets) + " |",
            "|---|" + "---|" * len(budgets),
        ]
        stats: dict[tuple[str, int], tuple[float, float, int]] = {}
        for method in METHODS:
            cells = []
            for b in budgets:
                errs = [r["test_error"] for r in sub if r["method"] == method and r["budget"] == b]
                if not errs:
                    cells.append("–")
                    continue
                mean = statistics.fmean(errs)
                std = statistics.stdev(errs) if len(errs) > 1 else 0.0
                stats[(method, b)] = (mean, std, len(errs))
                cells.append(f"{mean:.2f} ± {std:.2f}")
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
        ratio_cells, margin_cells = [], []
        for b in budgets:
            if ("xmodel", b) in stats and ("supervised", b) in stats:
                (xm, xs, _), (sm, ss, _) = stats[("xmodel", b)], stats[("supervised", b)]
                ratio_cells.append(f"{xm / sm:.3f}")
                enough = min(stats[("xmodel", b)][2], stats[("supervised", b)][2]) > 1
                margin_cells.append(
                    ("yes" if sm - xm > max(xs, ss) else "no") if enough else "n/a (1 seed)"
                )
            else:
                ratio_cells.append("–")
                margin_cells.append("–")
        lines.append("| **ratio X-model / supervised** | " + " | ".join(ratio_cells) + " |")
        lines.append("| X-model better by > 1 std | " + " | ".join(margin_cells) + " |")
        lines.append("")
    return "\n".join(lines)


def tuning_table(tuning: dict[str, dict[str, Any]]) -> str:
    """Markdown: what each method's tuning phase chose, with its validation error and the grid's spread."""
    lines = [
        "### Hyper-parameters chosen on the validation split (tuning seed, smallest budget)",
        "",
        "| dataset / method | points tried | chosen lr | chosen weight | validation error (best / worst) |",
        "|---|---|---|---|---|",
    ]
    for key, choice in sorted(tuning.items()):
        errors = choice["val_error"]
        best = min(errors, key=errors.get)
        lr = best.split()[0].removeprefix("lr=") if best.startswith("lr=") else best
        weight = "–" if key.endswith("/supervised") else f"{choice.get('weight', 1.0):g}"
        lines.append(
            f"| {key} | {len(errors)} | {lr} | {weight} | {errors[best]:.4g} / {max(errors.values()):.4g} |"
        )
    return "\n".join(lines) + "\n"


def stored_tunings(paths: list[Path], into: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``into`` plus the tuning choices stored in result files (the first file to hold a key wins)."""
    for path in paths:
        for key, choice in json.loads(path.read_text())["meta"].get("tuning", {}).items():
            into.setdefault(key, choice)
    return into


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="smoke of every cell: 1 seed, few steps, small pools"
    )
    parser.add_argument(
        "--seeds", type=int, default=None, help="number of seeds (default 3, quick 1)"
    )
    parser.add_argument(
        "--product",
        action="store_true",
        help="at the product's operating point, on cached trunk views (module docstring)",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=VIEW_CACHE,
        help="--product: the trunk-view cache shared by the runs (and by processes)",
    )
    parser.add_argument("--datasets", nargs="*", default=None, help="subset of datasets to run")
    parser.add_argument(
        "--budgets", nargs="*", type=int, default=None, help="subset of budgets to run"
    )
    parser.add_argument(
        "--seed-ids", nargs="*", type=int, default=None, help="run only these seeds (split a run)"
    )
    parser.add_argument(
        "--methods",
        nargs="*",
        choices=list(METHODS),
        default=None,
        help="run only these methods (split a run; an ablation uses its parent's tuning, "
        "from --tuning-from or tuned here)",
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="JSON path (default under bench/results/)"
    )
    parser.add_argument(
        "--tuning-from",
        nargs="*",
        type=Path,
        default=[],
        help="reuse the tuning choices stored in these result files (a run split over processes)",
    )
    parser.add_argument(
        "--report",
        nargs="+",
        type=Path,
        default=None,
        help="only summarise these result files (runs split over processes) into one table",
    )
    args = parser.parse_args()
    if args.report:
        unique: dict[tuple, dict[str, Any]] = {}
        for path in args.report:  # a cell run by two processes counts once (the first file wins)
            for r in json.loads(path.read_text())["runs"]:
                unique.setdefault((r["dataset"], r["budget"], r["method"], r["seed"]), r)
        rows = list(unique.values())
        units = {name: s.unit for name, s in settings(False, args.product).items()}
        summary = summarise(rows, units) + "\n" + tuning_table(stored_tunings(args.report, {}))
        args.report[0].with_suffix(".md").write_text(summary)
        print(summary)
        return
    seeds = args.seeds or (1 if args.quick else 3)
    out = args.out or RESULTS / (
        "label_efficiency"
        + ("_product" if args.product else "")
        + ("_quick" if args.quick else "")
        + ".json"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    previous = json.loads(out.read_text()) if out.exists() else {}
    done: list[dict[str, Any]] = previous.get("runs", [])
    tuning = stored_tunings(args.tuning_from, previous.get("meta", {}).get("tuning", {}))
    superseded: list[dict[str, Any]] = previous.get("superseded", [])
    chosen = settings(args.quick, args.product, args.cache_dir)
    units = {name: s.unit for name, s in chosen.items()}
    started = time.perf_counter()
    benches = {
        name: s.build() for name, s in chosen.items() if not args.datasets or name in args.datasets
    }
    # the cells the bar is about (the two smallest budgets of the real datasets) run first
    order = sorted(
        ((name, rank) for name in benches for rank in range(len(chosen[name].budgets))),
        key=lambda nr: (
            nr[1] >= 2 or nr[0] == "kites_keypoints",
            nr[1],
            nr[0] == "kites_keypoints",
        ),
    )
    meta = {
        "quick": args.quick,
        "product": args.product,
        "seeds": seeds,
        "tuning": tuning,
        "settings": {  # tuning fills in as we go
            n: {
                "model": s.model,
                "train": s.train,
                "budgets": s.budgets,
                "lr_grid": s.lr_grid,
                "supervised_lr_grid": s.supervised_lr_grid,
                "weight_grid": s.weight_grid,
                "minimax_per_consistency": MINIMAX_PER_CONSISTENCY,
                "tuned_like": TUNED_LIKE,
            }
            for n, s in chosen.items()
        },
    }

    def save() -> None:
        document = {"meta": meta, "runs": done, "superseded": superseded}
        atomic_write_bytes(out, json.dumps(document, indent=1).encode())

    for name, rank in order:
        bench, setting = benches[name], chosen[name]
        budget = setting.budgets[rank]
        if args.budgets and budget not in args.budgets:
            continue
        for seed in args.seed_ids if args.seed_ids is not None else range(seeds):
            for method in args.methods or METHODS:
                tune_key = f"{name}/{TUNED_LIKE.get(method, method)}"
                if not tuned_fully(setting, TUNED_LIKE.get(method, method), tuning.get(tune_key)):
                    known = tuning[tune_key]["val_error"] if tune_key in tuning else None
                    tuning[tune_key] = tune(bench, setting, TUNED_LIKE.get(method, method), known)
                    print(
                        f"tuned {tune_key}: validation error {tuning[tune_key]['val_error']}",
                        flush=True,
                    )
                    save()  # a tuning is kept even when no cell needs to run again
                cell = (name, budget, method, seed)
                stored = [
                    r for r in done if (r["dataset"], r["budget"], r["method"], r["seed"]) == cell
                ]
                if stored and ran_at(stored[0], setting, method, tuning[tune_key]):
                    continue
                if stored:  # run at a point a wider grid has replaced: kept aside, run again
                    superseded.append(stored[0])
                    done.remove(stored[0])
                row = {
                    "dataset": name,
                    "budget": budget,
                    "method": method,
                    "seed": seed,
                    **run_cell(bench, setting, budget, method, seed, tuning[tune_key]),
                }
                done.append(row)
                print(
                    f"[{time.perf_counter() - started:7.0f}s] {name} {budget:5d} {method:18s} seed {seed}: "
                    f"test {row['test_error']:.3f} val {row['val_error']:.4f} ({row['seconds']:.0f}s)",
                    flush=True,
                )
                save()
    summary = summarise(done, units)
    out.with_suffix(".md").write_text(summary)
    print(summary)


if __name__ == "__main__":
    main()
