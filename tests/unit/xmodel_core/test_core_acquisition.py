"""Acquisition: each scorer ranks constructed cases in the known order; clustering."""

from __future__ import annotations

import pytest
import torch

from xmodel_contracts.names import ScoreStrategy
from xmodel_core.acquisition import SCORERS, ScoringInputs, get_scorer, kmeans
from xmodel_core.tasks import ClassificationTask, KeypointTask, RegressionTask

REGRESSION = RegressionTask(targets=["a", "b"], mean=[0.0, 0.0], std=[1.0, 1.0])
CLASSES = ClassificationTask(classes=["x", "y", "z"])


def _ranking(scores: torch.Tensor) -> list[int]:
    return torch.sort(scores, descending=True, stable=True).indices.tolist()


def test_registry_lists_every_strategy_and_rejects_unknown_names():
    assert set(SCORERS) == set(ScoreStrategy), "a scorer for every score the worker writes"
    assert all(get_scorer(name).name == name for name in SCORERS)
    with pytest.raises(ValueError, match="unknown acquisition strategy"):
        get_scorer("bald")


def test_xmodel_scorer_is_the_variance_across_heads_and_views():
    spread = torch.tensor([0.1, 0.4, 0.0, 0.2])
    sign = torch.tensor([1.0, -1.0, 1.0, -1.0]).view(2, 2, 1, 1)  # [V, H] pattern, mean 0
    preds = 0.5 + sign * spread.view(1, 1, 4, 1).expand(2, 2, 4, 2)  # [V=2, H=2, N=4, D=2]
    scores = get_scorer("xmodel").score(ScoringInputs(REGRESSION, 4, view_predictions=preds))
    torch.testing.assert_close(scores, spread**2)
    assert _ranking(scores) == [1, 3, 0, 2]


def test_xmodel_scorer_counts_disagreement_between_views_as_well_as_heads():
    preds = torch.zeros(3, 2, 2, 1)
    preds[1, :, 0] = 1.0  # item 0: heads agree within a view, but one view moves both heads
    preds[:, 1, 1] = 0.3  # item 1: head 1 always differs a little
    scores = get_scorer("xmodel").score(ScoringInputs(REGRESSION, 2, view_predictions=preds))
    assert _ranking(scores) == [0, 1] and scores.min() > 0


def test_xmodel_scorer_needs_two_predictions_per_item():
    with pytest.raises(ValueError, match="at least two"):
        get_scorer("xmodel").score(
            ScoringInputs(REGRESSION, 3, view_predictions=torch.zeros(1, 1, 3, 2))
        )


def test_mc_dropout_scorer_is_the_variance_across_samples():
    spread = torch.tensor([0.3, 0.05, 0.2])
    sign = torch.tensor([1.0, -1.0, 1.0, -1.0]).view(4, 1, 1)
    samples = sign * spread.view(1, 3, 1).expand(4, 3, 2)  # [T=4, N=3, D=2]
    scores = get_scorer("mc_dropout").score(
        ScoringInputs(REGRESSION, 3, dropout_predictions=samples)
    )
    torch.testing.assert_close(scores, spread**2)
    assert _ranking(scores) == [0, 2, 1]


# item A = mean of two heads [0.6, 0.4, 0] / [0.4, 0.6, 0]; entropy and margin disagree on A vs B
HEAD_1 = torch.tensor([[0.6, 0.4, 0.0], [0.4, 0.3, 0.3], [0.8, 0.1, 0.1], [1.0, 0.0, 0.0]])
HEAD_2 = torch.tensor([[0.4, 0.6, 0.0], [0.4, 0.3, 0.3], [0.8, 0.1, 0.1], [1.0, 0.0, 0.0]])
PROBS = torch.stack([HEAD_1, HEAD_2])  # [H, N, C]


def test_entropy_ranks_the_flattest_mean_distribution_first():
    scores = get_scorer("entropy").score(ScoringInputs(CLASSES, 4, predictions=PROBS))
    assert _ranking(scores) == [1, 0, 2, 3]
    torch.testing.assert_close(scores[0], torch.log(torch.tensor(2.0)))
    assert scores[3] == 0


@pytest.mark.parametrize("task", [REGRESSION, KeypointTask(points=["p"])])
def test_entropy_refuses_other_tasks(task):
    with pytest.raises(ValueError, match="class probabilities"):
        get_scorer("entropy").score(
            ScoringInputs(task, 4, predictions=torch.rand(2, 4, task.output_dim))
        )


def test_kmeans_recovers_well_separated_blobs():
    gen = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    blob = torch.arange(3).repeat_interleave(30)
    features = centres[blob] + 0.5 * torch.randn(90, 2, generator=gen)
    ids = kmeans(features, 3, seed=0, chunk=16)
    assert ids.shape == (90,) and ids.dtype == torch.long
    for b in range(3):
        assert ids[blob == b].unique().numel() == 1
    assert ids.unique().numel() == 3
    assert torch.equal(kmeans(features, 3, seed=0), ids)
    assert kmeans(features[:2], 5).unique().numel() == 2, "never more clusters than items"
