"""Learning-curve schemas."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel


class CurvePoint(BaseModel):
    model_id: int
    version: int
    labelled_count: int
    metrics: dict[str, Any]
    created_at: datetime
    is_active: bool


class LearningCurve(BaseModel):
    project_id: int
    labelled_now: int
    points: list[CurvePoint]
