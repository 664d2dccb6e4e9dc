"""A job's ``params`` (the project's training settings plus the request's overrides) ->
the core's ``ModelConfig`` and ``TrainConfig``. Unknown keys are refused with a clear error."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from worker.errors import JobDataError
from xmodel_core.model import ModelConfig
from xmodel_core.trainer import TrainConfig

BASELINE_STRATEGIES = ("mc_dropout", "entropy")  # scored only when a project asks
MODEL_KEYS = {"num_heads", "head_hidden", "dropout", "freeze_blocks", "pretrained"}
TRAIN_KEYS = {f.name for f in fields(TrainConfig)} - {"weak", "strong", "device"}
JOB_KEYS = {"val_fraction", "clusters", "score_views", "score_strategies"}


@dataclass
class JobConfig:
    model: ModelConfig
    train: TrainConfig
    val_fraction: float = 0.2
    clusters: int | None = None  # k-means clusters for diversity; default grows with the pool
    score_views: int = 4
    # baseline scores written beside xmodel's (for /suggest?strategy=...; see scoring.py)
    score_strategies: tuple[str, ...] = ()


def job_config(params: dict[str, Any], *, backbone: str, image_size: int, output_dim: int,
               device: str, checkpoint_every: int, score_views: int) -> JobConfig:
    unknown = set(params) - MODEL_KEYS - TRAIN_KEYS - JOB_KEYS
    if unknown:
        raise JobDataError(f"unknown training settings {sorted(unknown)}; known: "
                           f"{sorted(MODEL_KEYS | TRAIN_KEYS | JOB_KEYS)}")
    model_args = {k: params[k] for k in MODEL_KEYS if k in params}
    train_args = {k: params[k] for k in TRAIN_KEYS if k in params}
    train_args.setdefault("checkpoint_every", checkpoint_every)
    try:
        model = ModelConfig(backbone=backbone, output_dim=output_dim, image_size=image_size, **model_args)
        train = TrainConfig(device=device, **train_args)
        for name in ("steps", "batch_size", "unlabelled_batch_size", "eval_every", "checkpoint_every", "seed"):
            setattr(train, name, int(getattr(train, name)))  # "many" -> ValueError, here
        if train.steps < 1 or train.batch_size < 1 or train.unlabelled_batch_size < 1 or train.eval_every < 1:
            raise ValueError("steps, batch sizes and eval_every must be positive")
        val_fraction = float(params.get("val_fraction", 0.2))
        if not 0 <= val_fraction < 1:
            raise ValueError("val_fraction must be in [0, 1)")
        clusters = params.get("clusters")
        views = int(params.get("score_views", score_views))
        if views < 1 or (clusters is not None and int(clusters) < 1):
            raise ValueError("clusters and score_views must be positive")
        strategies = params.get("score_strategies") or []
        if not isinstance(strategies, list) or not all(isinstance(s, str) for s in strategies):
            raise ValueError("score_strategies must be a list of strategy names")
        unknown_scores = set(strategies) - {"xmodel", *BASELINE_STRATEGIES}
        if unknown_scores:
            raise ValueError(f"unknown score_strategies {sorted(unknown_scores)}; known: "
                             f"{['xmodel', *BASELINE_STRATEGIES]}")
    except (TypeError, ValueError) as exc:
        raise JobDataError(f"bad training settings: {exc}") from exc
    extra = tuple(dict.fromkeys(s for s in strategies if s != "xmodel"))  # xmodel is always scored
    return JobConfig(model, train, val_fraction, int(clusters) if clusters is not None else None, views, extra)
