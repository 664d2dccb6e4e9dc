"""Which unlabelled images to label next: scorers looked up by name, and k-means clusters.

Every scorer has one interface: ``score(inputs) -> [N]``, higher = label first. The worker
computes what a scorer reads (through ``predict.py``) batch by batch over the pool and stores
each item's score beside a k-means cluster id of its features; ``/suggest`` then walks the
top-scored items round-robin across clusters, since pure uncertainty picks tend to be
near-duplicates (measured in docs/RESULTS.md §4), which a label budget serves badly.

Scorers (``SCORERS``, keyed by :class:`xmodel_contracts.names.ScoreStrategy`):

- ``xmodel``: disagreement across heads *and* augmented views — the variance over the V×H
  predictions of each item in comparison space (keypoints mapped back to the original frame);
- ``mc_dropout``: variance over dropout samples (Gal et al. 2017; baal's ``Variance``);
- ``entropy``: classification only, predictive entropy of the heads' mean probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from xmodel_contracts.names import ScoreStrategy

from .tasks import TaskSpec


@dataclass
class ScoringInputs:
    """What a scorer may read. Tensors are in comparison space, on the CPU.

    ``predictions`` ``[H, N, D]`` (plain images), ``view_predictions`` ``[V, H, N, D]`` (view 0
    plain), ``dropout_predictions`` ``[T, N, D]``, ``features`` ``[N, F]``.
    """

    task: TaskSpec
    num_items: int
    seed: int = 0
    predictions: torch.Tensor | None = None
    view_predictions: torch.Tensor | None = None
    dropout_predictions: torch.Tensor | None = None
    features: torch.Tensor | None = None

    def require(self, field_name: str) -> torch.Tensor:
        value = getattr(self, field_name)
        if value is None:
            raise ValueError(f"scorer input {field_name!r} was not computed")
        return value


def spread_over_dims(values: torch.Tensor, task: TaskSpec) -> torch.Tensor:
    """Reduce per-dimension spreads ``[..., D]`` to ``[...]`` like ``losses.discrepancy``.

    Classification sums over classes (the probability mass that moves); regression and
    keypoints average over dims (standardised targets / coordinates are on one scale).
    """
    return values.sum(-1) if task.kind == "classification" else values.mean(-1)


class Scorer:
    """Base of every acquisition scorer: ``score(inputs) -> [N]``, higher = label first."""

    name: ClassVar[ScoreStrategy]

    def check_task(self, task: TaskSpec) -> None:
        """Raise ``ValueError`` when the scorer does not apply to ``task``."""

    def score(self, inputs: ScoringInputs) -> torch.Tensor:
        raise NotImplementedError


class XModelScorer(Scorer):
    """Variance across the V×H predictions of each item (every head on every view).

    Heads trained to disagree where the features leave room for it, and views that move the
    prediction, both signal an image the model is unsure of (docs/ARCHITECTURE.md).
    """

    name = ScoreStrategy.XMODEL

    def score(self, inputs: ScoringInputs) -> torch.Tensor:
        preds = inputs.require("view_predictions")
        v, h, n, d = preds.shape
        if v * h < 2:
            raise ValueError(
                "the xmodel scorer needs at least two predictions per item (heads × views)"
            )
        spread = preds.reshape(v * h, n, d).var(dim=0, unbiased=False)
        return spread_over_dims(spread, inputs.task)


class MCDropoutScorer(Scorer):
    """Variance across dropout samples ``[T, N, D]`` of the heads' mean prediction."""

    name = ScoreStrategy.MC_DROPOUT

    def score(self, inputs: ScoringInputs) -> torch.Tensor:
        preds = inputs.require("dropout_predictions")
        if preds.shape[0] < 2:
            raise ValueError("the mc_dropout scorer needs at least two dropout samples")
        return spread_over_dims(preds.var(dim=0, unbiased=False), inputs.task)


class _ClassificationScorer(Scorer):
    def check_task(self, task: TaskSpec) -> None:
        if task.kind != "classification":
            raise ValueError(
                f"the {self.name!r} scorer needs class probabilities; task is {task.kind!r}"
            )

    def probabilities(self, inputs: ScoringInputs) -> torch.Tensor:
        """Mean over heads of the plain predictions -> ``[N, C]``."""
        self.check_task(inputs.task)
        return inputs.require("predictions").mean(0)


