"""Score every unlabelled image of a project with a trained model, in streamed batches.

Per batch: every head on ``views`` views (view 0 plain) → the ``xmodel`` disagreement score
(``xmodel_core.acquisition.XModelScorer``), and the extractor's features reduced by a seeded
random projection to ``PROJECTED_DIM`` dims (Johnson–Lindenstrauss keeps the distances
k-means needs). Memory is O(batch images + N × PROJECTED_DIM floats), not O(N images).
k-means is fitted on at most ``KMEANS_SAMPLE`` items; every item then goes to its nearest
centre. Rows are written ``write_batch`` at a time, each batch its own transaction.

Baselines, only when the project's ``training.score_strategies`` lists them (the active-learning
benchmark compares against them; /suggest reads them by name): ``mc_dropout`` — variance over
``MC_DROPOUT_SAMPLES`` dropout draws of the heads' mean (features once per batch, heads
sampled; ``xmodel_core.predict.mc_dropout_predictions``); ``entropy`` — classification only,
entropy of the heads' mean probabilities on the plain image (free: view 0 is already there).
They share the xmodel rows' cluster ids."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import torch
import torch.nn.functional as F
from sqlalchemy.orm import Session, sessionmaker

from server.storage import ImageStore
from server.suggest import repository as scores_repo
from server.suggest.ranking import ScoreRow, diversity_ranks
from worker.errors import JobDataError
from worker.training.data import iter_items, load_images
from xmodel_contracts.names import ScoreStrategy
from xmodel_core.acquisition import ScoringInputs, XModelScorer, get_scorer, kmeans
from xmodel_core.model import XModel
from xmodel_core.predict import (
    cached_view_predictions,
    collect_view_predictions,
    mc_dropout_on_features,
    mc_dropout_predictions,
    model_device,
)
from xmodel_core.tasks import TaskSpec
from xmodel_core.trunk_cache import TopFn, onnx_top

if TYPE_CHECKING:
    from worker.training.views import ViewBuilder

T = TypeVar("T")
R = TypeVar("R")
STRATEGY = ScoreStrategy.XMODEL  # the rows /suggest reads
PROJECTED_DIM = 64
KMEANS_SAMPLE = 20_000
MC_DROPOUT_SAMPLES = 8  # few draws: the heads are small and the features are shared


@dataclass
class PoolScores:
    item_ids: list[int]
    scores: torch.Tensor  # [N]
    clusters: torch.Tensor  # [N] long
    extra: dict[str, torch.Tensor] = field(default_factory=dict)  # baseline name -> [N]


def default_clusters(n: int) -> int:
    return max(1, min(50, round(math.sqrt(n / 2))))


def check_strategies(extra: tuple[str, ...] | list[str], task: TaskSpec) -> None:
    """Refuse a baseline that does not apply to the task (entropy needs classes)."""
    for name in extra:
        try:
            get_scorer(name).check_task(task)
        except ValueError as exc:
            raise JobDataError(f"score_strategies: {exc}") from exc


def _baseline_scores(
    name: str,
    model: XModel,
    task: TaskSpec,
    images: torch.Tensor | None,
    features: torch.Tensor,
    preds: torch.Tensor,
    seed: int,
    batch: int,
) -> torch.Tensor:
    """A baseline's scores of one batch; ``images`` None in the cached mode (features serve)."""
    inputs = ScoringInputs(task=task, num_items=preds.shape[2], seed=seed)
    if name == "mc_dropout":
        inputs.dropout_predictions = (
            mc_dropout_on_features(model, task, features, MC_DROPOUT_SAMPLES, seed=seed)
            if images is None
            else mc_dropout_predictions(
                model, task, images, MC_DROPOUT_SAMPLES, seed=seed, batch_size=batch
            )
        )
    else:
        inputs.predictions = preds[0]  # the plain view, every head
    return get_scorer(name).score(inputs).float()


