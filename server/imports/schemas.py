"""Import parameters and report."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

ImportFormat = Literal["csv", "jsonl", "coco"]
MatchBy = Literal["auto", "name", "sha256"]


class ImportReport(BaseModel):
    """What an import did (or, with ``dry_run``, would do)."""

    dry_run: bool
    records: int = Field(description="labels read from the file")
    matched: int = Field(description="records that found their item")
    created: int = Field(description="items that had no label and get one")
    changed: int = Field(description="items whose label changes")
    unchanged: int = Field(description="items that already carry this label")
    unmatched: list[str] = Field(
        description="file names / sha256s with no item (with allow_unmatched)"
    )
    retrain_job_id: int | None = None
