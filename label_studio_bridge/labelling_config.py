"""Map a Label Studio labelling config (XML) to one of our task specifications.

Supported (exactly one image, one kind of control tag):

* ``<Choices>`` (single choice) over an ``<Image>`` → ``{"kind": "classification", "classes"}``
  (a ``<Choice>``'s ``alias`` when it has one, else its ``value``: what Label Studio stores);
* one or more ``<Number>`` tags → ``{"kind": "regression", "targets", "ranges"}`` (a target per
  tag, named by the tag; ``min``/``max`` become the target's known range when both are given);
* ``<KeyPointLabels>`` → ``{"kind": "keypoints", "points"}``, one point per ``<Label>``.

Anything else raises :class:`UnsupportedConfig` naming the tag, so Label Studio shows the user
which part of their config the bridge cannot serve.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any

# Layout and text-only tags that carry no labels and are ignored.
LAYOUT_TAGS = {"View", "Header", "Style", "Collapse", "Panel", "Filter", "Choice", "Label"}
CONTROL_KINDS = {"Choices": "classification", "Number": "regression", "KeyPointLabels": "keypoints"}
SUPPORTED = "Choices (classification), Number (regression), KeyPointLabels (keypoints) on one Image"


class UnsupportedConfig(ValueError):
    """The labelling config cannot be mapped; the message names the tag and says why."""


@dataclass(frozen=True)
class Control:
    """One control tag: its ``name`` (Label Studio's ``from_name``) and what it labels."""

    tag: str
    name: str
    to_name: str


@dataclass(frozen=True)
class TaskMapping:
    """How one Label Studio project maps onto one of ours.

    ``image_name``/``image_key``: the ``<Image>`` tag's name (``to_name``) and the task data
    key its ``value="$key"`` reads. ``controls``: the control tags in config order (one for
    classification and keypoints, one per target for regression). ``task``: our task spec."""

    kind: str
    task: dict[str, Any]
    image_name: str
    image_key: str
    controls: tuple[Control, ...] = field(default_factory=tuple)

    @property
    def control(self) -> Control:
        return self.controls[0]


def _describe(element: ET.Element) -> str:
    name = element.get("name")
    return f"<{element.tag} name={name!r}>" if name else f"<{element.tag}>"


def _unsupported(element: ET.Element, why: str) -> UnsupportedConfig:
    return UnsupportedConfig(
        f"unsupported tag {_describe(element)} in the labelling config: {why}; "
        f"the bridge maps {SUPPORTED}"
    )


def _float(element: ET.Element, attribute: str) -> float | None:
    raw = element.get(attribute)
    if raw is None or raw.strip() == "":
        return None
    try:
        value = float(raw)
    except ValueError as exc:
        raise UnsupportedConfig(
            f"{_describe(element)}: {attribute}={raw!r} is not a number"
        ) from exc
    return value if math.isfinite(value) else None


def _names(element: ET.Element, child: str) -> list[str]:
    names = [c.get("alias") or c.get("value") or "" for c in element.iter(child)]
    if any(not n for n in names):
        raise UnsupportedConfig(f"{_describe(element)}: every <{child}> needs a value")
    if len(set(names)) != len(names):
        raise UnsupportedConfig(f"{_describe(element)}: <{child}> values must be unique")
    return names


def parse_config(xml: str) -> TaskMapping:
    """Parse ``xml`` (a Label Studio labelling config) into a :class:`TaskMapping`."""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as exc:
        raise UnsupportedConfig(f"the labelling config is not valid XML: {exc}") from exc
    images: list[ET.Element] = []
    controls: list[ET.Element] = []
    for element in root.iter():
        if element.tag == "Image":
            images.append(element)
        elif element.tag in CONTROL_KINDS:
            controls.append(element)
        elif element.tag not in LAYOUT_TAGS:
            raise _unsupported(element, "no task kind of ours matches it")
    if len(images) != 1:
        raise UnsupportedConfig(
            f"the labelling config has {len(images)} <Image> tags; the bridge needs exactly one"
        )
    image = images[0]
    value = image.get("value", "")
    if not value.startswith("$") or len(value) < 2:
        raise _unsupported(image, 'its value must name a task field, like value="$image"')
    if not controls:
        raise UnsupportedConfig(
            f"the labelling config has no control tag; the bridge maps {SUPPORTED}"
        )
    kinds = {CONTROL_KINDS[c.tag] for c in controls}
    if len(kinds) > 1:
        raise _unsupported(controls[-1], "one config may hold one kind of control tag only")
    image_name = image.get("name", "")
    for control in controls:
        if not control.get("name"):
            raise _unsupported(control, "it needs a name")
        if control.get("toName") != image_name:
            raise _unsupported(control, f"it must label the image (toName={image_name!r})")
        if control.get("perRegion") in ("true", "1"):
            raise _unsupported(control, "per-region controls are not a task of ours")
    kind = kinds.pop()
    found = tuple(Control(c.tag, c.get("name", ""), image_name) for c in controls)
    if kind == "classification":
        if len(controls) > 1:
            raise _unsupported(controls[1], "one Choices tag per config")
        choices = controls[0]
        if choices.get("choice", "single") not in ("single", "single-radio"):
            raise _unsupported(choices, "multiple choice is not single-label classification")
        classes = _names(choices, "Choice")
        if len(classes) < 2:
            raise _unsupported(choices, "it needs at least two <Choice> values")
        task: dict[str, Any] = {"kind": "classification", "classes": classes}
    elif kind == "regression":
        targets = [c.name for c in found]
        if len(set(targets)) != len(targets):
            raise UnsupportedConfig("<Number> tags must have different names")
        ranges = {}
        for element in controls:
            low, high = _float(element, "min"), _float(element, "max")
            if low is not None and high is not None and low < high:
                ranges[element.get("name", "")] = (low, high)
        task = {"kind": "regression", "targets": targets}
        if ranges:
            task["ranges"] = ranges
    else:
        if len(controls) > 1:
            raise _unsupported(controls[1], "one KeyPointLabels tag per config")
        points = _names(controls[0], "Label")
        if not points:
            raise _unsupported(controls[0], "it needs at least one <Label>")
        task = {"kind": "keypoints", "points": points}
    return TaskMapping(
        kind=kind, task=task, image_name=image_name, image_key=value[1:], controls=found
    )
