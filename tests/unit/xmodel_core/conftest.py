"""Tiny seeded models and images for the core library's unit tests (CPU, 16 px, small_cnn).

Factories are handed out as fixtures (not imported from this file), so the tests work whatever
pytest import mode or neighbouring conftest is in use.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest
import torch

from xmodel_core.model import ModelConfig, XModel
from xmodel_core.tasks import ClassificationTask, KeypointTask, RegressionTask, TaskSpec
from xmodel_core.trainer import TrainConfig

SIZE = 16

# Tiny tensors gain nothing from intra-op threads, and on a shared 2-core machine spinning
# threads make every test many times slower.
torch.set_num_threads(1)


def build_task(kind: str) -> TaskSpec:
    """A small task of each kind; regression is fitted and has a range (exercises the clamp)."""
    if kind == "classification":
        return ClassificationTask(classes=["cat", "dog", "bird"])
    if kind == "regression":
        task = RegressionTask(targets=["age", "height"], ranges=[(0.0, 100.0), (0.0, 2.5)])
        task.fit(torch.tensor([[10.0, 1.2], [40.0, 1.7], [70.0, 1.9], [25.0, 1.5]]))
        return task
    if kind == "keypoints":
        return KeypointTask(
            points=["left_eye", "right_eye", "nose"], flip_pairs=[("left_eye", "right_eye")]
        )
    raise ValueError(kind)


def build_model(task: TaskSpec, seed: int = 0, num_heads: int = 2, dropout: float = 0.3) -> XModel:
    torch.manual_seed(seed)
    config = ModelConfig(
        backbone="small_cnn",
        output_dim=task.output_dim,
        num_heads=num_heads,
        head_hidden=16,
        dropout=dropout,
        image_size=SIZE,
        pretrained=False,
    )
    return XModel(config)


def build_images(n: int, seed: int = 0, size: int = SIZE) -> torch.Tensor:
    """Seeded uint8 images ``[n, 3, size, size]``."""
    return torch.randint(
        0, 256, (n, 3, size, size), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8
    )


def build_train_config(method: str, steps: int, **overrides: Any) -> TrainConfig:
    """A CPU run of ``steps`` steps on batches of 4 labelled and 4 unlabelled images."""
    config = TrainConfig(
        method=method, steps=steps, batch_size=4, unlabelled_batch_size=4, device="cpu"
    )
    return dataclasses.replace(config, **overrides)


@pytest.fixture(params=["classification", "regression", "keypoints"])
def task(request: pytest.FixtureRequest) -> TaskSpec:
    """Each task kind in turn."""
    return build_task(request.param)


@pytest.fixture
def make_task() -> Callable[[str], TaskSpec]:
    return build_task


@pytest.fixture
def make_model() -> Callable[..., XModel]:
    return build_model


@pytest.fixture
def make_images() -> Callable[..., torch.Tensor]:
    return build_images


@pytest.fixture
def make_train_config() -> Callable[..., TrainConfig]:
    return build_train_config
