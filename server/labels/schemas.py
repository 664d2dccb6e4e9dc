"""Label schemas."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from server.items.schemas import ItemRead

LABEL_EXAMPLES = {
    "classification": {"value": {"class": "cat"}},
    "regression": {"value": {"values": {"age": 31}}},
    "keypoints": {"value": {"points": [[12.5, 40.0], [80.0, 41.5, 1]]}},
}


class LabelRevisionRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    item_id: int
    value: dict[str, Any] | None = Field(description="null records that the label was cleared")
    token_id: int | None
    created_at: datetime


class LabelResult(BaseModel):
    item: ItemRead
    retrain_job_id: int | None = Field(
        default=None, description="training job started or running after this label"
    )
