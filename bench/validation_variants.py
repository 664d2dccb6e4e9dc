"""Validation-only probes of X-model settings (never the test set), as reported in docs/RESULTS.md.

Each probe trains one method at the smallest budget with the tuning seed of
``bench.label_efficiency`` (or ``--seed``; keep clear of the evaluation seeds 0-2) and prints the
*validation* error, so settings can be compared without touching the test split.

    python -m bench.validation_variants kites_keypoints eta0.1_mm 0.3
    python -m bench.validation_variants utkface_age eta0.3 1.0
    python -m bench.validation_variants utkface_age default 3.0 --weight 0.1 --seed 101 --steps 300
    python -m bench.validation_variants utkface_age supervised 3.0 --train-seed 7   # same labels, another stream
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import torch

from xmodel_core.augment import WEAK, AugmentConfig

from .datasets import draw_labelled
from .label_efficiency import TUNING_SEED, settings, train_once

MILD_GEOMETRY = AugmentConfig(
    hflip=True, max_translate=0.04, scale=(0.95, 1.05), colour=0.4, cutout=0.5, noise=0.03
)
MILDER_STRONG = AugmentConfig(
    hflip=True, max_rotate=10.0, max_translate=0.08, scale=(0.9, 1.1), colour=0.2
)

VARIANTS: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
    # name: (method, train overrides, model overrides)
    "supervised": ("supervised", {}, {}),
    "mean_teacher": ("mean_teacher", {}, {}),
    "default": ("xmodel", {}, {}),
    "bn_eval": ("xmodel", {}, {"bn_eval": True}),
    "supervised_bn_eval": ("supervised", {}, {"bn_eval": True}),
    "eta0.3": ("xmodel", {"consistency_weight": 0.3, "minimax_weight": 0.1}, {}),
    "milder_strong": ("xmodel", {"strong": MILDER_STRONG}, {}),
    "mild_geometry": ("xmodel", {"strong": MILD_GEOMETRY}, {}),
    "weak_views": ("xmodel", {"strong": WEAK, "minimax_weight": 0.0}, {}),
    "eta0.1": ("xmodel", {"consistency_weight": 0.1, "minimax_weight": 0.0}, {}),
    "eta0.1_mm": ("xmodel", {"consistency_weight": 0.1, "minimax_weight": 0.03}, {}),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dataset", choices=["utkface_age", "fashion_mnist", "kites_keypoints"])
    parser.add_argument("variant", choices=sorted(VARIANTS))
    parser.add_argument("lr_factor", type=float, help="factor on the dataset's base learning rate")
    parser.add_argument(
        "--weight",
        type=float,
        default=1.0,
        help="consistency weight (X-model: η, with λ = 0.3 η) unless the variant sets one",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=TUNING_SEED,
        help="labelled draw and training seed (default: the tuning seed; keep clear of the evaluation seeds 0-2)",
    )
    parser.add_argument(
        "--train-seed",
        type=int,
        default=None,
        help="training seed when it should differ from --seed (same labels, another random stream)",
    )
    parser.add_argument(
        "--steps", type=int, default=None, help="training steps instead of the dataset's"
    )
    parser.add_argument(
        "--freeze",
        type=int,
        default=None,
        help="leading backbone stages to freeze instead of the dataset's (pretrained backbones)",
    )
    parser.add_argument(
        "--bn-split",
        action="store_true",
        help="batch-norm running statistics from the labelled batch only (bn_stats_from_labelled)",
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    setting = settings(quick=False)[args.dataset]
    method, train_overrides, model_overrides = VARIANTS[args.variant]
    setting.train = {**setting.train, **train_overrides}
    if args.steps is not None:
        setting.train["steps"] = args.steps
    if args.bn_split:
        setting.train["bn_stats_from_labelled"] = True
    setting.model = {**setting.model, **model_overrides}
    if args.freeze is not None:
        setting.model["freeze_blocks"] = args.freeze
    bench = setting.build()
    idx = draw_labelled(bench, setting.budgets[0], args.seed)
    train_seed = args.seed if args.train_seed is None else args.train_seed
    result = train_once(bench, idx, setting, method, train_seed, args.lr_factor, args.weight)
    print(
        json.dumps(
            {
                "dataset": args.dataset,
                "variant": args.variant,
                "lr": result["lr"],
                "consistency_weight": result["consistency_weight"],
                "bn_split": args.bn_split,
                "seed": args.seed,
                "train_seed": train_seed,
                "steps": setting.train["steps"],
                "freeze_blocks": setting.model.get("freeze_blocks"),
                "val_error": result["val_error"],
                "best_step": result["best_step"],
            }
        )
    )


if __name__ == "__main__":
    main()
