"""The diversity order ``/suggest`` walks, computed once when a model's scores are written.

Round-robin across k-means clusters: every cluster's best item, then every cluster's second
best, ...; within one such layer the items go by score (descending, then id), so the best
items still come first. Storing each item's position (``rank``) beside its score turns the
request into one indexed range scan, whatever the pool size."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np


class ScoreRow(NamedTuple):
    """One ``item_scores`` row as the worker writes it."""

    item_id: int
    score: float
    cluster: int
    rank: int


def diversity_ranks(
    item_ids: Sequence[int] | np.ndarray,
    scores: Sequence[float] | np.ndarray,
    clusters: Sequence[int] | np.ndarray,
) -> np.ndarray:
    """``(n,)`` int64: each item's 0-based position in the round-robin order (n log n)."""
    ids = np.asarray(item_ids, dtype=np.int64)
    values = np.asarray(scores, dtype=np.float64)
    groups = np.asarray(clusters, dtype=np.int64)
    n = len(ids)
    if not (len(values) == len(groups) == n):
        raise ValueError("item_ids, scores and clusters must have the same length")
    by_score = np.lexsort((ids, -values))  # score descending, then id
    in_order = groups[by_score]
    by_cluster = np.argsort(in_order, kind="stable")  # keeps the score order inside a cluster
    sorted_groups = in_order[by_cluster]
    depth = np.empty(n, dtype=np.int64)
    depth[by_cluster] = np.arange(n) - np.searchsorted(sorted_groups, sorted_groups, "left")
    walk = np.lexsort((np.arange(n), depth))  # layer by layer, by score inside a layer
    ranks = np.empty(n, dtype=np.int64)
    ranks[by_score[walk]] = np.arange(n)
    return ranks


def ranked_rows(rows: Sequence[tuple[int, float, int]]) -> list[ScoreRow]:
    """``(item_id, score, cluster)`` rows of one model and strategy -> rows with their rank."""
    if not rows:
        return []
    ids, values, groups = zip(*rows, strict=True)
    ranks = diversity_ranks(ids, values, groups)
    return [
        ScoreRow(int(i), float(s), int(c), int(r))
        for i, s, c, r in zip(ids, values, groups, ranks.tolist(), strict=True)
    ]
