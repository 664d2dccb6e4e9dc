"""Export rules: which formats fit which task, and the byte stream for each."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from server.db.models import Project
from server.errors import BadRequest
from server.exports import formats, repository
from server.exports.schemas import ExportFormat


def check_format(project: Project, fmt: ExportFormat) -> None:
    """Refuse before streaming starts (a status cannot change once bytes are sent)."""
    if fmt == "coco" and project.task["kind"] not in ("classification", "keypoints"):
        raise BadRequest(
            f"COCO holds categories and keypoints; export this {project.task['kind']} "
            "project as csv or jsonl"
        )


def stream(
    factory: sessionmaker[Session], project: Project, fmt: ExportFormat, *, include_unlabelled: bool
) -> Iterator[bytes]:
    """The export as byte chunks; reads the database only while it is being consumed."""
    task: dict[str, Any] = dict(project.task)
    project_id = project.id
    summary = {"id": project_id, "name": project.name}

    def rows() -> Iterator[repository.ExportRow]:
        return repository.iter_rows(factory, project_id, include_unlabelled=include_unlabelled)

    if fmt == "jsonl":
        return formats.jsonl(rows())
    if fmt == "csv":
        return formats.csv_rows(task, rows())
    return formats.coco(task, summary, rows())
