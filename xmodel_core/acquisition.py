"""Which unlabelled images to label next: scorers looked up by name, diversity, cold start.

Every scorer has one interface: ``score(inputs) -> [N]``, higher = label first. ``rank_pool``
computes what the chosen scorer needs (through ``predict.py``), scores the pool and, with
diversity on, spreads the picks with k-center greedy over the best-scored candidates: pure
uncertainty picks tend to be near-duplicates and atypical images (measured in docs/RESULTS.md §4), which a label
budget serves badly.

Scorers (``SCORERS``):

- ``xmodel``: disagreement across heads *and* augmented views — the variance over the V×H
  predictions of each item in comparison space (keypoints mapped back to the original frame);
- ``random``: seeded uniform scores (the baseline to beat);
- ``mc_dropout``: variance over dropout samples (Gal et al. 2017; baal's ``Variance``);
- ``entropy`` / ``margin``: classification only, on the heads' mean probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F

from .augment import WEAK, AugmentConfig
from .model import XModel
from .predict import collect_view_predictions, mc_dropout_predictions
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
    """Base of every acquisition scorer: ``score(inputs) -> [N]``, higher = label first.

    ``needs`` names the ``ScoringInputs`` fields the scorer reads, so ``rank_pool`` computes
    only those.
    """

    name: ClassVar[str] = ""
    needs: ClassVar[frozenset[str]] = frozenset()

    def check_task(self, task: TaskSpec) -> None:
        """Raise ``ValueError`` when the scorer does not apply to ``task``."""

    def score(self, inputs: ScoringInputs) -> torch.Tensor:
        raise NotImplementedError


class XModelScorer(Scorer):
    """Variance across the V×H predictions of each item (every head on every view).

    Heads trained to disagree where the features leave room for it, and views that move the
    prediction, both signal an image the model is unsure of (docs/ARCHITECTURE.md).
    """

    name = "xmodel"
    needs = frozenset({"view_predictions"})

    def score(self, inputs: ScoringInputs) -> torch.Tensor:
        preds = inputs.require("view_predictions")
        v, h, n, d = preds.shape
        if v * h < 2:
            raise ValueError(
                "the xmodel scorer needs at least two predictions per item (heads × views)"
            )
        spread = preds.reshape(v * h, n, d).var(dim=0, unbiased=False)
        return spread_over_dims(spread, inputs.task)


class RandomScorer(Scorer):
    """Seeded uniform scores: random sampling, the strong baseline of active learning."""

    name = "random"

    def score(self, inputs: ScoringInputs) -> torch.Tensor:
        gen = torch.Generator().manual_seed(inputs.seed)
        return torch.rand(inputs.num_items, generator=gen)


class MCDropoutScorer(Scorer):
    """Variance across dropout samples ``[T, N, D]`` of the heads' mean prediction."""

    name = "mc_dropout"
    needs = frozenset({"dropout_predictions"})

    def score(self, inputs: ScoringInputs) -> torch.Tensor:
        preds = inputs.require("dropout_predictions")
        if preds.shape[0] < 2:
            raise ValueError("the mc_dropout scorer needs at least two dropout samples")
        return spread_over_dims(preds.var(dim=0, unbiased=False), inputs.task)


class _ClassificationScorer(Scorer):
    needs = frozenset({"predictions"})

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

    name = "entropy"

    def score(self, inputs: ScoringInputs) -> torch.Tensor:
        p = self.probabilities(inputs)
        return -(p * p.clamp_min(1e-12).log()).sum(-1)


class MarginScorer(_ClassificationScorer):
    """``1 - (p_top1 - p_top2)``: a small margin between the two likeliest classes ranks first."""

    name = "margin"

    def score(self, inputs: ScoringInputs) -> torch.Tensor:
        p = self.probabilities(inputs)
        if p.shape[-1] < 2:
            return torch.zeros(p.shape[0])
        top = p.topk(2, dim=-1).values
        return 1.0 - (top[:, 0] - top[:, 1])


SCORERS: dict[str, type[Scorer]] = {
    cls.name: cls
    for cls in (XModelScorer, RandomScorer, MCDropoutScorer, EntropyScorer, MarginScorer)
}


def get_scorer(name: str) -> Scorer:
    """The scorer registered under ``name``; ``ValueError`` listing the choices otherwise."""
    try:
        return SCORERS[name]()
    except KeyError:
        raise ValueError(
            f"unknown acquisition strategy {name!r}; choose one of {sorted(SCORERS)}"
        ) from None


# ---- diversity -----------------------------------------------------------------------------
def normalise_features(features: torch.Tensor) -> torch.Tensor:
    """L2-normalised float features ``[N, F]``: distances then compare directions, not norms."""
    return F.normalize(features.float(), dim=-1)


