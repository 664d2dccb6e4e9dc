"""Validation probes for the product's training settings, on the product's training path
(cached frozen trunk, ``bench/cached_training.py``).

Each variant is a JSON object of model and training settings laid over the dataset's base;
every variant trains on the same labelled subsets (tuning seeds, never the evaluation seeds of
the other benchmarks) and is judged on the validation split only. Results are appended to a
JSON file (resumable: finished (variant, seed) pairs are skipped) and summarised as a table.

    python -m bench.operating_point --dataset utkface_age --budget 250 --seeds 100 101 102 \\
        --variant 'sup96f14={"image_size": 96, "freeze_blocks": 14, "method": "supervised"}' \\
        --out bench/results/operating_point.json
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

from xmodel_core.export import atomic_write_bytes

from .cached_training import train_cached
from .datasets import Benchmark, at_product_size, draw_labelled, error_scale

MODEL_KEYS = {
    "backbone",
    "image_size",
    "freeze_blocks",
    "pretrained",
    "num_heads",
    "head_hidden",
    "dropout",
}
VIEW_KEYS = {"weak_views", "strong_views"}
BASE: dict[str, dict[str, Any]] = {
    "utkface_age": {
        "backbone": "mobilenet_v2",
        "pretrained": True,
        "image_size": 96,
        "freeze_blocks": 14,
    },
    "fashion_mnist": {
        "backbone": "mobilenet_v2",
        "pretrained": True,
        "image_size": 96,
        "freeze_blocks": 14,
    },
    "kites_keypoints": {
        "backbone": "mobilenet_v2",
        "pretrained": True,
        "image_size": 96,
        "freeze_blocks": 14,
    },
}


def run_variant(
    bench: Benchmark, dataset: str, budget: int, seed: int, variant: dict[str, Any]
) -> dict[str, Any]:
    settings = {**BASE[dataset], **variant}
    model = {k: v for k, v in settings.items() if k in MODEL_KEYS}
    views = {k: v for k, v in settings.items() if k in VIEW_KEYS}
    train = {k: v for k, v in settings.items() if k not in MODEL_KEYS | VIEW_KEYS}
    train.setdefault("eval_every", 50)
    result = train_cached(
        bench, draw_labelled(bench, budget, seed), model, train, seed=seed, test=False, **views
    )
    result["val_error"] = result["val_error"] * error_scale(dataset, int(settings["image_size"]))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", choices=sorted(BASE), required=True)
    parser.add_argument("--budget", type=int, required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[100, 101, 102])
    parser.add_argument("--variant", action="append", required=True, help="NAME=JSON settings")
    parser.add_argument("--out", type=Path, default=Path("bench/results/operating_point.json"))
    args = parser.parse_args(argv)
    document = json.loads(args.out.read_text()) if args.out.exists() else {"runs": []}
    done = {(r["dataset"], r["budget"], r["variant"], r["seed"]) for r in document["runs"]}
    variants = dict(v.split("=", 1) for v in args.variant)
    benches: dict[int, Benchmark] = {}
    for name, text in variants.items():
        variant = json.loads(text)
        size = int({**BASE[args.dataset], **variant}["image_size"])
        for seed in args.seeds:
            if (args.dataset, args.budget, name, seed) in done:
                continue
            if size not in benches:
                benches[size] = at_product_size(args.dataset, size)
            result = run_variant(benches[size], args.dataset, args.budget, seed, variant)
            document["runs"].append(
                {
                    "dataset": args.dataset,
                    "budget": args.budget,
                    "variant": name,
                    "settings": variant,
                    "seed": seed,
                    **result,
                }
            )
            print(
                f"{args.dataset} {args.budget} {name} seed {seed}: val {result['val_error']:.3f} "
                f"({result['seconds']:.0f} s, cache {result['cache_seconds']:.0f} s)",
                flush=True,
            )
            args.out.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(args.out, json.dumps(document, indent=1).encode())
    print(report(document["runs"]))
    return 0


def report(runs: list[dict[str, Any]]) -> str:
    """Mean ± std of the validation error per (dataset, budget, variant)."""
    lines = [
        "| dataset | labels | variant | val error | seeds | seconds |",
        "|---|---|---|---|---|---|",
    ]
    groups: dict[tuple[str, int, str], list[dict[str, Any]]] = {}
    for r in runs:
        groups.setdefault((r["dataset"], r["budget"], r["variant"]), []).append(r)
    for (dataset, budget, name), rs in groups.items():
        vals = [r["val_error"] for r in rs]
        std = statistics.stdev(vals) if len(vals) > 1 else 0.0
        secs = statistics.mean(r["seconds"] for r in rs)
        lines.append(
            f"| {dataset} | {budget} | {name} | {statistics.mean(vals):.3f} ± {std:.3f} | {len(rs)} | "
            f"{secs:.0f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
