"""The product's training defaults per task kind, chosen from measurements (docs/RESULTS.md).

A job's settings are, from weakest to strongest: these defaults for the project's task kind,
the project's own ``training`` settings, the job request's overrides. Every key here is a key
of :class:`xmodel_contracts.training_settings.TrainingSettings`, so a project can override any
of them.

The operating point is shared by every kind: MobileNetV2 (ImageNet) at ``DEFAULT_IMAGE_SIZE``
with its first ``freeze_blocks`` stages frozen, so that the worker computes the frozen stages
once per image and view and caches them (``trunk_cache``) instead of at every step.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any, Literal

TaskKind = Literal["classification", "regression", "keypoints"]
TASK_KINDS: tuple[TaskKind, ...] = ("classification", "regression", "keypoints")

DEFAULT_IMAGE_SIZE = 96
DEFAULT_BACKBONE = "mobilenet_v2"

_SHARED: dict[str, Any] = {"steps": 500}
# per backbone: how many leading stages stay frozen (and so are cached)
FROZEN_STAGES = MappingProxyType({"mobilenet_v2": 14})

PRODUCT_DEFAULTS: MappingProxyType[str, MappingProxyType[str, Any]] = MappingProxyType(
    {
        "classification": MappingProxyType({**_SHARED, "method": "xmodel"}),
        "regression": MappingProxyType({**_SHARED, "method": "xmodel"}),
        "keypoints": MappingProxyType({**_SHARED, "method": "xmodel"}),
    }
)


def product_defaults(kind: str, backbone: str = DEFAULT_BACKBONE) -> dict[str, Any]:
    """A fresh copy of the defaults for task kind ``kind`` on ``backbone`` (``ValueError`` for
    an unknown kind). Backbones without a measured frozen depth train every stage; the trunk
    cache serves whenever some stages are frozen (by default or by the project)."""
    if kind not in PRODUCT_DEFAULTS:
        raise ValueError(f"unknown task kind {kind!r}; choose one of {list(TASK_KINDS)}")
    frozen = FROZEN_STAGES.get(backbone, 0)
    return {**PRODUCT_DEFAULTS[kind], "freeze_blocks": frozen, "trunk_cache": True}
