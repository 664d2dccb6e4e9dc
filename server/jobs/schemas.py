"""Job schemas."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from xmodel_contracts.names import JobStatus
from xmodel_contracts.training_settings import TrainingSettings


class JobCreate(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"kind": "train", "training": {"steps": 500}}]}
    )

    kind: Literal["train"] = "train"
    training: TrainingSettings | None = Field(
        default=None, description="overrides of the project's training settings"
    )


class JobEventRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    attempt: int
    kind: Literal["lost", "retry", "failed"] = Field(
        description="lost: its worker stopped answering; retry: an error released the job for "
        "another attempt; failed: the final error"
    )
    reason: str
    created_at: datetime


class JobRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    project_id: int
    kind: str
    status: JobStatus
    phase: str | None  # a JobPhase, or the final status for rows that ended without one
    progress_step: int
    progress_total: int | None
    params: dict[str, Any]
    metrics: dict[str, Any] | None
    error: str | None
    model_id: int | None
    attempts: int
    cancel_requested: bool
    lease_owner: str | None
    lease_expires_at: datetime | None
    heartbeat_at: datetime | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    history: list[JobEventRead] = Field(
        default_factory=list, description="each attempt that did not end well, and why"
    )
