"""Labels and predictions between Label Studio's result format and ours.

Label Studio keeps keypoints as percentages of the image's width and height (``x``, ``y`` in
[0, 100]); we keep pixels of the upright image. ``x_px = x_pct / 100 * width`` and back, with
the item's own width and height, so non-square images convert exactly.

Result entries (one per control tag, or one per point for keypoints)::

    {"from_name": "choice", "to_name": "image", "type": "choices", "value": {"choices": ["cat"]}}
    {"from_name": "age", "to_name": "image", "type": "number", "value": {"number": 31.0}}
    {"from_name": "kp", "to_name": "image", "type": "keypointlabels",
     "original_width": 640, "original_height": 480, "image_rotation": 0,
     "value": {"x": 12.5, "y": 40.0, "width": 0.6, "keypointlabels": ["left_eye"]}}
"""

from __future__ import annotations

import math
from typing import Any

from label_studio_bridge.labelling_config import TaskMapping

# Label Studio draws a keypoint as a dot this wide (percent of the image width).
POINT_WIDTH_PCT = 0.6


class UnusableAnnotation(ValueError):
    """An annotation that cannot become one of our labels; the message says why."""


def pct_to_px(value_pct: float, size_px: int) -> float:
    """A Label Studio percentage of ``size_px`` in pixels, kept inside [0, size_px]."""
    return min(max(float(value_pct) / 100.0 * size_px, 0.0), float(size_px))


def px_to_pct(value_px: float, size_px: int) -> float:
    """Pixels as a percentage of ``size_px``, kept inside [0, 100]."""
    return min(max(float(value_px) / size_px * 100.0, 0.0), 100.0)


def prediction_result(
    mapping: TaskMapping, prediction: dict[str, Any], width: int, height: int
) -> list[dict[str, Any]]:
    """Our model's mean prediction (``GET /items/{id}/prediction``'s ``prediction``) as
    Label Studio result entries. ``width``/``height``: the item's pixels."""
    base = {"to_name": mapping.image_name}
    if mapping.kind == "classification":
        return [
            {
                **base,
                "from_name": mapping.control.name,
                "type": "choices",
                "value": {"choices": [prediction["class"]]},
            }
        ]
    if mapping.kind == "regression":
        values = prediction["values"]
        return [
            {
                **base,
                "from_name": control.name,
                "type": "number",
                "value": {"number": float(values[control.name])},
            }
            for control in mapping.controls
        ]
    entries = []
    for index, name in enumerate(mapping.task["points"]):
        x, y = prediction["points"][name][:2]
        entries.append(
            {
                **base,
                "id": f"p{index}",
                "from_name": mapping.control.name,
                "type": "keypointlabels",
                "original_width": width,
                "original_height": height,
                "image_rotation": 0,
                "value": {
                    "x": px_to_pct(x, width),
                    "y": px_to_pct(y, height),
                    "width": POINT_WIDTH_PCT,
                    "keypointlabels": [name],
                },
            }
        )
    return entries


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise UnusableAnnotation(f"{what} is not a finite number: {value!r}")
    return float(value)


def annotation_label(
    mapping: TaskMapping, result: list[dict[str, Any]], width: int, height: int
) -> dict[str, Any]:
    """One Label Studio annotation's ``result`` as our label (``PUT /items/{id}/label``'s
    body). Keypoints: points the annotation does not place are sent as absent ``[0, 0, 0]``."""
    names = {c.name for c in mapping.controls}
    mine = [r for r in result if r.get("from_name") in names]
    if mapping.kind == "classification":
        for entry in mine:
            choices = entry.get("value", {}).get("choices") or []
            if len(choices) == 1:
                return {"class": choices[0]}
            if choices:
                raise UnusableAnnotation(f"{len(choices)} choices selected; expected one")
        raise UnusableAnnotation(f"no choice in {mapping.control.name!r}")
    if mapping.kind == "regression":
        values: dict[str, float] = {}
        for entry in mine:
            number = entry.get("value", {}).get("number")
            if number is not None:
                values[entry["from_name"]] = _number(number, f"number of {entry['from_name']!r}")
        missing = [c.name for c in mapping.controls if c.name not in values]
        if missing:
            raise UnusableAnnotation(f"no number for {', '.join(missing)}")
        return {"values": values}
    points: dict[str, list[float]] = {}
    for entry in mine:
        value = entry.get("value", {})
        labels = value.get("keypointlabels") or []
        if entry.get("type") != "keypointlabels" or len(labels) != 1:
            continue
        name = labels[0]
        if name not in mapping.task["points"]:
            raise UnusableAnnotation(f"unknown point {name!r}")
        if name in points:
            raise UnusableAnnotation(f"point {name!r} placed twice; one point per label")
        x = pct_to_px(_number(value.get("x"), f"x of {name!r}"), width)
        y = pct_to_px(_number(value.get("y"), f"y of {name!r}"), height)
        points[name] = [x, y, 2]
    if not points:
        raise UnusableAnnotation("no keypoint placed")
    return {"points": [points.get(name, [0.0, 0.0, 0]) for name in mapping.task["points"]]}
