"""The "cannot be labelled" flag through the API: out of /suggest, visible to the owner with
its reason, back in the pool once cleared."""

from __future__ import annotations

import pytest
from page_helpers import LiveServer, create_project, create_token, picture, register_model, upload

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("with_model", [False, True], ids=["cold_start", "scored"])
def test_flagged_items_leave_suggest_until_cleared(server: LiveServer, with_model: bool) -> None:
    task = {"kind": "classification", "classes": ["a", "b"]}
    project_id, owner = create_project(server, task)
    items = upload(server, project_id, owner, [(f"u{i}.png", picture(9400 + i)) for i in range(4)])
    if with_model:
        register_model(server, project_id, task, scores=[(it["id"], 1.0, 0) for it in items])
    _tid, token = create_token(server, project_id, owner)
    flagged = items[0]["id"]
    with server.client(token) as annotator, server.client(owner) as owner_client:
        suggest = f"/projects/{project_id}/suggest"
        held = [
            i["item_id"]
            for i in annotator.get(suggest, params={"k": 4, "annotator": "x"}).json()["items"]
        ]
        assert flagged in held
        answer = annotator.put(f"/items/{flagged}/unlabellable", json={"reason": "  blurred  "})
        assert answer.status_code == 200, answer.text
        assert answer.json()["unlabellable_reason"] == "blurred"
        assert answer.json()["unlabellable_at"] is not None
        # Its lease went with the flag, and no annotator is handed it again.
        leased = owner_client.get(f"/projects/{project_id}/items", params={"status": "leased"})
        assert flagged not in {row["id"] for row in leased.json()["items"]}
        for name in ("x", "y"):
            again = annotator.get(suggest, params={"k": 10, "annotator": name}).json()["items"]
            assert flagged not in {i["item_id"] for i in again}
        listed = owner_client.get(
            f"/projects/{project_id}/items", params={"status": "unlabellable"}
        )
        assert [(r["id"], r["unlabellable_reason"]) for r in listed.json()["items"]] == [
            (flagged, "blurred")
        ]
        assert annotator.delete(f"/items/{flagged}/unlabellable").json()["unlabellable_at"] is None
        annotator.delete(f"/projects/{project_id}/leases", params={"annotator": "y"})
        back = annotator.get(suggest, params={"k": 10, "annotator": "x"}).json()["items"]
        assert flagged in {i["item_id"] for i in back}


def test_flag_checks_its_input_and_the_project(server: LiveServer) -> None:
    task = {"kind": "classification", "classes": ["a", "b"]}
    project_id, owner = create_project(server, task)
    _other, other_owner = create_project(server, task)
    (item,) = upload(server, project_id, owner, [("v.png", picture(9450))])
    with server.client(other_owner) as stranger:
        assert stranger.put(f"/items/{item['id']}/unlabellable", json={}).status_code == 404
        assert stranger.delete(f"/items/{item['id']}/unlabellable").status_code == 404
    with server.client(owner) as client:
        too_long = client.put(f"/items/{item['id']}/unlabellable", json={"reason": "x" * 501})
        assert too_long.status_code == 422
        assert client.get(f"/items/{item['id']}").json()["unlabellable_at"] is None
        assert (
            client.put(f"/items/{item['id']}/unlabellable", json={}).json()["unlabellable_reason"]
            is None
        )
