"""Model registry schemas."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

ArtefactFormat = Literal["safetensors", "onnx", "torchscript", "config"]


class ArtefactRead(BaseModel):
    format: ArtefactFormat
    sha256: str
    download_url: str


class ModelRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    project_id: int
    version: int
    job_id: int | None
    labelled_count: int
    metrics: dict[str, Any]
    is_active: bool
    created_at: datetime
    artefacts: list[ArtefactRead] = Field(default_factory=list)


class PredictRead(BaseModel):
    model_id: int
    model_version: int
    task: str
    prediction: dict[str, Any] = Field(
        description="mean over heads: classification {class, probabilities}; regression "
        "{values: {target: v}}; keypoints {points: {name: [x, y]}} in original pixels"
    )
    heads: list[list[float]] = Field(description="raw decoded output of each head")
    disagreement: float = Field(description="mean over output dims of the variance across heads")


class ItemPredictionRead(BaseModel):
    """The active model's guess for one stored item (what the labelling page prefills)."""

    item_id: int
    model_id: int
    model_version: int
    task: str
    prediction: dict[str, Any] = Field(
        description="mean over heads, as for POST /models/{id}/predict (keypoints in pixels of "
        "the stored image)"
    )
    heads: list[list[float]] = Field(description="decoded output of each head")
    disagreement: float = Field(
        description="mean over output dims of the variance across heads: how unsure the model is"
    )
