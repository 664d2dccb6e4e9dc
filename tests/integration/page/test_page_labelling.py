"""The labelling page in headless Chromium, end to end against a live API process: sign in,
label items of every task kind with the model's guess prefilled, skip, undo, and read the
stored labels back through the API."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from page_helpers import (
    LiveServer,
    create_project,
    create_token,
    picture,
    register_model,
    upload,
)

pytestmark = pytest.mark.integration
SCREENSHOTS = os.environ.get("XM_PAGE_SCREENSHOTS")  # a folder: save one picture per task kind


def sign_in(page: Any, server: LiveServer, token: str, annotator: str) -> int:
    page.goto(server.url + "/")
    page.fill("#signin-token", token)
    page.fill("#signin-annotator", annotator)
    page.click("#signin-submit")
    return wait_for_item(page, "")


def wait_for_item(page: Any, previous: str | int) -> int:
    """Wait until another item is on screen, its image loaded; return its id."""
    page.wait_for_function(
        "old => { const id = document.body.dataset.itemId; const img = document.getElementById('image');"
        " return id && id !== String(old) && img.complete && img.naturalWidth > 0; }",
        arg=str(previous),
    )
    return int(page.evaluate("document.body.dataset.itemId"))


def current(page: Any) -> int:
    return int(page.evaluate("document.body.dataset.itemId"))


def screenshot(page: Any, name: str) -> None:
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SCREENSHOTS) / f"page-{name}.png"))


def label_of(server: LiveServer, token: str, item_id: int) -> Any:
    with server.client(token) as client:
        response = client.get(f"/items/{item_id}")
        response.raise_for_status()
        return response.json()["label"]


def prediction_of(server: LiveServer, token: str, item_id: int) -> dict[str, Any]:
    with server.client(token) as client:
        response = client.get(f"/items/{item_id}/prediction")
        response.raise_for_status()
        return dict(response.json()["prediction"])


def project_with_model(
    server: LiveServer, task: dict[str, Any], count: int, **picture_args: Any
) -> tuple[int, str, str, list[dict[str, Any]]]:
    """A project with ``count`` images, an active model that scored them, an annotator token."""
    project_id, owner = create_project(server, task)
    items = upload(
        server,
        project_id,
        owner,
        [(f"img{i}.png", picture(1000 * project_id + i, **picture_args)) for i in range(count)],
    )
    register_model(
        server,
        project_id,
        task,
        scores=[(item["id"], 1.0 - i / count, i % 2) for i, item in enumerate(items)],
    )
    _tid, annotator = create_token(server, project_id, owner)
    return project_id, owner, annotator, items


def test_classification_keys_skip_undo(page: Any, server: LiveServer) -> None:
    task = {"kind": "classification", "classes": ["cat", "dog", "bird"]}
    _pid, owner, token, _items = project_with_model(server, task, 8)
    shown = sign_in(page, server, token, "alice")
    # The model's guess is shown and preselected.
    guess = prediction_of(server, token, shown)
    assert page.locator("#guess").is_visible()
    assert page.locator(".classes button.selected").get_attribute("data-class") == guess["class"]
    assert page.locator("#notice").is_hidden()
    screenshot(page, "classification")

    expected: dict[int, str] = {}
    for key in ("1", "2", "3"):
        expected[shown] = task["classes"][int(key) - 1]
        page.keyboard.press(key)
        shown = wait_for_item(page, shown)
    skipped = shown
    page.keyboard.press("s")
    shown = wait_for_item(page, skipped)

    # Undo brings the last labelled item back, with its label cleared in the service.
    last = list(expected)[-1]
    page.keyboard.press("u")
    wait_for_item(page, shown)
    assert current(page) == last
    page.wait_for_function("() => !document.getElementById('status').textContent.startsWith('sav')")
    assert label_of(server, owner, last) is None
    page.keyboard.press("Enter")  # the undone label is prefilled: Enter stores it again
    wait_for_item(page, last)

    for item_id, name in expected.items():
        assert label_of(server, owner, item_id) == {"class": name}
    assert label_of(server, owner, skipped) is None
