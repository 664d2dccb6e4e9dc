"""The product's training defaults per task kind, chosen from measurements (docs/RESULTS.md §9).

A job's settings are, from weakest to strongest: these defaults for the project's task kind,
the project's own ``training`` settings, the job request's overrides. Every key here is a key
of :class:`xmodel_contracts.training_settings.TrainingSettings`, so a project can override any
of them. The image size is a project attribute fixed at creation; a project that does not give
one gets ``default_image_size(kind)``.

Every kind trains MobileNetV2 (ImageNet) with its first ``FROZEN_STAGES`` stages frozen, so the
worker computes those stages once per image and view and caches them (``trunk_cache``) instead of
at every step. The method per kind is the one that won on validation at 250 labels over three
tuning seeds on the product's own training path:

- keypoints: the X-model (kites, 96 px: mean point error 3.73 px against 3.95 supervised,
  better on every seed);
- classification: supervised training (Fashion-MNIST, 96 px: 16.7 % error against 17.3 % for
  the X-model, supervised better on every seed);
- regression: supervised training at 128 px (UTKFace age: 8.43 years MAE against 8.75 for the
  X-model at 128 px; at 96 px both are weaker, 9.81 supervised against 9.71 X-model).

Every kind trains at a learning rate of 3e-3 (the trainer's own default is 1e-3; a pretrained
extractor moves at 0.3x either way): on the same validation protocol it lowered the error of
every method on every dataset tried (kites 3.73 -> 2.94 px with the X-model and 3.95 -> 3.17
supervised; UTKFace 8.37 -> 7.96 years; Fashion-MNIST 16.7 -> 16.0 %), and the winner per kind
stayed the same (Fashion-MNIST at 3e-3: supervised 16.0 %, X-model 16.1 %).

Suggestions rank by the disagreement of the heads and views whichever method trained them.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any, Literal

TaskKind = Literal["classification", "regression", "keypoints"]
TASK_KINDS: tuple[TaskKind, ...] = ("classification", "regression", "keypoints")

DEFAULT_BACKBONE = "mobilenet_v2"

_SHARED: dict[str, Any] = {"steps": 500, "lr": 3e-3}
# per backbone: how many leading stages stay frozen (and so are cached)
FROZEN_STAGES = MappingProxyType({"mobilenet_v2": 14})

PRODUCT_DEFAULTS: MappingProxyType[str, MappingProxyType[str, Any]] = MappingProxyType(
    {
        "classification": MappingProxyType({**_SHARED, "method": "supervised"}),
        "regression": MappingProxyType({**_SHARED, "method": "supervised"}),
        "keypoints": MappingProxyType({**_SHARED, "method": "xmodel"}),
    }
)
# pixels per side of the square training image, per task kind
IMAGE_SIZES = MappingProxyType({"classification": 96, "regression": 128, "keypoints": 96})


def _check_kind(kind: str) -> None:
    if kind not in PRODUCT_DEFAULTS:
        raise ValueError(f"unknown task kind {kind!r}; choose one of {list(TASK_KINDS)}")


def product_defaults(kind: str, backbone: str = DEFAULT_BACKBONE) -> dict[str, Any]:
    """A fresh copy of the defaults for task kind ``kind`` on ``backbone`` (``ValueError`` for
    an unknown kind). Backbones without a measured frozen depth train every stage; the trunk
    cache serves whenever some stages are frozen (by default or by the project)."""
    _check_kind(kind)
    frozen = FROZEN_STAGES.get(backbone, 0)
    return {**PRODUCT_DEFAULTS[kind], "freeze_blocks": frozen, "trunk_cache": True}


def effective_params(kind: str, backbone: str, params: dict[str, Any]) -> dict[str, Any]:
    """What a job of a ``kind`` project on ``backbone`` runs with: the product's defaults for
    the kind, overridden by ``params`` (the project's settings and the request's)."""
    return {**product_defaults(kind, backbone), **params}


def caches_trunk(kind: str, backbone: str, training: dict[str, Any]) -> bool:
    """Whether jobs of a ``kind`` project on ``backbone`` with its ``training`` settings train on
    cached trunk views (some stages frozen, the cache on): only then are views worth computing
    ahead of a job. False for settings that name an unknown kind."""
    try:
        params = effective_params(kind, backbone, training)
        return bool(params.get("trunk_cache", True)) and int(params.get("freeze_blocks") or 0) > 0
    except (TypeError, ValueError):  # the job will say what is wrong with such settings
        return False


def default_image_size(kind: str) -> int:
    """The image size a new project of task kind ``kind`` gets when it names none."""
    _check_kind(kind)
    return int(IMAGE_SIZES[kind])
