"""Suggest with the benchmark's baseline strategies (mc_dropout, entropy): their own score
rows, pure top score, and a plain fallback with a note when the model lacks them."""

from __future__ import annotations

import pytest
from server_test_helpers import register_model, unique_png
from sqlalchemy.orm import Session

from server.suggest.ranking import ranked_rows
from server.suggest.repository import write_scores

pytestmark = pytest.mark.integration


def _setup(api) -> tuple[int, dict[str, str], list[int], int]:
    project_id, owner = api.create_project()
    response = api.upload(project_id, owner, [(f"{i}.png", unique_png()) for i in range(6)])
    ids = [e["item"]["id"] for e in response.json()["items"]]
    model_id = register_model(
        api, project_id, scores=[(i, float(n), n % 2) for n, i in enumerate(ids)]
    )
    return project_id, owner, ids, model_id


def _suggest(api, project_id, owner, **params):
    response = api.client.get(f"/projects/{project_id}/suggest", headers=owner, params=params)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.parametrize("strategy", ["mc_dropout", "entropy"])
def test_baseline_reads_its_own_rows(api, strategy: str) -> None:
    project_id, owner, ids, model_id = _setup(api)
    with Session(api.engine) as session, session.begin():  # reversed order vs the xmodel rows
        write_scores(
            session, model_id, strategy, ranked_rows([(i, float(-n), 0) for n, i in enumerate(ids)])
        )
    result = _suggest(api, project_id, owner, k=3, strategy=strategy, annotator=strategy)
    assert result["strategy"] == strategy and result["requested_strategy"] == strategy
    assert [i["item_id"] for i in result["items"]] == ids[:3]
    xmodel = _suggest(api, project_id, owner, k=2, strategy="xmodel_nodiv", annotator="other")
    assert [i["item_id"] for i in xmodel["items"]] == [ids[5], ids[4]]


def test_baseline_without_rows_falls_back_and_says_why(api) -> None:
    project_id, owner, ids, _model_id = _setup(api)
    result = _suggest(api, project_id, owner, k=2, strategy="mc_dropout")
    assert result["strategy"] == "cold_start_random" and "score_strategies" in result["note"]
    assert set(i["item_id"] for i in result["items"]) <= set(ids)
