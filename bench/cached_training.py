"""Train on a benchmark's in-memory images the way the product's worker does: frozen trunk
computed once per image and view (``xmodel_core.trunk_cache``), then only the trainable stages
and the heads at every step. Used by the operating-point probes and the label-efficiency
benchmark, so that their figures are those of the product's training path."""

from __future__ import annotations

import time
from typing import Any

import torch

from xmodel_core.data import LabelledSet
from xmodel_core.model import ModelConfig, XModel
from xmodel_core.trainer import TrainConfig, Trainer, TrainingViews
from xmodel_core.trunk_cache import (
    CachedViews,
    TrunkCache,
    ViewKind,
    ViewPlan,
    cached_views,
    onnx_trunk,
)

from .datasets import Benchmark


def _ids(bench: Benchmark, part: str, index: torch.Tensor) -> list[str]:
    """Stable cache ids of a benchmark's images (the product uses sha256)."""
    return [f"{bench.name}:{part}:{int(i)}" for i in index]


def bench_views(
    bench: Benchmark,
    part: str,
    index: torch.Tensor,
    kind: ViewKind,
    plan: ViewPlan,
    model: XModel,
    cache: TrunkCache | None,
    trunk: Any,
) -> CachedViews:
    images = {"pool": bench.pool, "val": bench.val, "test": bench.test}[part].images
    key = plan.key(model)
    return cached_views(
        _ids(bench, part, index),
        kind,
        plan,
        key,
        lambda j: images[index[j]],
        trunk,
        cache,
        batch_size=128,
    )


def train_cached(
    bench: Benchmark,
    labelled_idx: torch.Tensor,
    model_config: dict[str, Any],
    train_config: dict[str, Any],
    *,
    weak_views: int = 8,
    strong_views: int = 3,
    cache: TrunkCache | None = None,
    seed: int = 0,
    test: bool = True,
) -> dict[str, Any]:
    """Train on ``bench.pool[labelled_idx]`` (the rest of the pool unlabelled) with cached views;
    return validation error, test error (plain images through the whole model) and seconds."""
    torch.manual_seed(seed)
    labelled = bench.pool.subset(labelled_idx)
    mask = torch.ones(len(bench.pool), dtype=torch.bool)
    mask[labelled_idx] = False
    unlabelled_idx = torch.nonzero(mask).flatten()
    bench.task.fit(labelled.targets)
    model = XModel(ModelConfig(output_dim=bench.task.output_dim, **model_config))
    config = TrainConfig(**{**train_config, "seed": seed})
    allow_flip = bench.task.kind != "keypoints" or bench.task.flip_permutation is not None
    plan = ViewPlan(config.weak, config.strong, weak_views, strong_views, allow_flip)
    start = time.perf_counter()
    trunk = onnx_trunk(model)
    consistency = config.method != "supervised"
    views = TrainingViews(
        bench_views(bench, "pool", labelled_idx, "weak", plan, model, cache, trunk),
        bench_views(
            bench,
            "pool",
            torch.cat([unlabelled_idx, labelled_idx]),
            "strong",
            plan,
            model,
            cache,
            trunk,
        )
        if consistency
        else None,
        bench_views(bench, "val", torch.arange(len(bench.val)), "plain", plan, model, cache, trunk),
    )
    cache_seconds = time.perf_counter() - start
    trainer = Trainer(model, bench.task, config)
    placeholder = LabelledSet(
        torch.empty(len(labelled), 0, dtype=torch.uint8), labelled.targets, labelled.visible
    )
    result = trainer.fit(placeholder, None, val=bench.val, views=views)
    out = {
        "val_error": result.best_val_error,
        "best_step": result.best_step,
        "cache_seconds": cache_seconds,
        "seconds": time.perf_counter() - start,
    }
    if test:
        trainer.views = None  # the test set goes through the whole model, as in the product
        out["test_error"] = trainer.evaluate(bench.test)
    return out
