"""Batched inference for scoring: plain predictions, augmented views, MC-dropout samples.

Everything is returned in the task's comparison space (``tasks.py``) and on the CPU, one batch
of inputs on the device at a time, so a large pool is scored with bounded memory. Inputs are
uint8 images ``[N, 3, S, S]`` as stored by the worker.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from .augment import WEAK, AugmentConfig, augment
from .data import to_float
from .model import XModel
from .tasks import TaskSpec
from .trainer import predictions_in_original_frame
from .trunk_cache import CachedViews, TopFn


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (CPU for a parameter-less module)."""
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


@contextmanager
def eval_mode(model: nn.Module, dropout_active: bool = False) -> Iterator[None]:
    """Eval mode for the duration of the block, the previous mode restored after it.

    ``dropout_active=True`` puts only the dropout modules back in train mode (MC dropout):
    batch norm keeps using, and does not update, its running statistics.
    """
    was_training = model.training
    model.eval()
    if dropout_active:
        for module in model.modules():
            if isinstance(module, nn.modules.dropout._DropoutNd):
                module.train()
    try:
        yield
    finally:
        model.train(was_training)


def _batches(n: int, batch_size: int) -> range:
    if batch_size < 1:
        raise ValueError("batch_size must be positive")
    return range(0, n, batch_size)


def _allow_flip(task: TaskSpec) -> bool:
    """Horizontal flips are safe unless keypoints have no left/right pairs (as in training)."""
    return task.kind != "keypoints" or task.flip_permutation is not None


