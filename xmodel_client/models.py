"""Typed answers of the API. Unknown fields are kept (``extra="allow"``), so a newer server
never breaks an older client."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from xmodel_contracts.names import ACTIVE_JOB_STATUSES


class _Answer(BaseModel):
    model_config = ConfigDict(extra="allow")


class Project(_Answer):
    id: int
    name: str
    task: dict[str, Any]
    image_size: int
    backbone: str
    training: dict[str, Any] = Field(default_factory=dict)
    retrain_every: int | None = None
    created_at: datetime | None = None


class ProjectCreated(Project):
    owner_token: str


class ProjectStats(_Answer):
    items: int
    labelled: int
    active_model_id: int | None = None


class Item(_Answer):
    id: int
    project_id: int
    sha256: str
    width: int
    height: int
    image_format: str
    byte_size: int
    original_name: str
    label: dict[str, Any] | None = None
    labelled_at: datetime | None = None


class UploadedItem(_Answer):
    item: Item
    created: bool
    name: str


class UploadResult(_Answer):
    created: int
    duplicates: int
    labelled: int
    items: list[UploadedItem]
    retrain_job_id: int | None = None


class LabelResult(_Answer):
    item: Item
    retrain_job_id: int | None = None


class Job(_Answer):
    id: int
    project_id: int
    kind: str
    status: str
    phase: str | None = None
    progress_step: int = 0
    progress_total: int | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, Any] | None = None
    error: str | None = None
    model_id: int | None = None
    cancel_requested: bool = False

    @property
    def finished(self) -> bool:
        return self.status not in ACTIVE_JOB_STATUSES


class Artefact(_Answer):
    format: str
    sha256: str
    download_url: str


class Model(_Answer):
    id: int
    project_id: int
    version: int
    job_id: int | None = None
    labelled_count: int
    metrics: dict[str, Any] = Field(default_factory=dict)
    is_active: bool
    artefacts: list[Artefact] = Field(default_factory=list)


class Prediction(_Answer):
    model_id: int
    model_version: int
    task: str
    prediction: dict[str, Any]
    heads: list[list[float]]
    disagreement: float


class ItemPrediction(Prediction):
    """The active model's guess for one stored item (``GET /items/{id}/prediction``)."""

    item_id: int


class SuggestedItem(_Answer):
    item_id: int
    score: float | None = None
    cluster: int | None = None
    image_url: str
    prediction: ItemPrediction | None = None


class Suggestion(_Answer):
    project_id: int
    strategy: str
    cold_start: bool
    model_id: int | None = None
    model_version: int | None = None
    lease_expires_at: datetime | None = None
    note: str | None = None
    items: list[SuggestedItem]


class ImportReport(_Answer):
    dry_run: bool
    records: int
    matched: int
    created: int
    changed: int
    unchanged: int
    unmatched: list[str]
    retrain_job_id: int | None = None


class ProjectDeleted(_Answer):
    project_id: int
    items: int
    label_revisions: int
    leases: int
    jobs: int
    models: int
    scores: int
    images_removed: int
    cancelled_job_id: int | None = None
