"""The training settings a project or a job may carry: one schema for the API and the worker.

The API validates ``training`` (project create/update, job overrides) with
:class:`TrainingSettings`, and the worker validates a job's ``params`` with the same class
before building its configs, so a setting the API accepts is one the worker can run. Every
key is optional: an absent key takes the core library's default. Numbers are typed
strictly (``true`` is not an integer, ``"0.1"`` is not a number) and bounded, so a stored
setting can never overflow a float or make a batch of a billion images.

A unit test checks that the keys below are exactly the keys the worker maps onto the core's
``ModelConfig`` / ``TrainConfig`` and its own job options.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt

from xmodel_contracts.names import Method, MinimaxNoise, ScoreStrategy

MAX_STEPS = 10_000_000
MAX_BATCH = 65_536


Int = StrictInt | None  # ``true`` is refused, not read as 1
Float = StrictFloat | None  # an int is fine, a bool or a string is not


class TrainingSettings(BaseModel):
    """Optional overrides of the training defaults (unknown keys are refused)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"steps": 2000, "batch_size": 64, "lr": 0.001}]},
    )

    # the model (ModelConfig)
    num_heads: Int = Field(
        default=None,
        ge=2,
        le=64,
        description="number of prediction heads whose disagreement ranks items",
    )
    head_hidden: Int = Field(default=None, ge=1, le=8192, description="hidden units of each head")
    dropout: Float = Field(
        default=None, ge=0.0, lt=1.0, allow_inf_nan=False, description="dropout in the heads"
    )
    freeze_blocks: Int = Field(
        default=None, ge=0, le=1000, description="backbone blocks kept frozen"
    )
    pretrained: StrictBool | None = Field(default=None, description="start from ImageNet weights")
    # the training loop (TrainConfig)
    method: Method | None = Field(default=None, description="training method")
    steps: Int = Field(default=None, ge=1, le=MAX_STEPS, description="optimiser steps")
    batch_size: Int = Field(
        default=None, ge=1, le=MAX_BATCH, description="labelled images per step"
    )
    unlabelled_batch_size: Int = Field(
        default=None, ge=1, le=MAX_BATCH, description="unlabelled images per step"
    )
    lr: Float = Field(
        default=None, gt=0.0, lt=10.0, allow_inf_nan=False, description="learning rate"
    )
    extractor_lr_scale: Float = Field(
        default=None,
        ge=0.0,
        le=10.0,
        allow_inf_nan=False,
        description="learning-rate factor of the backbone",
    )
    weight_decay: Float = Field(
        default=None, ge=0.0, lt=10.0, allow_inf_nan=False, description="weight decay"
    )
    consistency_weight: Float = Field(
        default=None,
        ge=0.0,
        le=1000.0,
        allow_inf_nan=False,
        description="weight of the consistency loss",
    )
    minimax_weight: Float = Field(
        default=None,
        ge=0.0,
        le=1000.0,
        allow_inf_nan=False,
        description="weight of the heads' minimax loss",
    )
    rampup_fraction: Float = Field(
        default=None,
        ge=0.0,
        le=1.0,
        allow_inf_nan=False,
        description="share of the steps the consistency weight ramps up over",
    )
    crossed_stop_gradient: StrictBool | None = Field(
        default=None, description="the crossed term's second view is a fixed target"
    )
    minimax_noise: MinimaxNoise | None = Field(
        default=None,
        description="the minimax game's disagreement: two views, or dropout on one view",
    )
    ema_decay: Float = Field(
        default=None,
        ge=0.0,
        le=1.0,
        allow_inf_nan=False,
        description="decay of the teacher's moving average",
    )
    bn_stats_from_labelled: StrictBool | None = Field(
        default=None, description="batch-norm statistics from the labelled batch only"
    )
    seed: Int = Field(default=None, ge=0, le=2**32 - 1, description="random seed")
    amp: StrictBool | None = Field(default=None, description="bfloat16 autocast on CUDA")
    eval_every: Int = Field(
        default=None, ge=1, le=MAX_STEPS, description="steps between evaluations"
    )
    patience: Int = Field(
        default=None,
        ge=1,
        le=1_000_000,
        description="evaluations without progress before stopping early",
    )
    checkpoint_every: Int = Field(
        default=None,
        ge=0,
        le=MAX_STEPS,
        description="steps between checkpoints (0: the worker's default)",
    )
    # the job around it
    val_fraction: Float = Field(
        default=None,
        ge=0.0,
        lt=1.0,
        allow_inf_nan=False,
        description="share of the labels held out for validation",
    )
    clusters: Int = Field(
        default=None,
        ge=1,
        le=10_000,
        description="k-means clusters for diversity (default grows with the pool)",
    )
    score_views: Int = Field(
        default=None, ge=1, le=64, description="augmented views averaged when scoring"
    )
    warm_start: StrictBool | None = Field(
        default=None,
        description="start from the project's active model (default) rather than "
        "from the backbone's pretrained weights",
    )
    trunk_cache: StrictBool | None = Field(
        default=None,
        description="train and score on cached activations of the frozen stages "
        "(needs freeze_blocks > 0); false recomputes them at every step",
    )
    weak_views: Int = Field(
        default=None, ge=1, le=64, description="cached weak views per labelled image (trunk_cache)"
    )
    strong_views: Int = Field(
        default=None,
        ge=2,
        le=64,
        description="cached strong views per image (trunk_cache): the "
        "consistency pairs and the scoring views",
    )
    score_strategies: list[ScoreStrategy] | None = Field(
        default=None,
        max_length=16,
        description="baseline scores to write beside xmodel's (for /suggest?strategy=)",
    )


TRAINING_SETTING_KEYS = frozenset(TrainingSettings.model_fields)


def check_training_settings(values: dict[str, Any]) -> dict[str, Any]:
    """Validate ``values``; return them as stored (JSON, unset keys dropped). Raises
    ``pydantic.ValidationError`` with every problem."""
    return TrainingSettings.model_validate(values).model_dump(mode="json", exclude_none=True)
