"""Acquisition: each scorer ranks constructed cases in the known order; diversity; clustering."""

from __future__ import annotations

import pytest
import torch

from xmodel_core.acquisition import (
    SCORERS,
    ScoringInputs,
    cold_start,
    get_scorer,
    kcenter_greedy,
    kmeans,
    rank_pool,
    select_top,
)
from xmodel_core.tasks import ClassificationTask, KeypointTask, RegressionTask

REGRESSION = RegressionTask(targets=["a", "b"], mean=[0.0, 0.0], std=[1.0, 1.0])
CLASSES = ClassificationTask(classes=["x", "y", "z"])


def _ranking(scores: torch.Tensor) -> list[int]:
    return torch.sort(scores, descending=True, stable=True).indices.tolist()


def test_registry_lists_every_strategy_and_rejects_unknown_names():
    assert set(SCORERS) == {"xmodel", "random", "mc_dropout", "entropy", "margin"}
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


def test_margin_ranks_the_closest_two_classes_first():
    scores = get_scorer("margin").score(ScoringInputs(CLASSES, 4, predictions=PROBS))
    assert _ranking(scores) == [0, 1, 2, 3]
    torch.testing.assert_close(scores, torch.tensor([1.0, 0.9, 0.3, 0.0]))


@pytest.mark.parametrize("name", ["entropy", "margin"])
@pytest.mark.parametrize("task", [REGRESSION, KeypointTask(points=["p"])])
def test_classification_scorers_refuse_other_tasks(name, task):
    with pytest.raises(ValueError, match="class probabilities"):
        get_scorer(name).score(
            ScoringInputs(task, 4, predictions=torch.rand(2, 4, task.output_dim))
        )


def test_random_scorer_is_seeded():
    random = get_scorer("random")
    first = random.score(ScoringInputs(REGRESSION, 50, seed=1))
    assert first.shape == (50,)
    assert torch.equal(first, random.score(ScoringInputs(REGRESSION, 50, seed=1)))
    assert not torch.equal(first, random.score(ScoringInputs(REGRESSION, 50, seed=2)))


def _duplicates_and_spread() -> tuple[torch.Tensor, torch.Tensor]:
    """8 near-duplicates of one direction (high scores) and 4 distinct directions (lower)."""
    gen = torch.Generator().manual_seed(0)
    cluster = torch.tensor([1.0, 0.0, 0.0, 0.0, 0.0]) + 1e-3 * torch.randn(8, 5, generator=gen)
    spread = torch.eye(5)[1:]  # 4 orthogonal directions
    scores = torch.cat([torch.linspace(1.0, 0.9, 8), torch.linspace(0.5, 0.4, 4)])
    return torch.cat([cluster, spread]), scores


def test_kcenter_picks_spread_points_over_a_cluster_of_duplicates():
    features, _ = _duplicates_and_spread()
    picks = kcenter_greedy(features, 5)
    assert picks[0] == 0, "with nothing selected the first candidate starts"
    assert sorted(picks[1:].tolist()) == [8, 9, 10, 11]
    assert len(set(kcenter_greedy(features, 12).tolist())) == 12, "never picks an item twice"


def test_kcenter_moves_away_from_already_selected_items():
    features, _ = _duplicates_and_spread()
    picks = kcenter_greedy(features, 4, already_selected=torch.tensor([0]))
    assert sorted(picks.tolist()) == [8, 9, 10, 11]


def test_select_top_with_diversity_trades_score_for_coverage():
    features, scores = _duplicates_and_spread()
    plain = select_top(scores, 3, features, diversity=False)
    assert plain.tolist() == [0, 1, 2]
    diverse = select_top(scores, 3, features, diversity=True, candidates_factor=4)
    assert diverse[0] == 0, "the best-scored item still comes first"
    assert set(diverse[1:].tolist()) <= {8, 9, 10, 11}
    narrow = select_top(scores, 3, features, diversity=True, candidates_factor=1)
    assert sorted(narrow.tolist()) == [0, 1, 2], "only the top m = k candidates are eligible"


def test_cold_start_begins_with_a_typical_item_then_spreads():
    features, _ = _duplicates_and_spread()
    features = features * torch.linspace(1, 3, 12).view(-1, 1)  # norms must not matter
    unit = torch.nn.functional.normalize(features, dim=-1)
    typical = int((unit - unit.mean(0)).norm(dim=-1).argmin())
    assert typical < 8, "the constructed mean lies by the dense cluster"
    for seed in range(3):
        picks = cold_start(features, 5, seed=seed)
        assert int(picks[0]) == typical, (
            "first pick is the item nearest the mean, whatever the seed"
        )
        assert sorted(picks[1:].tolist()) == [8, 9, 10, 11]
        assert torch.equal(cold_start(features, 5, seed=seed), picks)


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


@pytest.mark.parametrize("strategy", sorted(SCORERS))
def test_rank_pool_returns_k_distinct_items_and_a_score_per_item(
    strategy, make_task, make_model, make_images
):
    task = make_task("classification")
    model = make_model(task)
    images = make_images(20)
    indices, scores = rank_pool(
        model, task, images, strategy, k=5, n_views=3, mc_samples=3, batch_size=8
    )
    assert scores.shape == (20,) and torch.isfinite(scores).all()
    assert len(set(indices.tolist())) == 5 and indices.max() < 20
    top, _ = rank_pool(
        model, task, images, strategy, k=5, diversity=False, n_views=3, mc_samples=3, batch_size=8
    )
    assert top.tolist() == _ranking(scores)[:5]


def test_rank_pool_refuses_entropy_for_regression(make_task, make_model, make_images):
    task = make_task("regression")
    with pytest.raises(ValueError, match="class probabilities"):
        rank_pool(make_model(task), task, make_images(4), "entropy", k=2)