def _min_distances(points: torch.Tensor, centres: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """``min_c ||p - c||`` for every point ``[M, F]`` against ``centres`` ``[C, F]`` -> ``[M]``."""
    out = torch.full((len(points),), float("inf"))
    for start in range(0, len(centres), chunk):
        dist = torch.cdist(points, centres[start : start + chunk])
        out = torch.minimum(out, dist.min(dim=1).values)
    return out


def kcenter_greedy(
    features: torch.Tensor,
    k: int,
    candidates: torch.Tensor | None = None,
    already_selected: torch.Tensor | None = None,
) -> torch.Tensor:
    """Greedy k-center (core-set, Sener & Savarese 2018) -> ``k`` indices into ``features``.

    Repeatedly picks the candidate farthest from everything selected so far (including
    ``already_selected``, e.g. the labelled set). ``features`` ``[N, F]`` are used as given
    (normalise them first for cosine-like distances). ``candidates`` (default: all) are indices
    in priority order: with nothing selected yet, the first candidate is the first pick, and
    exact ties go to the earlier candidate. Returns fewer than ``k`` only when there are fewer
    candidates.
    """
    feats = features.float()
    cand = torch.arange(len(feats)) if candidates is None else torch.as_tensor(candidates).long()
    k = min(k, len(cand))
    if k <= 0:
        return torch.empty(0, dtype=torch.long)
    points = feats[cand]
    if already_selected is not None and len(already_selected) > 0:
        min_dist = _min_distances(points, feats[torch.as_tensor(already_selected).long()])
    else:
        min_dist = torch.full((len(cand),), float("inf"))
    picked = torch.zeros(len(cand), dtype=torch.bool)
    order: list[int] = []
    for _ in range(k):
        # argmax returns the first maximum, so ties (and the all-inf start) follow candidate order
        masked = min_dist.masked_fill(picked, -1.0)
        choice = int(masked.argmax())
        picked[choice] = True
        order.append(choice)
        min_dist = torch.minimum(min_dist, (points - points[choice]).norm(dim=-1))
    return cand[torch.tensor(order)]


def cold_start(features: torch.Tensor, k: int, seed: int = 0) -> torch.Tensor:
    """First ``k`` items to label in a project with no labels: typical first, then spread.

    k-center greedy on L2-normalised (pretrained) features, started from the item nearest the
    feature mean, so the first pick is a typical image rather than an outlier; ``seed`` breaks
    exact ties (duplicates) in a seeded order. Returns indices ``[k]``.
    """
    feats = normalise_features(features)
    n = len(feats)
    if n == 0 or k <= 0:
        return torch.empty(0, dtype=torch.long)
    typical = int((feats - feats.mean(0)).norm(dim=-1).argmin())
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    order = torch.cat([torch.tensor([typical]), order[order != typical]])
    return kcenter_greedy(feats, k, candidates=order)


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


# ---- ranking a pool ------------------------------------------------------------------------
def select_top(
    scores: torch.Tensor,
    k: int,
    features: torch.Tensor | None = None,
    diversity: bool = True,
    candidates_factor: int = 4,
    already_selected: torch.Tensor | None = None,
) -> torch.Tensor:
    """The ``k`` items to label: the best scores, spread by k-center greedy when ``diversity``.

    With diversity, the top ``m = candidates_factor·k`` items by score are the candidates, in
    score order, and k-center greedy on their L2-normalised ``features`` picks ``k`` of them
    (with nothing ``already_selected``, the best-scored item is the first pick). Ties in score
    go to the lower index.
    """
    k = min(k, len(scores))
    order = torch.sort(scores, descending=True, stable=True).indices
    if not diversity or k <= 0:
        return order[:k]
    if features is None:
        raise ValueError("diversity needs features")
    m = min(len(scores), max(k, candidates_factor * k))
    return kcenter_greedy(normalise_features(features), k, order[:m], already_selected)


def rank_pool(
    model: XModel,
    task: TaskSpec,
    images: torch.Tensor,
    strategy: str,
    k: int,
    diversity: bool = True,
    candidates_factor: int = 4,
    seed: int = 0,
    n_views: int = 4,
    mc_samples: int = 16,
    augment_cfg: AugmentConfig = WEAK,
    batch_size: int = 256,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Score a pool of uint8 images ``[N, 3, S, S]`` with ``strategy``; pick ``k`` to label.

    Returns ``(indices [min(k, N)], scores [N])``. Predictions are computed only as far as the
    scorer (and diversity, which needs features) requires.
    """
    scorer = get_scorer(strategy)
    scorer.check_task(task)
    needs = set(scorer.needs) | ({"features"} if diversity else set())
    inputs = ScoringInputs(task=task, num_items=len(images), seed=seed)
    if needs & {"view_predictions", "predictions", "features"}:
        views = n_views if "view_predictions" in needs else 1
        view_preds, inputs.features = collect_view_predictions(
            model, task, images, views, augment_cfg, seed, batch_size, device
        )
        inputs.view_predictions, inputs.predictions = view_preds, view_preds[0]
    if "dropout_predictions" in needs:
        inputs.dropout_predictions = mc_dropout_predictions(
            model, task, images, mc_samples, seed, batch_size, device
        )
    scores = scorer.score(inputs).float()
    return select_top(scores, k, inputs.features, diversity, candidates_factor), scores


__all__ = [
    "SCORERS",
    "Scorer",
    "ScoringInputs",
    "cold_start",
    "get_scorer",
    "kcenter_greedy",
    "kmeans",
    "normalise_features",
    "rank_pool",
    "select_top",
]
