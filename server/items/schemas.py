"""Item schemas."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from server.uploads.openapi import multipart_body

ItemStatus = Literal["all", "labelled", "unlabelled", "leased", "unlabellable"]


class ItemRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    project_id: int
    sha256: str
    width: int
    height: int
    image_format: str
    byte_size: int
    original_name: str
    created_at: datetime
    label: dict[str, Any] | None
    labelled_at: datetime | None
    labelled_by_token_id: int | None
    unlabellable_at: datetime | None = Field(
        default=None, description="when it was flagged 'cannot be labelled' (kept out of /suggest)"
    )
    unlabellable_reason: str | None = None


class UploadedItem(BaseModel):
    item: ItemRead
    created: bool = Field(description="false when the same image was already in the project")
    name: str = Field(description="the uploaded file name or zip entry name")


class UploadResult(BaseModel):
    created: int
    duplicates: int
    labelled: int
    items: list[UploadedItem]
    retrain_job_id: int | None = Field(
        default=None, description="training job started or running because of these labels"
    )


class ItemPage(BaseModel):
    items: list[ItemRead]
    next_cursor: str | None = Field(
        description="pass as ?cursor= to get the next page; null at the end"
    )


UPLOAD_OPENAPI = multipart_body(
    {
        "files": {
            "type": "array",
            "items": {"type": "string", "format": "binary"},
            "description": "one or more images (JPEG, PNG, WebP, BMP); repeat the field",
        },
        "labels": {
            "type": "string",
            "description": "optional JSON list aligned with `files`: one label object "
            "or null per file, e.g. "
            '[{"class": "cat"}, null]',
        },
    },
    required=["files"],
)

IMPORT_OPENAPI = multipart_body(
    {
        "archive": {
            "type": "string",
            "format": "binary",
            "description": "a zip of images, optionally with labels.csv "
            "(columns filename,label) or labels.jsonl "
            '({"filename": ..., "label": {...}} per line)',
        },
    },
    required=["archive"],
)


class UnlabellableCreate(BaseModel):
    reason: str = Field(
        default="",
        max_length=500,
        description="why it cannot be labelled (blurred, wrong subject, ...)",
    )
