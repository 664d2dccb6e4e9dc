"""Check a label against the project's task and return its canonical JSON form.

Shapes (documented in the OpenAPI of ``PUT /items/{id}/label``):

* classification: ``{"class": "cat"}``
* regression: ``{"values": {"age": 31.0}}`` (one finite number per named target, within its
  range when the task gives one and within +-1e12 always; a list in target order is accepted
  too)
* keypoints: ``{"points": [[x, y], ...]}`` or ``[[x, y, v], ...]`` with ``v`` in {0, 1, 2},
  one per named point in task order, in pixels of the upright image (0 <= x <= width,
  0 <= y <= height, for invisible points too: send ``[0, 0, 0]`` when the place is unknown).

Every number is checked before it is converted, so no input (a 400-digit integer, ``NaN``,
``1e308``) can overflow a float or be stored as a value no model could learn from.
"""

from __future__ import annotations

import json
import math
from typing import Any

from server.errors import InvalidLabel

# Larger magnitudes are no measurement anyone labels, and squared in a loss they overflow.
MAX_ABS_VALUE = 1e12


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidLabel(f"{what} must be a number, got {_shown(value)}")
    if isinstance(value, int) and abs(value) > MAX_ABS_VALUE:  # before float(): no OverflowError
        raise InvalidLabel(
            f"{what} must be a finite number within +-{MAX_ABS_VALUE:g}, got {_shown(value)}"
        )
    number = float(value)
    if not math.isfinite(number) or abs(number) > MAX_ABS_VALUE:
        raise InvalidLabel(
            f"{what} must be a finite number within +-{MAX_ABS_VALUE:g}, got {_shown(value)}"
        )
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
            raise InvalidLabel(
                f"expected {len(targets)} values for targets {targets}, got {len(raw)}"
            )
        raw = dict(zip(targets, raw, strict=True))
    if not isinstance(raw, dict):
        raise InvalidLabel('regression labels look like {"values": {"<target>": <number>, ...}}')
    missing, extra = set(targets) - set(raw), set(raw) - set(targets)
    if missing or extra:
        raise InvalidLabel(
            f"values must name exactly the targets {targets}"
            f" (missing {sorted(missing)}, unknown {sorted(extra)})"
        )
    ranges = task.get("ranges") or {}
    values: dict[str, float] = {}
    for name in targets:
        value = _number(raw[name], f"value of {name!r}")
        if name in ranges:
            low, high = ranges[name]
            if not low <= value <= high:
                raise InvalidLabel(
                    f"value of {name!r} is {value}, outside its range [{low}, {high}]"
                )
        values[name] = value
    return {"values": values}


def _keypoints(
    task: dict[str, Any], label: dict[str, Any], width: int, height: int
) -> dict[str, Any]:
    names: list[str] = task["points"]
    points = label.get("points")
    if not isinstance(points, list):
        raise InvalidLabel('keypoint labels look like {"points": [[x, y], ...]} in image pixels')
    if len(points) != len(names):
        raise InvalidLabel(
            f"expected {len(names)} keypoints ({', '.join(names)}), got {len(points)}"
        )
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
        if not (0 <= x <= width and 0 <= y <= height):
            hint = "; send [0, 0, 0] for a point whose place is unknown" if visibility == 0 else ""
            raise InvalidLabel(
                f"point {name!r} at ({x}, {y}) lies outside the {width}x{height} image{hint}"
            )
        canonical.append([x, y, visibility])
    return {"points": canonical}


def validate_label(task: dict[str, Any], label: Any, *, width: int, height: int) -> dict[str, Any]:
    """Return the canonical label or raise :class:`InvalidLabel` with a readable reason."""
    if not isinstance(label, dict):
        raise InvalidLabel('a label must be a JSON object, e.g. {"class": "cat"}')
    kind = task["kind"]
    if kind == "classification":
        return _classification(task, label)
    if kind == "regression":
        return _regression(task, label)
    if kind == "keypoints":
        return _keypoints(task, label, width, height)
    raise InvalidLabel(f"unknown task kind {kind!r}")


def _json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:  # ValueError: also a >4300-digit integer
        raise InvalidLabel(f"{what} {_shown(text)} is not valid JSON ({exc})") from exc


def parse_label_text(task: dict[str, Any], text: str) -> Any:
    """Turn a ``labels.csv`` cell into a label object (class name, number, or JSON).
    Raises :class:`InvalidLabel` for a cell that cannot be read; the label itself is checked
    later by :func:`validate_label`."""
    text = text.strip()
    if text.startswith("{"):
        return _json(text, "label")
    kind = task["kind"]
    if kind == "classification":
        return {"class": text}
    if kind == "regression":
        if text.startswith("["):
            return {"values": _json(text, "values")}
        try:
            return {"values": [float(text)]}
        except ValueError as exc:
            raise InvalidLabel(f"label {_shown(text)} is not a number") from exc
    if kind == "keypoints":
        return {"points": _json(text, "keypoints")}
    raise InvalidLabel(f"unknown task kind {kind!r}")
