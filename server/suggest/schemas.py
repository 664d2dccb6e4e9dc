"""Suggest schemas."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from server.models.schemas import ItemPredictionRead

Strategy = Literal["xmodel", "xmodel_nodiv", "random", "mc_dropout", "entropy"]
UsedStrategy = Literal[
    "xmodel", "xmodel_nodiv", "random", "mc_dropout", "entropy", "cold_start_random"
]


class SuggestedItem(BaseModel):
    item_id: int
    score: float | None = Field(
        description="acquisition score of the strategy (head disagreement, dropout variance or entropy); null for random picks"
    )
    cluster: int | None = Field(
        description="diversity cluster of the item's features; null for random picks"
    )
    image_url: str
    prediction: ItemPredictionRead | None = Field(
        default=None, description="the active model's guess, with ?predictions=true"
    )


class SuggestRead(BaseModel):
    project_id: int
    annotator: str
    strategy: UsedStrategy = Field(description="the strategy that actually chose the items")
    requested_strategy: Strategy
    cold_start: bool = Field(description="true when no active model has scores yet")
    note: str | None = None
    model_id: int | None
    model_version: int | None
    lease_expires_at: datetime
    items: list[SuggestedItem]


class LeaseRead(BaseModel):
    annotator: str
    item_ids: list[int]
    lease_expires_at: datetime | None
