"""Export parameters."""

from __future__ import annotations

from typing import Literal

ExportFormat = Literal["csv", "jsonl", "coco"]

MEDIA_TYPES: dict[str, str] = {
    "csv": "text/csv; charset=utf-8",
    "jsonl": "application/x-ndjson",
    "coco": "application/json",
}
EXTENSIONS: dict[str, str] = {"csv": "csv", "jsonl": "jsonl", "coco": "coco.json"}
