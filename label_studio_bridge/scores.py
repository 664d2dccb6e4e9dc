"""Prediction scores that order Label Studio's tasks as our ``/suggest`` does.

Label Studio takes a prediction's ``score`` as the model's confidence: its "Uncertainty
sampling" queue and an ascending sort on "Prediction score" both serve the lowest score first.
So the most informative item gets the lowest score:

* the ``W`` items of the suggest window (``/suggest``'s answer, in its order) get
  ``(rank + 1) / (W + 1) / 2`` — ranks 0..W-1 map into (0, 0.5), first rank lowest;
* every other item (beyond the window, labelled, or leased to someone else) gets
  ``0.5 + 0.5 / (1 + disagreement)`` — in (0.5, 1], the more the heads disagree the lower,
  so they follow the window in roughly the order ``/suggest`` would reach them.
"""

from __future__ import annotations


def window_score(rank: int, window: int) -> float:
    """Score of the item at ``rank`` (0 = first) of a suggest window of ``window`` items."""
    if not 0 <= rank < window:
        raise ValueError(f"rank {rank} outside a window of {window}")
    return (rank + 1) / (window + 1) / 2


def outside_score(disagreement: float) -> float:
    """Score of an item outside the window, from its heads' disagreement (>= 0)."""
    return 0.5 + 0.5 / (1.0 + max(float(disagreement), 0.0))


def item_score(item_id: int, ranks: dict[int, int], window: int, disagreement: float) -> float:
    """The score of one item given the window's ranks (item id -> rank)."""
    rank = ranks.get(item_id)
    return window_score(rank, window) if rank is not None else outside_score(disagreement)
