"""Project schemas, including the task specification."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, model_validator

from xmodel_contracts.training_defaults import IMAGE_SIZES
from xmodel_contracts.training_settings import TrainingSettings

Backbone = Literal["mobilenet_v2", "resnet18", "small_cnn"]
Name = Annotated[str, Field(min_length=1, max_length=100)]


def _unique(names: list[str], what: str) -> None:
    if len(set(names)) != len(names):
        raise ValueError(f"{what} must be unique")


class ClassificationTask(BaseModel):
    kind: Literal["classification"]
    classes: list[Name] = Field(min_length=2, max_length=10_000)

    @model_validator(mode="after")
    def _check(self) -> ClassificationTask:
        _unique(self.classes, "class names")
        return self


class RegressionTask(BaseModel):
    kind: Literal["regression"]
    targets: list[Name] = Field(min_length=1, max_length=100)
    ranges: dict[str, tuple[float, float]] | None = Field(
        default=None, description="optional known [low, high] per target name"
    )

    @model_validator(mode="after")
    def _check(self) -> RegressionTask:
        _unique(self.targets, "target names")
        for name, (low, high) in (self.ranges or {}).items():
            if name not in self.targets:
                raise ValueError(f"range given for unknown target {name!r}")
            if not (math.isfinite(low) and math.isfinite(high) and low < high):
                raise ValueError(f"range of {name!r} must be finite with low < high")
        return self


class KeypointsTask(BaseModel):
    kind: Literal["keypoints"]
    points: list[Name] = Field(min_length=1, max_length=200)
    flip_pairs: list[tuple[str, str]] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> KeypointsTask:
        _unique(self.points, "point names")
        for left, right in self.flip_pairs:
            if left not in self.points or right not in self.points or left == right:
                raise ValueError(f"flip pair [{left!r}, {right!r}] must name two different points")
        return self


TaskSpec = Annotated[
    ClassificationTask | RegressionTask | KeypointsTask, Field(discriminator="kind")
]


class ProjectCreate(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "pets",
                    "task": {"kind": "classification", "classes": ["cat", "dog"]},
                    "image_size": 96,
                    "backbone": "mobilenet_v2",
                    "training": {"steps": 2000, "batch_size": 64, "lr": 0.001},
                    "retrain_every": 50,
                }
            ]
        }
    )

    name: str = Field(min_length=1, max_length=200)
    task: TaskSpec
    image_size: StrictInt | None = Field(
        default=None,
        ge=16,
        le=1024,
        description="pixels per side of the training image; by default, per task kind: "
        + ", ".join(f"{kind} {size}" for kind, size in IMAGE_SIZES.items()),
    )
    backbone: Backbone = "mobilenet_v2"
    training: TrainingSettings = Field(default_factory=TrainingSettings)
    retrain_every: StrictInt | None = Field(
        default=None,
        ge=0,
        le=1_000_000,
        description="retrain after this many new labels; 0/null: never",
    )


class ProjectUpdate(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    training: TrainingSettings | None = None
    retrain_every: StrictInt | None = Field(default=None, ge=0, le=1_000_000)


class ProjectRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    task: dict[str, Any]
    image_size: int
    backbone: str
    training: dict[str, Any]
    retrain_every: int | None
    created_at: datetime


class ProjectCreated(ProjectRead):
    owner_token: str = Field(description="an owner token for the new project, shown only once")


class ProjectStats(BaseModel):
    items: int
    labelled: int
    active_model_id: int | None
