"""The owner's part of the labelling page in headless Chromium: upload a folder (with a
progress bar and each file's outcome), start training on a tiny project, watch the job finish
with a real worker process, then the counts, the learning curve and the model download."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from page_helpers import LiveServer, create_project, picture, worker_process

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_owner_uploads_a_folder_trains_and_downloads(
    page: Any, server: LiveServer, tmp_path: Path
) -> None:
    task = {"kind": "classification", "classes": ["warm", "cold"]}
    project_id, owner = create_project(server, task)
    with server.client(owner) as client:
        settings = {"training": {"steps": 6, "batch_size": 4, "eval_every": 3}}
        assert client.patch(f"/projects/{project_id}", json=settings).status_code == 200
    folder = tmp_path / "photos"
    (folder / "more").mkdir(parents=True)
    for i in range(6):
        (folder / ("more" if i % 2 else ".") / f"p{i}.png").write_bytes(picture(9900 + i))
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (folder / "notes.txt").write_text("not an image")

    # An owner starts labelling like anyone; the Project button opens the owner tools.
    page.goto(server.url + "/")
    page.fill("#signin-token", owner)
    page.fill("#signin-annotator", "olga")
    page.click("#signin-submit")
    page.wait_for_selector("#empty:visible")  # nothing to label yet
    page.click("#owner-toggle")
    page.set_input_files("#pick-folder", str(folder))
    page.wait_for_function(
        "() => document.getElementById('upload-summary').textContent.includes('created')"
    )
    assert page.locator("#upload-summary").inner_text() == (
        "6 created, 0 already in the project, 2 refused"
    )
    refused = page.locator("#upload-files tr.refused").all_inner_texts()
    assert any("broken.png" in row and "not a supported image" in row for row in refused), refused
    assert any("notes.txt" in row and "not an image" in row for row in refused), refused
    assert page.locator("#upload-progress").evaluate("bar => bar.value") == 1
    page.wait_for_function(  # the counts refresh once the upload has finished
        "() => document.getElementById('project-counts').textContent.includes('6 images, 0 labelled')"
    )

    # Back to labelling: label four (cold start), then train from the page.
    page.click("#owner-toggle")
    shown = sign_in_wait(page)
    for key in ("1", "2", "1", "2"):
        page.keyboard.press(key)
        shown = next_item(page, shown)
    page.click("#owner-toggle")
    with worker_process(server, tmp_path):
        page.click("#train")
        page.wait_for_function(
            "() => ['succeeded', 'failed', 'cancelled'].includes("
            "document.getElementById('job-status').dataset.status)",
            timeout=240_000,
        )
        assert page.locator("#job-status").get_attribute("data-status") == "succeeded", (
            page.locator("#job-status").inner_text()
        )
    page.wait_for_function("() => !document.getElementById('download-model').disabled")
    assert "active model" in page.locator("#project-counts").inner_text()
    assert page.locator("#learning-curve").is_visible()
    with page.expect_download() as download:
        page.click("#download-model")
    saved = tmp_path / "model.onnx"
    download.value.save_as(saved)
    assert download.value.suggested_filename.endswith(".onnx") and saved.stat().st_size > 1000
    if screens := os.environ.get("XM_PAGE_SCREENSHOTS"):
        page.screenshot(path=str(Path(screens) / "page-owner.png"))
    # With a model, what is queued next comes with its guesses (the item on screen stays as
    # it was: nothing changes under the annotator's hands).
    page.click("#owner-toggle")
    page.keyboard.press("s")
    page.wait_for_selector("#guess:visible")


def sign_in_wait(page: Any) -> int:
    page.wait_for_function("() => /^\\d+$/.test(document.body.dataset.itemId || '')")
    return int(page.evaluate("document.body.dataset.itemId"))


def next_item(page: Any, previous: int) -> int:
    page.wait_for_function(
        "old => { const id = document.body.dataset.itemId; return id && id !== old; }",
        arg=str(previous),
    )
    shown = page.evaluate("document.body.dataset.itemId")
    return -1 if shown == "none" else int(shown)
