"""Item rules: validate every image and label first, then write rows and files in short
batched transactions; invalid input leaves no rows and no new files (rollback hook)."""

from __future__ import annotations

import csv
import io
import json
import random
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from server.db.models import Item, Job, Project
from server.db.session import after_commit, after_rollback, run_in_transaction
from server.errors import BadRequest, InvalidLabel
from server.items import repository
from server.jobs.queue import JobQueue
from server.jobs.service import prefill_sender
from server.labels.service import apply_label, maybe_retrain
from server.labels.validation import parse_label_text, validate_label
from server.settings import Settings
from server.storage import ImageStore
from server.storage.image_store import sha256_hex
from server.uploads.archives import ArchiveEntry
from server.uploads.images import CheckedImage, check_image

LABEL_FILES = ("labels.csv", "labels.jsonl")


@dataclass
class IncomingImage:
    name: str
    data: bytes
    label: Any | None = None


@dataclass
class StoredItem:
    item: Item
    created: bool
    name: str


@dataclass
class UploadOutcome:
    items: list[StoredItem]
    retrain_job: Job | None


def check_incoming(
    project: Project, incoming: list[IncomingImage], settings: Settings
) -> list[CheckedImage]:
    """Decode every image and check every label; raise on the first problem."""
    checked = []
    for entry in incoming:
        image = check_image(
            entry.data,
            allowed_formats=settings.allowed_image_formats,
            max_pixels=settings.max_image_pixels,
            max_bytes=settings.max_file_bytes,
            name=entry.name,
        )
        if entry.label is not None:
            try:
                validate_label(project.task, entry.label, width=image.width, height=image.height)
            except InvalidLabel as exc:
                raise InvalidLabel(f"{entry.name}: {exc.detail}") from exc
        checked.append(image)
    return checked


def _insert_or_get(
    session: Session, project: Project, image: CheckedImage, sha: str, name: str
) -> tuple[Item, bool]:
    existing = repository.get_by_sha(session, project.id, sha)
    if existing is not None:
        return existing, False
    item = Item(
        project_id=project.id,
        sha256=sha,
        width=image.width,
        height=image.height,
        image_format=image.image_format,
        byte_size=len(image.data),
        original_name=name[:500],
        random_key=random.random(),
    )
    try:
        with session.begin_nested():
            session.add(item)
    except IntegrityError:  # the same image arrived concurrently
        existing = repository.get_by_sha(session, project.id, sha)
        if existing is None:
            raise
        return existing, False
    return item, True


def _write_files(store: ImageStore, images: list[CheckedImage]) -> list[str]:
    """Store the bytes of images not stored yet; return the hashes this call wrote.

    Called before the batch's transaction: each file is fsynced, and doing that while holding
    the database's write lock would make every other writer wait for the disk."""
    written: list[str] = []
    for image in images:
        sha = sha256_hex(image.data)
        if not store.exists(sha):
            store.put(image.data)
            written.append(sha)
    return written


def _store_batch(
    session: Session,
    store: ImageStore,
    project: Project,
    batch: list[tuple[IncomingImage, CheckedImage]],
    written: list[str],
    token_id: int,
) -> list[StoredItem]:
    """Rows (and labels) of one batch in the caller's transaction. If it rolls back, the
    files written for it that no committed row uses are removed."""

    def remove_written() -> None:
        for sha in written:
            if not repository.sha_in_use(session, sha):
                store.delete(sha)

    after_rollback(session, remove_written)
    results = []
    for entry, image in batch:
        item, created = _insert_or_get(session, project, image, sha256_hex(image.data), entry.name)
        if entry.label is not None:
            apply_label(session, project, item, entry.label, token_id)
        results.append(StoredItem(item=item, created=created, name=entry.name))
    return results


def add_images(
    factory: sessionmaker[Session],
    store: ImageStore,
    queue: JobQueue,
    project: Project,
    incoming: list[IncomingImage],
    settings: Settings,
    token_id: int,
) -> UploadOutcome:
    """Validate all, then store in batches of ``settings.upload_batch_size``, each its own
    short transaction, and ask for a retrain once at the end.

    Every image is decoded and every label checked before the first write, so bad input still
    changes nothing. The batches keep the database's write lock (SQLite has one per file)
    for a fraction of a second at a time, so a 10,000-image import never makes other requests
    wait: they run between its batches. The caller must hold no open transaction. If the
    database fails midway, the batches already committed stay; sending the same request
    again completes it (stored images come back as duplicates)."""
    if not incoming:
        raise BadRequest("no images given")
    checked = check_incoming(project, incoming, settings)
    pairs = list(zip(incoming, checked, strict=True))
    size = max(1, settings.upload_batch_size)
    results: list[StoredItem] = []
    for start in range(0, len(pairs), size):
        batch = pairs[start : start + size]
        written = _write_files(store, [image for _, image in batch])
        for session in run_in_transaction(factory):
            results.extend(_store_batch(session, store, project, batch, written, token_id))
    send_prefill = prefill_sender(queue, project)
    if send_prefill is not None and any(stored.created for stored in results):
        send_prefill()  # (the batches are committed)
    job = None
    if any(entry.label is not None for entry in incoming):
        for session in run_in_transaction(factory):
            job = maybe_retrain(session, queue, session.merge(project), token_id)
    return UploadOutcome(items=results, retrain_job=job)


