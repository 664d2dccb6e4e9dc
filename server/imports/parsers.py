"""Read a label file into records, each naming where it came from (``line 7``,
``annotation id 12``) so every error can point at the offending place.

Records carry the item's file name and/or sha256 (used to find the item) and a label in the
API's own shape; checking the label against the task and the image happens later, once the
item (and so its size) is known.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from typing import Any

from server.errors import BadRequest, InvalidLabel
from server.labels.validation import parse_label_text

NAME_KEYS = ("file_name", "filename")


@dataclass(frozen=True)
class LabelRecord:
    """One label to apply; ``size`` is the image's (width, height) as the file states it."""

    where: str
    file_name: str | None
    sha256: str | None
    label: dict[str, Any]
    size: tuple[int, int] | None = None


def _text(data: bytes, what: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BadRequest(f"{what} is not UTF-8 text ({exc})") from exc


def _key(record: dict[str, Any], where: str) -> tuple[str | None, str | None]:
    name = next(
        (str(record[k]).strip() for k in NAME_KEYS if record.get(k) not in (None, "")), None
    )
    sha = record.get("sha256")
    sha = str(sha).strip().lower() if sha not in (None, "") else None
    if name is None and sha is None:
        raise BadRequest(f"{where}: give the image's 'file_name' (or 'filename') or its 'sha256'")
    return name, sha


def parse_jsonl(data: bytes) -> list[LabelRecord]:
    """``{"file_name" | "sha256": ..., "label": {...}}`` per line (the jsonl export reads back)."""
    records = []
    for number, line in enumerate(_text(data, "the JSON lines file").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"line {number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise BadRequest(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})") from exc
        if not isinstance(record, dict):
            raise BadRequest(
                f"{where}: expected an object like "
                '{"file_name": "a.jpg", "label": {"class": "cat"}}'
            )
        name, sha = _key(record, where)
        label = record.get("label")
        if label is None:
            continue  # an unlabelled item in an export: nothing to import
        if not isinstance(label, dict):
            raise BadRequest(f'{where}: \'label\' must be a JSON object, e.g. {{"class": "cat"}}')
        records.append(LabelRecord(where, name, sha, label))
    return records


def parse_csv(data: bytes, task: dict[str, Any]) -> list[LabelRecord]:
    """Columns ``file_name`` (or ``filename``) and/or ``sha256``, and ``label``: a class name,
    a number, or the label's JSON (what the csv export writes)."""
    reader = csv.DictReader(io.StringIO(_text(data, "the CSV file")))
    columns = set(reader.fieldnames or [])
    if "label" not in columns or not columns & {*NAME_KEYS, "sha256"}:
        raise BadRequest(
            "the CSV file needs a 'label' column and a 'file_name' (or 'filename') "
            f"or 'sha256' column; found {sorted(columns)}"
        )
    records = []
    try:
        for row in reader:
            where = f"line {reader.line_num}"
            cell = (row.get("label") or "").strip()
            if not cell:
                continue
            name, sha = _key(row, where)
            try:
                label = parse_label_text(task, cell)
            except (InvalidLabel, json.JSONDecodeError) as exc:
                raise InvalidLabel(f"{where}: {getattr(exc, 'detail', exc)}") from exc
            if not isinstance(label, dict):
                raise InvalidLabel(f"{where}: the label must be a JSON object or a plain value")
            records.append(LabelRecord(where, name, sha, label))
    except csv.Error as exc:
        raise BadRequest(f"line {reader.line_num}: the CSV cannot be read ({exc})") from exc
    return records


def _is_id(value: Any) -> bool:
    return isinstance(value, int | str) and not isinstance(value, bool)


def _by_id(entries: Any, what: str) -> dict[Any, dict[str, Any]]:
    if not isinstance(entries, list):
        raise BadRequest(f"COCO '{what}' must be a list")
    out: dict[Any, dict[str, Any]] = {}
    for position, entry in enumerate(entries):
        if not isinstance(entry, dict) or not _is_id(entry.get("id")):
            raise BadRequest(
                f"COCO {what}[{position}] must be an object with an 'id' (a number or text)"
            )
        if entry["id"] in out:
            raise BadRequest(f"COCO {what} id {entry['id']!r} appears twice")
        out[entry["id"]] = entry
    return out


def _keypoint_label(
    task: dict[str, Any], category: dict[str, Any], annotation: dict[str, Any], where: str
) -> dict[str, Any]:
    """COCO ``keypoints: [x, y, v, ...]`` in the category's point order -> ours, in task order."""
    names = category.get("keypoints")
    if not isinstance(names, list):
        raise BadRequest(f"{where}: category id {category['id']!r} has no 'keypoints' names")
    missing = [n for n in task["points"] if n not in names]
    if missing:
        raise InvalidLabel(
            f"{where}: category id {category['id']!r} lacks the project's points "
            f"{missing} (it has {names})"
        )
    flat = annotation.get("keypoints")
    if not isinstance(flat, list) or len(flat) != 3 * len(names):
        raise InvalidLabel(
            f"{where}: 'keypoints' must hold 3 numbers (x, y, v) for each of the "
            f"{len(names)} points of category id {category['id']!r}"
        )
    points = {n: flat[3 * i : 3 * i + 3] for i, n in enumerate(names)}
    return {"points": [points[n] for n in task["points"]]}


def parse_coco(data: bytes, task: dict[str, Any]) -> list[LabelRecord]:
    """A COCO document: ``images`` (``id, file_name, width, height``, optional ``sha256``),
    ``categories`` and ``annotations``. Classification projects read one ``category_id`` per
    image (category names are the class names); keypoint projects read one annotation with
    ``keypoints`` per image (point names from the category, matched to the task by name)."""
    try:
        document = json.loads(_text(data, "the COCO file"))
    except json.JSONDecodeError as exc:
        raise BadRequest(
            f"the COCO file is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from exc
    if not isinstance(document, dict):
        raise BadRequest(
            "a COCO file is a JSON object with 'images', 'annotations' and 'categories'"
        )
    kind = task["kind"]
    if kind not in ("classification", "keypoints"):
        raise BadRequest(
            f"COCO holds categories and keypoints; import {kind} labels as csv or jsonl"
        )
    images = _by_id(document.get("images"), "images")
    categories = _by_id(document.get("categories"), "categories")
    annotations = document.get("annotations")
    if not isinstance(annotations, list):
        raise BadRequest("COCO 'annotations' must be a list")
    labels: dict[Any, tuple[str, dict[str, Any]]] = {}
    for position, annotation in enumerate(annotations):
        if not isinstance(annotation, dict):
            raise BadRequest(f"annotations[{position}] must be an object")
        where = f"annotation id {annotation.get('id', f'#{position}')!r}"
        image_id = annotation.get("image_id")
        if not _is_id(image_id) or image_id not in images:
            raise BadRequest(f"{where}: image_id {image_id!r} is not among the file's images")
        category_id = annotation.get("category_id")
        if not _is_id(category_id) or category_id not in categories:
            raise InvalidLabel(f"{where}: unknown category_id {category_id!r}")
        category = categories[category_id]
        if kind == "classification":
            if category.get("name") not in task["classes"]:
                raise InvalidLabel(
                    f"{where}: category id {category_id!r} ({category.get('name')!r}) is not a "
                    f"class of this project; classes are {task['classes']}"
                )
            label = {"class": category["name"]}
        else:
            label = _keypoint_label(task, category, annotation, where)
        previous = labels.get(image_id)
        if previous is not None and previous[1] != label:
            raise InvalidLabel(
                f"{where}: image id {image_id!r} already has a different annotation "
                f"({previous[0]}); a project item carries one label"
            )
        labels[image_id] = (where, label)
    records = []
    for image_id, (where, label) in labels.items():
        image = images[image_id]
        image_where = f"{where} (image id {image_id!r})"
        name, sha = _key(image, image_where)
        size = None
        if isinstance(image.get("width"), int) and isinstance(image.get("height"), int):
            size = (image["width"], image["height"])
        records.append(LabelRecord(image_where, name, sha, label, size))
    return records
