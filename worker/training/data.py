"""From the project's rows and stored images to tensors the trainer takes.

Labels are converted from the service's canonical JSON (``server.labels.validation``) to
targets: class ids, values in target order, keypoints as fractions of width / height.
Images are decoded with Pillow and resized (whole image, bilinear) to the project's size,
exactly as the API's ONNX predict prepares them, so both see the same pixels."""

from __future__ import annotations

import io
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from sqlalchemy.orm import Session, sessionmaker

from server.db.base import utcnow
from server.items import repository as items
from server.storage import ImageStore
from worker.errors import JobDataError
from xmodel_core.data import LabelledSet
from xmodel_core.export import atomic_write_bytes
from xmodel_core.tasks import TaskSpec, task_from_json

PAGE = 1000


class ItemRow(NamedTuple):
    """One item as the worker reads it (stored in a snapshot as the JSON list of the fields)."""

    item_id: int
    sha256: str
    width: int
    height: int
    label: Any  # the canonical label JSON (``server.labels.validation``); None if unlabelled


class PoolRow(NamedTuple):
    """An unlabelled item of a snapshot: what training needs of it."""

    item_id: int
    sha256: str


@dataclass
class Snapshot:
    """The items a job trains on, fixed at its first attempt so a resumed run sees the same
    data: the ``labelled`` rows and the ``unlabelled`` ones (at most ``train_pool_max``, a
    seeded sample beyond)."""

    labelled: list[ItemRow]
    unlabelled: list[PoolRow]

    def save(self, path: Path) -> None:
        atomic_write_bytes(
            path, json.dumps({"labelled": self.labelled, "unlabelled": self.unlabelled}).encode()
        )

    @staticmethod
    def load(path: Path) -> Snapshot:
        data = json.loads(path.read_text())
        return Snapshot(
            [ItemRow(*row) for row in data["labelled"]],
            [PoolRow(*row) for row in data["unlabelled"]],
        )


def iter_items(
    factory: sessionmaker[Session], project_id: int, status: str
) -> Iterator[list[ItemRow]]:
    """Pages of a project's items (keyset pagination, one short transaction per page)."""
    after = 0
    while True:
        with factory() as session:
            page = items.list_page(
                session, project_id, status=status, after_id=after, limit=PAGE, now=utcnow()
            )
            rows = [ItemRow(i.id, i.sha256, i.width, i.height, i.label) for i in page]
        if not rows:
            return
        yield rows
        after = rows[-1].item_id


def take_snapshot(
    factory: sessionmaker[Session], project_id: int, pool_max: int, seed: int
) -> Snapshot:
    labelled = [row for page in iter_items(factory, project_id, "labelled") for row in page]
    unlabelled = [
        PoolRow(row.item_id, row.sha256)
        for page in iter_items(factory, project_id, "unlabelled")
        for row in page
    ]
    if not labelled:
        raise JobDataError("the project has no labelled images yet: label some, then train")
    if len(unlabelled) > pool_max:
        unlabelled = sorted(random.Random(seed).sample(unlabelled, pool_max))
    return Snapshot(labelled, unlabelled)


def core_task(task: dict[str, Any]) -> TaskSpec:
    """The service's task JSON -> an ``xmodel_core`` task (ranges / flip pairs reshaped)."""
    kind = task.get("kind")
    if kind == "regression":
        ranges = task.get("ranges") or {}
        targets = task["targets"]
        complete = all(t in ranges for t in targets)  # the core clamps all targets or none
        return task_from_json(
            {
                "kind": kind,
                "targets": targets,
                "ranges": [ranges[t] for t in targets] if ranges and complete else None,
            }
        )
    if kind == "keypoints":
        return task_from_json(
            {"kind": kind, "points": task["points"], "flip_pairs": task.get("flip_pairs") or None}
        )
    if kind == "classification":
        return task_from_json({"kind": kind, "classes": task["classes"]})
    raise JobDataError(f"unknown task kind {kind!r}")


def targets(task: TaskSpec, rows: list[ItemRow]) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Labels of ``rows`` -> ``(targets, visible)`` in the core's layout."""
    try:
        if task.kind == "classification":
            index = {name: i for i, name in enumerate(task.classes)}
            return torch.tensor([index[r.label["class"]] for r in rows], dtype=torch.long), None
        if task.kind == "regression":
            names = task.targets
            return torch.tensor([[float(r.label["values"][n]) for n in names] for r in rows]), None
        points = [[[p[0] / r.width, p[1] / r.height] for p in r.label["points"]] for r in rows]
        visible = [
            [1.0 if (len(p) < 3 or p[2] > 0) else 0.0 for p in r.label["points"]] for r in rows
        ]
        return torch.tensor(points, dtype=torch.float32), torch.tensor(visible)
    except (KeyError, TypeError, IndexError) as exc:
        raise JobDataError(f"a label does not fit the project's task ({exc!r})") from exc


def load_image(store: ImageStore, sha256: str, size: int) -> torch.Tensor:
    """Stored image -> uint8 ``[3, size, size]`` (RGB, whole image, bilinear)."""
    try:
        data = store.get(sha256)
        with Image.open(io.BytesIO(data)) as image:
            rgb = image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
    except FileNotFoundError as exc:
        raise JobDataError(f"image {sha256[:12]}… is missing from storage") from exc
    except (UnidentifiedImageError, Image.DecompressionBombError, SyntaxError, ValueError) as exc:
        raise JobDataError(f"image {sha256[:12]}… cannot be decoded: {exc}") from exc
    return torch.from_numpy(np.asarray(rgb, dtype=np.uint8).copy()).permute(2, 0, 1).contiguous()


def load_images(store: ImageStore, shas: list[str], size: int) -> torch.Tensor:
    if not shas:
        return torch.empty(0, 3, size, size, dtype=torch.uint8)
    return torch.stack([load_image(store, sha, size) for sha in shas])


def labelled_set(
    store: ImageStore, task: TaskSpec, rows: list[ItemRow], size: int, with_images: bool = True
) -> LabelledSet:
    """Targets of ``rows`` and their images; ``with_images=False`` leaves ``images`` an empty
    ``[N, 0]`` placeholder (training from cached trunk views never decodes the images)."""
    y, visible = targets(task, rows)
    images = (
        load_images(store, [r.sha256 for r in rows], size)
        if with_images
        else torch.empty(len(rows), 0, dtype=torch.uint8)
    )
    return LabelledSet(images, y, visible)