def score_pool(
    model: XModel,
    task: TaskSpec,
    factory: sessionmaker[Session],
    store: ImageStore,
    project_id: int,
    *,
    size: int,
    views: int,
    batch: int,
    seed: int,
    n_clusters: int | None,
    check: Callable[[int, int], None],
    extra: tuple[str, ...] | list[str] = (),
    views_from: ViewBuilder | None = None,
) -> PoolScores:
    """Score the project's current unlabelled items; ``check(done, total_so_far)`` runs after
    every batch (progress, cancel). ``extra`` names baselines to score as well.

    With ``views_from`` (the cached mode) the views are each image's cached plain and strong
    views (``views`` is then 1 + the plan's strong views) and only the trainable stages run;
    otherwise ``views`` seeded weak warps of the decoded images go through the whole model."""
    check_strategies(extra, task)
    scorer = XModelScorer()
    ids: list[int] = []
    scores: list[torch.Tensor] = []
    extra_scores: dict[str, list[torch.Tensor]] = {name: [] for name in extra}
    feats: list[torch.Tensor] = []
    projection: torch.Tensor | None = None
    top: TopFn | None = None  # the trainable stages in onnxruntime, on a CPU (cached mode)
    batches = (
        page[start : start + batch]
        for page in iter_items(factory, project_id, "unlabelled")
        for start in range(0, len(page), batch)
    )

    def load(rows: list[Any]) -> Any:
        shas = [r.sha256 for r in rows]
        if views_from is not None:
            return views_from.views(shas, "plain"), views_from.views(shas, "strong")
        return load_images(store, shas, size)

    for rows, loaded in read_ahead(batches, load):
        images: Any = None
        if views_from is not None:
            plain, strong = loaded
            if top is None and model_device(model).type == "cpu":
                top = onnx_top(model, plain.trunk[:, 0])
            preds, features = cached_view_predictions(model, task, plain, strong, top)
        else:
            images = loaded
            preds, features = collect_view_predictions(
                model, task, images, views, seed=seed, batch_size=batch
            )
        if preds.shape[0] * model.config.num_heads >= 2:
            inputs = ScoringInputs(task=task, num_items=len(rows), view_predictions=preds)
            scores.append(scorer.score(inputs).float())
        else:
            scores.append(torch.zeros(len(rows)))
        for name, parts in extra_scores.items():
            parts.append(_baseline_scores(name, model, task, images, features, preds, seed, batch))
        if projection is None:
            gen = torch.Generator().manual_seed(seed)
            projection = torch.randn(features.shape[1], PROJECTED_DIM, generator=gen)
        feats.append(F.normalize(features.float() @ projection, dim=-1))
        ids.extend(r.item_id for r in rows)
        check(len(ids), len(ids))
    if not ids:
        return PoolScores(
            [],
            torch.empty(0),
            torch.empty(0, dtype=torch.long),
            {name: torch.empty(0) for name in extra},
        )
    all_feats = torch.cat(feats)
    k = n_clusters or default_clusters(len(ids))
    return PoolScores(
        ids,
        torch.cat(scores),
        cluster_ids(all_feats, k, seed),
        {name: torch.cat(parts) for name, parts in extra_scores.items()},
    )


def read_ahead(batches: Iterator[T], load: Callable[[T], R]) -> Iterator[tuple[T, R]]:
    """Each batch with ``load(batch)``; the next batch's ``load`` runs in a thread while the
    caller works on this one, so reading stored views (or decoding images) overlaps the
    model's forward passes, which release the GIL. Order and results are those of a plain loop."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending: tuple[T, Future[R]] | None = None
        for item in batches:
            future = pool.submit(load, item)
            if pending is not None:
                yield pending[0], pending[1].result()
            pending = (item, future)
        if pending is not None:
            yield pending[0], pending[1].result()


def cluster_ids(features: torch.Tensor, k: int, seed: int) -> torch.Tensor:
    """k-means on (a sample of) the features, then every item to its nearest centre."""
    n = len(features)
    if n <= KMEANS_SAMPLE:
        return kmeans(features, k, seed=seed)
    sample = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:KMEANS_SAMPLE]
    assign = kmeans(features[sample], k, seed=seed)
    k = int(assign.max()) + 1
    sums = torch.zeros(k, features.shape[1]).index_add_(0, assign, features[sample])
    centres = sums / torch.bincount(assign, minlength=k).clamp_min(1)[:, None]
    return torch.cat(
        [torch.cdist(features[s : s + 8192], centres).argmin(1) for s in range(0, n, 8192)]
    )


def write_scores(
    factory: sessionmaker[Session],
    model_id: int,
    pool: PoolScores,
    write_batch: int,
    check: Callable[[int, int], None],
) -> int:
    """Replace the model's scores: delete any from an earlier attempt, then insert in batches
    (the xmodel rows, then each baseline's), each row with its rank in the round-robin order
    across clusters that /suggest walks. Returns the number of xmodel rows."""
    with factory.begin() as session:
        scores_repo.delete_scores(session, model_id)
    written = 0
    total = len(pool.item_ids)
    for strategy, values in ((STRATEGY, pool.scores), *pool.extra.items()):
        ranks = diversity_ranks(pool.item_ids, values.cpu().numpy(), pool.clusters.cpu().numpy())
        for start in range(0, total, write_batch):
            end = min(total, start + write_batch)
            rows = map(
                ScoreRow,
                pool.item_ids[start:end],
                values[start:end].tolist(),
                pool.clusters[start:end].tolist(),
                ranks[start:end].tolist(),
            )
            with factory.begin() as session:
                count = scores_repo.write_scores(session, model_id, strategy, rows)
            if strategy == STRATEGY:
                written += count
                check(written, total)
    return written