class EntropyScorer(_ClassificationScorer):
    """Predictive entropy ``-Σ_c p_c log p_c`` of the heads' mean probabilities."""

    name = ScoreStrategy.ENTROPY

    def score(self, inputs: ScoringInputs) -> torch.Tensor:
        p = self.probabilities(inputs)
        return -(p * p.clamp_min(1e-12).log()).sum(-1)


SCORERS: dict[ScoreStrategy, type[Scorer]] = {
    cls.name: cls for cls in (XModelScorer, MCDropoutScorer, EntropyScorer)
}


def get_scorer(name: str) -> Scorer:
    """The scorer registered under ``name``; ``ValueError`` listing the choices otherwise."""
    try:
        return SCORERS[ScoreStrategy(name)]()
    except ValueError:
        raise ValueError(
            f"unknown acquisition strategy {name!r}; choose one of {[str(k) for k in SCORERS]}"
        ) from None


# ---- diversity -----------------------------------------------------------------------------
def _min_distances(points: torch.Tensor, centres: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """``min_c ||p - c||`` for every point ``[M, F]`` against ``centres`` ``[C, F]`` -> ``[M]``."""
    out = torch.full((len(points),), float("inf"))
    for start in range(0, len(centres), chunk):
        dist = torch.cdist(points, centres[start : start + chunk])
        out = torch.minimum(out, dist.min(dim=1).values)
    return out


def kmeans(
    features: torch.Tensor, n_clusters: int, seed: int = 0, iters: int = 25, chunk: int = 8192
) -> torch.Tensor:
    """Cluster ids ``[N]`` (long) from k-means with k-means++ seeding (Arthur & Vassilvitskii 2007).

    Plain torch, distances computed ``chunk`` rows at a time so a large pool fits in memory.
    An emptied cluster is re-seeded at the point farthest from its centre. The worker stores
    the id beside each item's score so suggestions can round-robin across clusters.
    """
    x = features.float()
    n = len(x)
    n_clusters = min(n_clusters, n)
    if n_clusters <= 0:
        return torch.zeros(n, dtype=torch.long)
    gen = torch.Generator().manual_seed(seed)
    centres = x[torch.randint(n, (1,), generator=gen)]
    nearest_sq = _min_distances(x, centres).pow(2)
    for _ in range(1, n_clusters):
        total = nearest_sq.sum()
        if total <= 0:  # fewer distinct points than clusters: any point will do
            nxt = int(torch.randint(n, (1,), generator=gen))
        else:
            nxt = int(torch.multinomial(nearest_sq / total, 1, generator=gen))
        centres = torch.cat([centres, x[nxt : nxt + 1]])
        nearest_sq = torch.minimum(nearest_sq, (x - x[nxt]).pow(2).sum(-1))
    assign = _assign(x, centres, chunk)
    for _ in range(iters):
        counts = torch.bincount(assign, minlength=n_clusters)
        sums = torch.zeros_like(centres).index_add_(0, assign, x)
        new_centres = torch.where(counts[:, None] > 0, sums / counts.clamp_min(1)[:, None], centres)
        dist_to_own = (x - new_centres[assign]).norm(dim=-1)
        for empty in torch.nonzero(counts == 0).flatten().tolist():
            far = int(dist_to_own.argmax())
            new_centres[empty] = x[far]
            dist_to_own[far] = -1.0
        centres = new_centres
        new_assign = _assign(x, centres, chunk)
        if torch.equal(new_assign, assign):
            break
        assign = new_assign
    return assign


def _assign(x: torch.Tensor, centres: torch.Tensor, chunk: int) -> torch.Tensor:
    return torch.cat(
        [torch.cdist(x[s : s + chunk], centres).argmin(1) for s in range(0, len(x), chunk)]
    )


__all__ = [
    "SCORERS",
    "EntropyScorer",
    "MCDropoutScorer",
    "Scorer",
    "ScoringInputs",
    "XModelScorer",
    "get_scorer",
    "kmeans",
    "spread_over_dims",
]
