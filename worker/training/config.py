"""A job's ``params`` (the project's training settings plus the request's overrides) ->
the core's ``ModelConfig`` and ``TrainConfig``. Unknown keys are refused with a clear error."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from pydantic import ValidationError

from worker.errors import JobDataError
from worker.settings import WorkerSettings
from xmodel_contracts.names import ScoreStrategy
from xmodel_contracts.training_settings import TRAINING_SETTING_KEYS, TrainingSettings
from xmodel_core.model import ModelConfig
from xmodel_core.tasks import TaskSpec
from xmodel_core.trainer import TrainConfig

MODEL_KEYS = {"num_heads", "head_hidden", "dropout", "freeze_blocks", "pretrained"}
# the worker sets device and checkpoint pacing itself; augmentations are not settings
TRAIN_KEYS = {f.name for f in fields(TrainConfig)} - {
    "weak",
    "strong",
    "device",
    "checkpoint_min_seconds",
}
JOB_KEYS = {
    "val_fraction",
    "clusters",
    "score_views",
    "score_strategies",
    "trunk_cache",
    "weak_views",
    "strong_views",
    "warm_start",
}


@dataclass
class JobConfig:
    model: ModelConfig
    train: TrainConfig
    val_fraction: float = 0.2
    clusters: int | None = None  # k-means clusters for diversity; default grows with the pool
    score_views: int = 4
    # baseline scores written beside xmodel's (for /suggest?strategy=...; see scoring.py)
    score_strategies: tuple[str, ...] = ()
    # frozen-trunk cache (worker/training/views.py): on when the model has frozen stages
    trunk_cache: bool = True
    warm_start: bool = True  # from the project's active model
    weak_views: int = 8
    strong_views: int = 3

    @property
    def uses_trunk_cache(self) -> bool:
        return self.trunk_cache and self.model.freeze_blocks > 0


def job_config(
    params: dict[str, Any],
    *,
    backbone: str,
    image_size: int,
    output_dim: int,
    device: str,
    checkpoint_every: int,
    score_views: int,
    checkpoint_min_seconds: float = 0.0,
) -> JobConfig:
    try:  # the schema the API validated with: one definition of what a job may carry
        TrainingSettings.model_validate(params)
    except ValidationError as exc:
        unknown = sorted(set(params) - TRAINING_SETTING_KEYS)
        if unknown:
            raise JobDataError(
                f"unknown training settings {unknown}; known: {sorted(TRAINING_SETTING_KEYS)}"
            ) from exc
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise JobDataError(f"bad training settings: {problems}") from exc
    unmapped = sorted(set(params) - MODEL_KEYS - TRAIN_KEYS - JOB_KEYS)
    if unmapped:  # an API newer than this worker: refuse rather than silently ignore
        raise JobDataError(f"training settings {unmapped} are not known to this worker")
    model_args = {k: params[k] for k in MODEL_KEYS if k in params}
    train_args = {k: params[k] for k in TRAIN_KEYS if k in params}
    train_args.setdefault("checkpoint_every", checkpoint_every)
    train_args["checkpoint_min_seconds"] = checkpoint_min_seconds  # the worker's, not a job's
    try:
        model = ModelConfig(
            backbone=backbone, output_dim=output_dim, image_size=image_size, **model_args
        )
        train = TrainConfig(device=device, **train_args)
        for name in (
            "steps",
            "batch_size",
            "unlabelled_batch_size",
            "eval_every",
            "checkpoint_every",
            "seed",
        ):
            setattr(train, name, int(getattr(train, name)))  # "many" -> ValueError, here
        if (
            train.steps < 1
            or train.batch_size < 1
            or train.unlabelled_batch_size < 1
            or train.eval_every < 1
        ):
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
        unknown_scores = set(strategies) - set(ScoreStrategy)
        if unknown_scores:
            raise ValueError(
                f"unknown score_strategies {sorted(unknown_scores)}; known: "
                f"{[s.value for s in ScoreStrategy]}"
            )
    except (TypeError, ValueError) as exc:
        raise JobDataError(f"bad training settings: {exc}") from exc
    # xmodel is always scored; the baselines only when asked
    extra = tuple(dict.fromkeys(s for s in strategies if s != ScoreStrategy.XMODEL))
    return JobConfig(
        model,
        train,
        val_fraction,
        int(clusters) if clusters is not None else None,
        views,
        extra,
        trunk_cache=bool(params.get("trunk_cache", True)),
        warm_start=bool(params.get("warm_start", True)),
        weak_views=int(params.get("weak_views", 8)),
        strong_views=int(params.get("strong_views", max(2, views - 1))),
    )


def worker_job_config(
    params: dict[str, Any], backbone: str, image_size: int, task: TaskSpec, ws: WorkerSettings
) -> JobConfig:
    """:func:`job_config` with this worker's device, checkpoint period and score views."""
    return job_config(
        params,
        backbone=backbone,
        image_size=image_size,
        output_dim=task.output_dim,
        device=ws.device,
        checkpoint_every=ws.checkpoint_every,
        score_views=ws.score_views,
        checkpoint_min_seconds=ws.checkpoint_min_seconds,
    )
