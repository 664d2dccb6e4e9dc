"""Writers for the three export formats. Each turns a row iterator into byte chunks of about
``CHUNK_BYTES``, so the response streams in constant memory whatever the project's size.

* ``jsonl``: one object per item: ``item_id, file_name, sha256, width, height, label,
  label_revision, labelled_at``.
* ``csv``: the same columns; ``label`` is the class name (classification) or the label's JSON
  (regression, keypoints), which is what ``labels import`` and zip ``labels.csv`` read back.
* ``coco``: ``images`` (with ``sha256`` and ``label_revision``), ``annotations`` and
  ``categories``; classification labels become one annotation with a ``category_id``,
  keypoint labels one annotation with ``keypoints: [x, y, v, ...]`` (COCO visibility: 0 not
  labelled, 1 labelled but hidden, 2 visible), ``num_keypoints``, ``bbox`` and ``area``.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from server.exports.repository import ExportRow

CHUNK_BYTES = 256 * 1024
CSV_COLUMNS = [
    "item_id",
    "file_name",
    "sha256",
    "width",
    "height",
    "label_revision",
    "labelled_at",
    "label",
]
COCO_FORMAT_VERSION = "xmodel-coco/1"


def _chunked(pieces: Iterable[str]) -> Iterator[bytes]:
    buffer: list[str] = []
    size = 0
    for piece in pieces:
        buffer.append(piece)
        size += len(piece)
        if size >= CHUNK_BYTES:
            yield "".join(buffer).encode()
            buffer, size = [], 0
    if buffer:
        yield "".join(buffer).encode()


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _iso(row: ExportRow) -> str | None:
    return row.labelled_at.isoformat() if row.labelled_at is not None else None


def jsonl(rows: Iterable[ExportRow]) -> Iterator[bytes]:
    return _chunked(
        _dumps(
            {
                "item_id": r.item_id,
                "file_name": r.file_name,
                "sha256": r.sha256,
                "width": r.width,
                "height": r.height,
                "label": r.label,
                "label_revision": r.label_revision,
                "labelled_at": _iso(r),
            }
        )
        + "\n"
        for r in rows
    )


def label_cell(task: dict[str, Any], label: Any | None) -> str:
    """The ``label`` column: a bare class name for classification, JSON otherwise."""
    if label is None:
        return ""
    if task["kind"] == "classification":
        return str(label["class"])
    return _dumps(label)


def csv_rows(task: dict[str, Any], rows: Iterable[ExportRow]) -> Iterator[bytes]:
    def lines() -> Iterator[str]:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for r in rows:
            writer.writerow(
                [
                    r.item_id,
                    r.file_name,
                    r.sha256,
                    r.width,
                    r.height,
                    "" if r.label_revision is None else r.label_revision,
                    _iso(r) or "",
                    label_cell(task, r.label),
                ]
            )
            if out.tell() >= 8192:
                yield out.getvalue()
                out.seek(0)
                out.truncate()
        yield out.getvalue()

    return _chunked(lines())


def coco_categories(task: dict[str, Any], project_name: str) -> list[dict[str, Any]]:
    if task["kind"] == "classification":
        return [
            {"id": i + 1, "name": name, "supercategory": ""}
            for i, name in enumerate(task["classes"])
        ]
    names = task["points"]
    index = {name: i + 1 for i, name in enumerate(names)}
    # COCO's skeleton lists 1-based point pairs; the flip pairs are the only edges we know.
    skeleton = [[index[a], index[b]] for a, b in task.get("flip_pairs", [])]
    return [
        {
            "id": 1,
            "name": project_name,
            "supercategory": "",
            "keypoints": list(names),
            "skeleton": skeleton,
        }
    ]


def coco_annotation(task: dict[str, Any], row: ExportRow) -> dict[str, Any]:
    label = row.label or {}
    if task["kind"] == "classification":
        category = task["classes"].index(label["class"]) + 1
        return {"id": row.item_id, "image_id": row.item_id, "category_id": category, "iscrowd": 0}
    flat: list[float] = []
    visible_x: list[float] = []
    visible_y: list[float] = []
    for x, y, v in label["points"]:
        flat.extend([x, y, v])
        if v > 0:
            visible_x.append(x)
            visible_y.append(y)
    if visible_x:
        x0, y0 = min(visible_x), min(visible_y)
        bbox = [x0, y0, max(visible_x) - x0, max(visible_y) - y0]
    else:
        bbox = [0.0, 0.0, 0.0, 0.0]
    return {
        "id": row.item_id,
        "image_id": row.item_id,
        "category_id": 1,
        "iscrowd": 0,
        "keypoints": flat,
        "num_keypoints": len(visible_x),
        "bbox": bbox,
        "area": bbox[2] * bbox[3],
    }


def coco(
    task: dict[str, Any], project: dict[str, Any], rows: Callable[[], Iterable[ExportRow]]
) -> Iterator[bytes]:
    """One COCO document in two passes over the rows (images, then annotations), so neither
    list is ever held in memory. ``rows`` is called once per pass."""

    def pieces() -> Iterator[str]:
        info = {
            "description": f"labels of project {project['id']} ({project['name']})",
            "format": COCO_FORMAT_VERSION,
            "task": task,
        }
        yield (
            '{"info":'
            + _dumps(info)
            + ',"categories":'
            + _dumps(coco_categories(task, project["name"]))
        )
        yield ',"images":['
        first = True
        for r in rows():
            image = {
                "id": r.item_id,
                "file_name": r.file_name,
                "width": r.width,
                "height": r.height,
                "sha256": r.sha256,
                "label_revision": r.label_revision,
            }
            yield ("" if first else ",") + "\n" + _dumps(image)
            first = False
        yield '],"annotations":['
        first = True
        for r in rows():
            if r.label is None:
                continue
            yield ("" if first else ",") + "\n" + _dumps(coco_annotation(task, r))
            first = False
        yield "]}\n"

    return _chunked(pieces())
