"""Deletion answer."""

from __future__ import annotations

from pydantic import BaseModel, Field


class ProjectDeleted(BaseModel):
    project_id: int
    items: int
    label_revisions: int
    leases: int
    jobs: int
    models: int
    scores: int
    images_removed: int = Field(description="stored images no other project references, removed")
    cancelled_job_id: int | None = Field(description="the training job that was stopped first")