def parse_labels_field(raw: str | None, count: int) -> list[Any | None]:
    """The multipart ``labels`` field: a JSON list aligned with the files."""
    if raw is None or raw.strip() == "":
        return [None] * count
    try:
        labels = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # ValueError: also a >4300-digit integer
        raise BadRequest(f"'labels' must be a JSON list aligned with the files ({exc})") from exc
    if not isinstance(labels, list) or len(labels) != count:
        raise BadRequest(
            f"'labels' must be a JSON list with one entry (label or null) per file: "
            f"{count} files were sent"
        )
    return labels


def _labels_from_archive(project: Project, entries: dict[str, ArchiveEntry]) -> dict[str, Any]:
    labels: dict[str, Any] = {}
    csv_entry = next((e for n, e in entries.items() if PurePosixPath(n).name == "labels.csv"), None)
    jsonl_entry = next(
        (e for n, e in entries.items() if PurePosixPath(n).name == "labels.jsonl"), None
    )
    if csv_entry is not None:
        try:
            reader = csv.DictReader(io.StringIO(csv_entry.data.decode("utf-8-sig")))
            rows = list(reader)
        except (UnicodeDecodeError, csv.Error) as exc:
            raise BadRequest(f"labels.csv cannot be read ({exc})") from exc
        header = {name.strip().lower() for name in reader.fieldnames or ()}
        if not {"filename", "label"} <= header:
            raise BadRequest(
                "labels.csv needs a header row with the columns 'filename' and 'label'"
            )
        for number, raw_row in enumerate(rows, start=2):
            row = {k.strip().lower(): v for k, v in raw_row.items() if isinstance(k, str)}
            filename, text = row.get("filename"), row.get("label")
            if None in raw_row:
                raise BadRequest(
                    f"labels.csv line {number}: more cells than header columns "
                    "(quote a label that holds commas)"
                )
            if filename is None or not filename.strip():
                raise BadRequest(f"labels.csv line {number}: no filename")
            if text is None or text.strip() == "":
                continue
            try:
                labels[filename.strip()] = parse_label_text(project.task, text)
            except InvalidLabel as exc:
                raise InvalidLabel(f"labels.csv line {number}: {exc.detail}") from exc
    if jsonl_entry is not None:
        for number, line in enumerate(
            jsonl_entry.data.decode("utf-8", "replace").splitlines(), start=1
        ):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                labels[str(record["filename"])] = record["label"]
            except (ValueError, RecursionError, KeyError, TypeError) as exc:
                raise BadRequest(
                    f'labels.jsonl line {number}: expected {{"filename": ..., "label": {{...}}}}'
                ) from exc
    return labels


def incoming_from_archive(
    project: Project, archive_entries: list[ArchiveEntry]
) -> list[IncomingImage]:
    """Images of a zip with their labels (matched by entry path, or by base name)."""
    entries = {e.name: e for e in archive_entries}
    labels = _labels_from_archive(project, entries)
    images = [
        e
        for n, e in entries.items()
        if PurePosixPath(n).name not in LABEL_FILES
        and not PurePosixPath(n).name.startswith(".")
        and not n.startswith("__MACOSX/")
    ]
    known = {e.name for e in images} | {PurePosixPath(e.name).name for e in images}
    unknown = sorted(set(labels) - known)
    if unknown:
        raise BadRequest(f"labels given for files not in the archive: {unknown[:5]}")
    return [
        IncomingImage(
            name=e.name,
            data=e.data,
            label=labels.get(e.name, labels.get(PurePosixPath(e.name).name)),
        )
        for e in images
    ]


def delete_item(session: Session, store: ImageStore, item: Item) -> None:
    """Delete the row; the file goes after commit unless another project has the same image."""
    sha = item.sha256
    repository.delete_item(session, item)

    def remove_file() -> None:
        if not repository.sha_in_use(session, sha):
            store.delete(sha)

    after_commit(session, remove_file)
