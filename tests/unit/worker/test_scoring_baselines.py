"""Baseline scores the worker writes on request (``training.score_strategies``)."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from worker.errors import JobDataError
from worker.training import scoring
from worker.training.config import job_config
from xmodel_core.model import ModelConfig, XModel
from xmodel_core.predict import collect_view_predictions
from xmodel_core.tasks import ClassificationTask, RegressionTask


def test_score_strategies_parsed_and_checked(job_args: dict[str, Any]) -> None:
    assert job_config({}, **job_args).score_strategies == ()
    cfg = job_config(
        {"score_strategies": ["xmodel", "mc_dropout", "entropy", "mc_dropout"]}, **job_args
    )
    assert cfg.score_strategies == ("mc_dropout", "entropy")
    for bad in (["bald"], "mc_dropout", [3]):
        with pytest.raises(JobDataError, match="score_strategies"):
            job_config({"score_strategies": bad}, **job_args)
    with pytest.raises(JobDataError, match="entropy"):
        scoring.check_strategies(("entropy",), RegressionTask(["age"]))
    scoring.check_strategies(("mc_dropout",), RegressionTask(["age"]))


@pytest.mark.parametrize("name", ["mc_dropout", "entropy"])
def test_baseline_scores_shape_and_determinism(name: str) -> None:
    torch.manual_seed(0)
    task = ClassificationTask(["a", "b", "c"])
    model = XModel(
        ModelConfig(backbone="small_cnn", output_dim=3, image_size=16, pretrained=False)
    ).eval()
    images = torch.randint(0, 256, (10, 3, 16, 16), dtype=torch.uint8)
    preds, features = collect_view_predictions(model, task, images, 2, seed=1, batch_size=4)
    first = scoring._baseline_scores(name, model, task, images, features, preds, seed=3, batch=4)
    again = scoring._baseline_scores(name, model, task, images, features, preds, seed=3, batch=4)
    assert first.shape == (10,) and torch.isfinite(first).all() and (first >= 0).all()
    assert torch.equal(first, again)
    if name == "mc_dropout":
        assert first.max() > 0  # dropout draws differ
        # the cached mode: the same draws from precomputed features
        cached = scoring._baseline_scores(name, model, task, None, features, preds, seed=3, batch=4)
        assert cached.shape == (10,) and torch.isfinite(cached).all() and cached.max() > 0
