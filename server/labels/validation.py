"""Check a label against the project's task and return its canonical JSON form.

Shapes (documented in the OpenAPI of ``PUT /items/{id}/label``):

* classification: ``{"class": "cat"}``
* regression: ``{"values": {"age": 31.0}}`` (one finite number per named target; a list in
  target order is accepted too)
* keypoints: ``{"points": [[x, y], ...]}`` or ``[[x, y, v], ...]`` with ``v`` in {0, 1, 2},
  one per named point in task order, in pixels of the original image (0 <= x <= width).
"""

from __future__ import annotations

import json
import math
from typing import Any

from server.errors import InvalidLabel


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidLabel(f"{what} must be a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise InvalidLabel(f"{what} must be a finite number, got {value!r}")
    return number


def _classification(task: dict[str, Any], label: dict[str, Any]) -> dict[str, Any]:
    name = label.get("class")
    if not isinstance(name, str):
        raise InvalidLabel('classification labels look like {"class": "<class name>"}')
    if name not in task["classes"]:
        raise InvalidLabel(f"unknown class {name!r}; expected one of {task['classes']}")
    return {"class": name}


def _regression(task: dict[str, Any], label: dict[str, Any]) -> dict[str, Any]:
    targets: list[str] = task["targets"]
    raw = label.get("values")
    if isinstance(raw, list):
        if len(raw) != len(targets):
            raise InvalidLabel(f"expected {len(targets)} values for targets {targets}, got {len(raw)}")
        raw = dict(zip(targets, raw, strict=True))
    if not isinstance(raw, dict):
        raise InvalidLabel('regression labels look like {"values": {"<target>": <number>, ...}}')
    missing, extra = set(targets) - set(raw), set(raw) - set(targets)
    if missing or extra:
        raise InvalidLabel(f"values must name exactly the targets {targets}"
                           f" (missing {sorted(missing)}, unknown {sorted(extra)})")
    ranges = task.get("ranges") or {}
    values: dict[str, float] = {}
    for name in targets:
        value = _number(raw[name], f"value of {name!r}")
        if name in ranges:
            low, high = ranges[name]
            if not low <= value <= high:
                raise InvalidLabel(f"value of {name!r} is {value}, outside its range [{low}, {high}]")
        values[name] = value
    return {"values": values}


def _keypoints(task: dict[str, Any], label: dict[str, Any], width: int, height: int) -> dict[str, Any]:
    names: list[str] = task["points"]
    points = label.get("points")
    if not isinstance(points, list):
        raise InvalidLabel('keypoint labels look like {"points": [[x, y], ...]} in image pixels')
    if len(points) != len(names):
        raise InvalidLabel(f"expected {len(names)} keypoints ({', '.join(names)}), got {len(points)}")
    canonical = []
    for name, point in zip(names, points, strict=True):
        if not isinstance(point, list) or len(point) not in (2, 3):
            raise InvalidLabel(f"point {name!r} must be [x, y] or [x, y, visibility]")
        x = _number(point[0], f"x of {name!r}")
        y = _number(point[1], f"y of {name!r}")
        visibility = 2
        if len(point) == 3:
            if point[2] not in (0, 1, 2) or isinstance(point[2], bool):
                raise InvalidLabel(f"visibility of {name!r} must be 0, 1 or 2")
            visibility = int(point[2])
        if visibility and not (0 <= x <= width and 0 <= y <= height):
            raise InvalidLabel(f"point {name!r} at ({x}, {y}) lies outside the {width}x{height} image")
        canonical.append([x, y, visibility])
    return {"points": canonical}


def validate_label(task: dict[str, Any], label: Any, *, width: int, height: int) -> dict[str, Any]:
    """Return the canonical label or raise :class:`InvalidLabel` with a readable reason."""
    if not isinstance(label, dict):
        raise InvalidLabel("a label must be a JSON object, e.g. {\"class\": \"cat\"}")
    kind = task["kind"]
    if kind == "classification":
        return _classification(task, label)
    if kind == "regression":
        return _regression(task, label)
    if kind == "keypoints":
        return _keypoints(task, label, width, height)
    raise InvalidLabel(f"unknown task kind {kind!r}")


def parse_label_text(task: dict[str, Any], text: str) -> Any:
    """Turn a ``labels.csv`` cell into a label object (class name, number, or JSON)."""
    text = text.strip()
    if text.startswith("{"):
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidLabel(f"label {text!r} is not valid JSON") from exc
    kind = task["kind"]
    if kind == "classification":
        return {"class": text}
    if kind == "regression":
        if text.startswith("["):
            return {"values": json.loads(text)}
        try:
            return {"values": [float(text)]}
        except ValueError as exc:
            raise InvalidLabel(f"label {text!r} is not a number") from exc
    if kind == "keypoints":
        try:
            return {"points": json.loads(text)}
        except json.JSONDecodeError as exc:
            raise InvalidLabel(f"keypoints {text!r} must be a JSON list of [x, y]") from exc
    raise InvalidLabel(f"unknown task kind {kind!r}")
