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
import tempfile
from collections.abc import Iterable, Iterator
from typing import Any

from server.exports.repository import ExportRow, iso

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


_string = json.encoder.encode_basestring  # JSON string literal of a str, without a dumps call


def _nullable(value: Any) -> str:
    return "null" if value is None else str(value)


def _iso_json(value: Any) -> str:
    text = iso(value)
    return "null" if text is None else f'"{text}"'


def jsonl(rows: Iterable[ExportRow]) -> Iterator[bytes]:
    """Lines are assembled from the stored label text: no parse and re-dump per row."""
    return _chunked(
        f'{{"item_id":{r.item_id},"file_name":{_string(r.file_name)},"sha256":"{r.sha256}",'
        f'"width":{r.width},"height":{r.height},"label":{_nullable(r.label_json)},'
        f'"label_revision":{_nullable(r.label_revision)},'
        f'"labelled_at":{_iso_json(r.labelled_at)}}}\n'
        for r in rows
    )


def csv_rows(task: dict[str, Any], rows: Iterable[ExportRow]) -> Iterator[bytes]:
    classification = task["kind"] == "classification"

    def lines() -> Iterator[str]:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")  # writes None as an empty cell
        writer.writerow(CSV_COLUMNS)
        page: list[tuple[Any, ...]] = []
        for r in rows:
            label = r.label_json
            if classification and label is not None:
                label = json.loads(label)["class"]
            page.append(
                (
                    r.item_id,
                    r.file_name,
                    r.sha256,
                    r.width,
                    r.height,
                    r.label_revision,
                    iso(r.labelled_at),
                    label,
                )
            )
            if len(page) == 1000:
                writer.writerows(page)
                page.clear()
                yield out.getvalue()
                out.seek(0)
                out.truncate()
        writer.writerows(page)
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


def coco_annotation(task: dict[str, Any], row: ExportRow, categories: dict[str, int]) -> str:
    """One annotation object as JSON text (``categories``: class name -> category id)."""
    label = json.loads(row.label_json or "{}")
    if task["kind"] == "classification":
        return (
            f'{{"id":{row.item_id},"image_id":{row.item_id},'
            f'"category_id":{categories[label["class"]]},"iscrowd":0}}'
        )
    # Assembled as text: numbers print as json.dumps prints them (repr), at a third of its cost.
    parts: list[str] = []
    xs: list[float] = []
    ys: list[float] = []
    for x, y, v in label["points"]:
        parts.append(f"{x},{y},{v}")
        if v:
            xs.append(x)
            ys.append(y)
    if xs:
        x0, y0 = min(xs), min(ys)
        width, height = max(xs) - x0, max(ys) - y0
    else:
        x0 = y0 = width = height = 0.0
    return (
        f'{{"id":{row.item_id},"image_id":{row.item_id},"category_id":1,"iscrowd":0,'
        f'"keypoints":[{",".join(parts)}],"num_keypoints":{len(xs)},'
        f'"bbox":[{x0},{y0},{width},{height}],"area":{width * height}}}'
    )


def coco(
    task: dict[str, Any], project: dict[str, Any], rows: Iterable[ExportRow]
) -> Iterator[bytes]:
    """One COCO document from one pass over the rows: images stream out as they are read,
    while their annotations are spooled to a temporary file (constant memory) and follow."""

    def pieces() -> Iterator[str]:
        info = {
            "description": f"labels of project {project['id']} ({project['name']})",
            "format": COCO_FORMAT_VERSION,
            "task": task,
        }
        categories = coco_categories(task, project["name"])
        category_ids = {c["name"]: c["id"] for c in categories}
        yield '{"info":' + _dumps(info) + ',"categories":' + _dumps(categories) + ',"images":['
        with tempfile.TemporaryFile("w+", encoding="utf-8") as spool:
            separator = "\n"
            spool_separator = "\n"
            for r in rows:
                yield (
                    f'{separator}{{"id":{r.item_id},"file_name":{_string(r.file_name)},'
                    f'"width":{r.width},"height":{r.height},"sha256":"{r.sha256}",'
                    f'"label_revision":{_nullable(r.label_revision)}}}'
                )
                separator = ",\n"
                if r.label_json is not None:
                    spool.write(spool_separator + coco_annotation(task, r, category_ids))
                    spool_separator = ",\n"
            yield '],"annotations":['
            spool.seek(0)
            while chunk := spool.read(CHUNK_BYTES):
                yield chunk
        yield "]}\n"

    return _chunked(pieces())
