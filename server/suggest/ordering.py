"""How the product default (``xmodel``) orders scored candidates: stratified across clusters,
typical-first while labels are few, most-disagreed-on once they are not.

Two rules, both from the active-learning evidence in ../shared/PAPER.md and docs/RESULTS.md §4
(uncertainty alone picks atypical images, which a small label pool serves badly):

- **Proportional clusters.** A batch of ``k`` is a systematic sample of the k-means clusters
  with probability proportional to their size: cluster ``c`` of ``n_c`` among ``N`` scored items
  gets ``floor`` or ``ceil`` of ``k·n_c/N`` picks (in expectation exactly that), so the label
  pool follows the data distribution as random sampling does, instead of giving a small
  cluster of outliers as many picks as a large cluster of common images.
- **Typicality while labels are few.** Within a cluster, items are ranked by
  ``(1 - α)·rank(disagreement) + α·rank(typicality)`` (ranks scaled to [0, 1] among the
  cluster's candidates), with ``α = min(1, clusters / labelled items)``, counting the labels
  the scoring model learnt from: while the project holds about one label per cluster or fewer,
  the most typical image of a cluster teaches the model most (TypiClust, Hacohen et al., ICML
  2022); as labels accumulate, disagreement takes over.

Pure functions over plain rows: no database, no torch.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Sequence

Row = tuple[int, float, int, float | None]  # item_id, score (disagreement), cluster, typicality


def typicality_weight(n_clusters: int, n_labelled: int) -> float:
    """``α = min(1, clusters / labelled)``: 1 with no labels, 0.1 at ten labels per cluster."""
    if n_clusters <= 0:
        return 0.0
    return min(1.0, n_clusters / max(1, n_labelled))


def _scaled_ranks(values: Sequence[float]) -> list[float]:
    """Rank of each value among ``values`` scaled to [0, 1] (1 = largest); ties share the mean rank."""
    n = len(values)
    if n == 1:
        return [1.0]
    order = sorted(range(n), key=lambda i: values[i])
    ranks = [0.0] * n
    start = 0
    while start < n:
        end = start
        while end + 1 < n and values[order[end + 1]] == values[order[start]]:
            end += 1
        for pos in range(start, end + 1):
            ranks[order[pos]] = (start + end) / 2 / (n - 1)
        start = end + 1
    return ranks


def within_cluster_order(rows: list[Row], alpha: float) -> list[Row]:
    """One cluster's candidates, best first, by the blended rank (score alone when any row has
    no typicality or ``alpha`` is 0). Ties go to the higher score, then the lower item id."""
    if alpha <= 0 or any(r[3] is None for r in rows):
        return sorted(rows, key=lambda r: (-r[1], r[0]))
    by_score = _scaled_ranks([r[1] for r in rows])
    by_typicality = _scaled_ranks([float(r[3]) for r in rows])  # type: ignore[arg-type]
    keyed = [((1 - alpha) * s + alpha * t, row) for s, t, row in zip(by_score, by_typicality, rows, strict=True)]
    keyed.sort(key=lambda kr: (-kr[0], -kr[1][1], kr[1][0]))
    return [row for _, row in keyed]


def stratified_order(rows: list[Row], sizes: dict[int, int], k: int, alpha: float, start: float,
                     passes: int = 4) -> list[Row]:
    """Order candidates so that each run of ``k`` is a size-proportional sample of clusters.

    ``sizes`` maps cluster -> items scored in it; ``start`` in [0, 1) is the systematic
    sample's random offset (the caller seeds it). Points ``(start + j)·N/k`` for
    j = 0 .. passes·k - 1 fall in the clusters' intervals laid end to end (by cluster id), each
    point taking that cluster's next candidate (``within_cluster_order``); a cluster that has
    run out is skipped. Whatever the points left over follows, each cluster's next candidate in
    turn. Every row is returned exactly once.
    """
    queues: dict[int, list[Row]] = {}
    for row in rows:
        queues.setdefault(row[2], []).append(row)
    clusters = sorted(queues)
    for cluster in clusters:
        queues[cluster] = within_cluster_order(queues[cluster], alpha)
    bounds = list(itertools.accumulate(max(1, sizes.get(c, len(queues[c]))) for c in clusters))
    total, k = bounds[-1] if bounds else 0, max(1, k)
    taken = dict.fromkeys(clusters, 0)
    ordered: list[Row] = []
    for j in range(passes * k if clusters else 0):
        cluster = clusters[bisect.bisect_right(bounds, math.fmod((start + j) * total / k, total))]
        if taken[cluster] < len(queues[cluster]):
            ordered.append(queues[cluster][taken[cluster]])
            taken[cluster] += 1
    while len(ordered) < len(rows):
        for cluster in clusters:
            if taken[cluster] < len(queues[cluster]):
                ordered.append(queues[cluster][taken[cluster]])
                taken[cluster] += 1
    return ordered
