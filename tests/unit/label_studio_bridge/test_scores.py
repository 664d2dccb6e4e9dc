"""Scores: an ascending sort gives the suggest window's order, then the rest by disagreement."""

from __future__ import annotations

import pytest

from label_studio_bridge.bridge import image_name, model_version, project_uid
from label_studio_bridge.scores import item_score, outside_score, window_score


def test_ascending_scores_follow_the_window_then_disagreement() -> None:
    window_order = [40, 7, 13, 2]  # /suggest's answer, most informative first
    ranks = {item: rank for rank, item in enumerate(window_order)}
    disagreement = {40: 0.0, 7: 0.0, 13: 9.0, 2: 0.1, 5: 0.3, 6: 2.0, 8: 0.0}
    scored = {i: item_score(i, ranks, len(window_order), d) for i, d in disagreement.items()}
    ascending = sorted(scored, key=scored.get)  # type: ignore[arg-type]
    assert ascending == [40, 7, 13, 2, 6, 5, 8]
    assert all(0 < s <= 1 for s in scored.values())


def test_window_scores_stay_below_every_outside_score() -> None:
    assert window_score(199, 200) < 0.5 < outside_score(1e9)
    assert outside_score(0.0) == 1.0
    with pytest.raises(ValueError):
        window_score(3, 3)


def test_names() -> None:
    assert project_uid({"id": 3, "created_at": "2026-12-01T10:00:00.123456Z"}) == "3.1796119200"
    assert model_version(None) == "xmodel-untrained" and model_version(4) == "xmodel-v4"
    assert image_name(9, "/data/upload/1/abc-cat.png") == "ls-task-9-abc-cat.png"
    assert image_name(9, "/data/local-files/?d=photos/x/dog.jpg") == "ls-task-9-dog.jpg"
