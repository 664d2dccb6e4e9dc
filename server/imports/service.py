"""Import rules: parse, find every record's item, check every label, then write; one bad
record rejects the whole file and nothing is stored (the request's transaction rolls back).

Matching (``match``): ``sha256`` uses the record's sha256; ``name`` its file name, compared
with the name the image was uploaded under (exactly, else by base name); ``auto`` uses the
sha256 when the record has one, else the name.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from sqlalchemy.orm import Session

from server.db.models import Item, Job, Project
from server.errors import BadRequest, InvalidLabel
from server.imports import parsers, repository
from server.imports.schemas import ImportFormat, ImportReport, MatchBy
from server.jobs.queue import JobQueue
from server.labels.service import apply_label, maybe_retrain
from server.labels.validation import validate_label

MAX_UNMATCHED_LISTED = 50


@dataclass
class _Planned:
    item: Item
    label: dict[str, Any]


def parse(fmt: ImportFormat, data: bytes, task: dict[str, Any]) -> list[parsers.LabelRecord]:
    if not data.strip():
        raise BadRequest("the label file is empty")
    if fmt == "jsonl":
        return parsers.parse_jsonl(data)
    if fmt == "csv":
        return parsers.parse_csv(data, task)
    return parsers.parse_coco(data, task)


def _base(name: str) -> str:
    return PurePosixPath(name.replace("\\", "/")).name


def _resolve(
    session: Session, project: Project, records: list[parsers.LabelRecord], match: MatchBy
) -> tuple[list[tuple[parsers.LabelRecord, Item]], list[str]]:
    def by_sha(record: parsers.LabelRecord) -> bool:
        return record.sha256 is not None and match != "name"

    if match == "sha256":
        lacking = next((r for r in records if r.sha256 is None), None)
        if lacking is not None:
            raise BadRequest(f"{lacking.where}: no sha256 to match by (match=sha256)")
    shas = repository.by_sha(
        session, project.id, (r.sha256 for r in records if r.sha256 and by_sha(r))
    )
    wanted = {
        n
        for r in records
        if not by_sha(r) and r.file_name
        for n in (r.file_name, _base(r.file_name))
    }
    names = repository.by_name(session, project.id, wanted)
    matched: list[tuple[parsers.LabelRecord, Item]] = []
    unmatched: list[str] = []
    for record in records:
        if by_sha(record) and record.sha256:
            item = shas.get(record.sha256)
            if item is None:
                unmatched.append(record.sha256)
            else:
                matched.append((record, item))
            continue
        if record.file_name is None:
            raise BadRequest(f"{record.where}: no file name to match by (match=name)")
        candidates = names.get(record.file_name) or names.get(_base(record.file_name)) or []
        if len(candidates) > 1:
            raise BadRequest(
                f"{record.where}: {len(candidates)} items are named "
                f"{record.file_name!r}; match by sha256 instead"
            )
        if candidates:
            matched.append((record, candidates[0]))
        else:
            unmatched.append(record.file_name)
    return matched, unmatched


def _check(project: Project, matched: list[tuple[parsers.LabelRecord, Item]]) -> list[_Planned]:
    planned: list[_Planned] = []
    seen: dict[int, str] = {}
    for record, item in matched:
        if item.id in seen:
            raise BadRequest(f"{record.where}: the same image is labelled again ({seen[item.id]})")
        seen[item.id] = record.where
        if record.size is not None and record.size != (item.width, item.height):
            raise InvalidLabel(
                f"{record.where}: the file says {record.size[0]}x{record.size[1]} but "
                f"{item.original_name!r} is {item.width}x{item.height} in the project"
            )
        try:
            label = validate_label(project.task, record.label, width=item.width, height=item.height)
        except InvalidLabel as exc:
            raise InvalidLabel(f"{record.where} ({item.original_name!r}): {exc.detail}") from exc
        planned.append(_Planned(item, label))
    return planned


def import_labels(
    session: Session,
    queue: JobQueue,
    project: Project,
    fmt: ImportFormat,
    data: bytes,
    *,
    match: MatchBy,
    dry_run: bool,
    allow_unmatched: bool,
    token_id: int,
) -> ImportReport:
    """Apply every label of the file, or none: any problem raises before the first write."""
    records = parse(fmt, data, project.task)
    matched, unmatched = _resolve(session, project, records, match)
    if unmatched and not allow_unmatched and not dry_run:
        raise BadRequest(
            f"{len(unmatched)} label(s) name images that are not in the project, e.g. "
            f"{unmatched[:5]}; upload them first or pass allow_unmatched=true"
        )
    planned = _check(project, matched)
    created = sum(1 for p in planned if p.item.label is None)
    changed = sum(1 for p in planned if p.item.label is not None and p.item.label != p.label)
    todo = [p for p in planned if p.item.label != p.label]
    job: Job | None = None
    if not dry_run:
        for p in todo:
            apply_label(session, project, p.item, p.label, token_id)
        if todo:
            job = maybe_retrain(session, queue, project, token_id)
    return ImportReport(
        dry_run=dry_run,
        records=len(records),
        matched=len(matched),
        created=created,
        changed=changed,
        unchanged=len(planned) - created - changed,
        unmatched=unmatched[:MAX_UNMATCHED_LISTED],
        retrain_job_id=job.id if job else None,
    )