@torch.no_grad()
def predict_comparison(
    model: XModel,
    task: TaskSpec,
    images: torch.Tensor,
    batch_size: int = 256,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Every head on the plain images, eval mode -> comparison space ``[H, N, D]`` (CPU, float32)."""
    device = torch.device(device) if device is not None else model_device(model)
    out = []
    with eval_mode(model):
        for start in _batches(len(images), batch_size):
            x = to_float(images[start : start + batch_size], device)
            out.append(task.to_comparison(model(x).float()).cpu())
    if not out:
        return torch.empty(model.config.num_heads, 0, task.output_dim)
    return torch.cat(out, dim=1)


@torch.no_grad()
def collect_view_predictions(
    model: XModel,
    task: TaskSpec,
    images: torch.Tensor,
    n_views: int,
    augment_cfg: AugmentConfig = WEAK,
    seed: int = 0,
    batch_size: int = 256,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Predictions of every head on ``n_views`` views of each image, in the original frame.

    Returns ``preds`` ``[V, H, N, D]`` in comparison space — view 0 is the un-augmented image,
    views 1.. are seeded ``augment_cfg`` warps whose keypoint predictions are mapped back — and
    ``features`` ``[N, F]`` of the extractor on the plain image (for diversity and clustering).
    The views depend on ``seed`` and ``batch_size`` (parameters are drawn batch by batch).
    """
    if n_views < 1:
        raise ValueError("n_views must be at least 1 (view 0 is the plain image)")
    device = torch.device(device) if device is not None else model_device(model)
    gen = torch.Generator().manual_seed(seed)
    preds, feats = [], []
    with eval_mode(model):
        for start in _batches(len(images), batch_size):
            x = to_float(images[start : start + batch_size], device)
            features = model.features(x)
            views = [task.to_comparison(model.heads_forward(features).float())]
            for _ in range(n_views - 1):
                view = augment(x, augment_cfg, gen, _allow_flip(task))
                views.append(predictions_in_original_frame(task, model(view.images), view))
            preds.append(torch.stack(views).cpu())
            feats.append(features.float().cpu())
    if not preds:
        empty = torch.empty(n_views, model.config.num_heads, 0, task.output_dim)
        return empty, torch.empty(0, 0)
    return torch.cat(preds, dim=2), torch.cat(feats)


@torch.no_grad()
def cached_view_predictions(
    model: XModel,
    task: TaskSpec,
    plain: CachedViews,
    others: CachedViews | None,
    top: TopFn | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`collect_view_predictions` on cached trunk views (``trunk_cache.py``): view 0 the
    plain image, views 1.. the ``others`` (keypoints mapped back). Returns ``preds``
    ``[V, H, N, D]`` and the plain view's ``features`` ``[N, F]``, on the CPU.

    Every view of the batch goes through the trainable stages in one pass: through ``top``
    (e.g. ``trunk_cache.onnx_top``) when given, else the model itself in eval mode."""
    device = model_device(model) if top is None else torch.device("cpu")
    index = torch.arange(len(plain))
    picked = [plain.pick(index, torch.zeros_like(index), device)]
    for v in range(others.views_per_image if others is not None else 0):
        assert others is not None
        picked.append(others.pick(index, torch.full_like(index, v), device))
    batch = torch.cat([view.images for view in picked])
    if top is not None:
        raw_all, features_all = top(batch)
    else:
        with eval_mode(model):
            features_all = model.features_from_trunk(batch)
            raw_all = model.heads_forward(features_all)
    raws = raw_all.float().split(len(index), dim=1)
    views = [task.to_comparison(raws[0])]
    views += [
        predictions_in_original_frame(task, raw, view)
        for raw, view in zip(raws[1:], picked[1:], strict=True)
    ]
    return torch.stack(views).cpu(), features_all[: len(index)].float().cpu()


@torch.no_grad()
def mc_dropout_on_features(
    model: XModel, task: TaskSpec, features: torch.Tensor, samples: int, seed: int = 0
) -> torch.Tensor:
    """MC dropout of the heads on precomputed features ``[N, F]`` -> ``[T, N, D]`` (mean over
    heads): what :func:`mc_dropout_predictions` does when the extractor has no dropout."""
    if samples < 1:
        raise ValueError("samples must be at least 1")
    device = model_device(model)
    cuda = [device] if device.type == "cuda" else []
    with eval_mode(model, dropout_active=True), torch.random.fork_rng(devices=cuda):
        torch.manual_seed(seed)
        draws = [
            task.to_comparison(model.heads_forward(features.to(device)).float()).mean(0)
            for _ in range(samples)
        ]
    return torch.stack(draws).cpu()


def _has_dropout(module: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.dropout._DropoutNd) for m in module.modules())


@torch.no_grad()
def mc_dropout_predictions(
    model: XModel,
    task: TaskSpec,
    images: torch.Tensor,
    samples: int,
    seed: int = 0,
    batch_size: int = 256,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """``samples`` stochastic forward passes with dropout on -> ``[T, N, D]`` (mean over heads).

    Batch norm stays in eval mode (Gal & Ghahramani 2016 sample the dropout masks only). The
    dropout masks come from a seeded RNG fork, so the caller's global RNG is left untouched.
    When the extractor has no dropout (every built-in backbone) its features are computed once
    per batch and only the heads are sampled ``samples`` times.
    """
    if samples < 1:
        raise ValueError("samples must be at least 1")
    device = torch.device(device) if device is not None else model_device(model)
    extractor_is_stochastic = _has_dropout(model.extractor)
    cuda = [device] if device.type == "cuda" else []
    out = []
    with eval_mode(model, dropout_active=True), torch.random.fork_rng(devices=cuda):
        torch.manual_seed(seed)
        for start in _batches(len(images), batch_size):
            x = to_float(images[start : start + batch_size], device)
            features = None if extractor_is_stochastic else model.features(x)
            draws = []
            for _ in range(samples):
                raw = model(x) if features is None else model.heads_forward(features)
                draws.append(task.to_comparison(raw.float()).mean(0))
            out.append(torch.stack(draws).cpu())
    if not out:
        return torch.empty(samples, 0, task.output_dim)
    return torch.cat(out, dim=1)


__all__ = [
    "cached_view_predictions",
    "collect_view_predictions",
    "mc_dropout_on_features",
    "eval_mode",
    "mc_dropout_predictions",
    "predict_comparison",
]
