"""The product's per-task training defaults: every kind has them, every key is a setting the
API accepts and the worker runs, and a project's own settings win over them."""

from __future__ import annotations

from typing import Any

import pytest

from worker.training.config import job_config
from xmodel_contracts.training_defaults import TASK_KINDS, default_image_size, product_defaults
from xmodel_contracts.training_settings import TrainingSettings

ARGS: dict[str, Any] = {
    "backbone": "mobilenet_v2",
    "image_size": 32,
    "output_dim": 1,
    "device": "cpu",
    "checkpoint_every": 0,
    "score_views": 4,
}


@pytest.mark.parametrize("kind", TASK_KINDS)
def test_defaults_are_valid_settings_and_build_a_cached_job(kind: str) -> None:
    defaults = product_defaults(kind)
    TrainingSettings.model_validate(defaults)  # the API would accept them as a project's settings
    config = job_config(defaults, **ARGS)
    assert config.model.freeze_blocks == 14 and config.uses_trunk_cache
    assert config.train.method == defaults["method"]
    assert config.train.lr == defaults["lr"] == 3e-3  # measured per kind (docs/RESULTS.md §9)


def test_backbones_without_a_measured_depth_train_every_stage() -> None:
    config = job_config(
        product_defaults("regression", "small_cnn"), **{**ARGS, "backbone": "small_cnn"}
    )
    assert config.model.freeze_blocks == 0 and not config.uses_trunk_cache


def test_project_settings_win_over_the_defaults() -> None:
    params = {
        **product_defaults("keypoints"),
        "method": "supervised",
        "trunk_cache": False,
        "warm_start": False,
    }
    config = job_config(params, **ARGS)
    assert (
        config.train.method == "supervised"
        and not config.uses_trunk_cache
        and not config.warm_start
    )
    assert config.strong_views == 3  # scoring views: plain + 3 strong = the default score_views


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown task kind"):
        product_defaults("segmentation")


def test_each_kind_has_an_image_size_and_its_measured_method() -> None:
    assert {kind: default_image_size(kind) for kind in TASK_KINDS} == {
        "classification": 96,
        "regression": 128,
        "keypoints": 96,
    }
    assert {kind: product_defaults(kind)["method"] for kind in TASK_KINDS} == {
        "classification": "supervised",
        "regression": "supervised",
        "keypoints": "xmodel",
    }
    with pytest.raises(ValueError, match="unknown task kind"):
        default_image_size("segmentation")
