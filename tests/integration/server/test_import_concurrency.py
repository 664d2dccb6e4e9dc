"""A large zip import must not stall or fail the other requests (SQLite has one write lock
per database file): while it runs, labels, stats and suggestions are answered, never with
"database is locked"."""

from __future__ import annotations

import io
import threading
import zipfile

import pytest
from PIL import Image

pytestmark = [pytest.mark.integration, pytest.mark.slow]

IMAGES = 1500


def many_tiny_pngs(count: int) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for i in range(count):
            image = Image.new("RGB", (8, 8), (i % 256, (i // 256) % 256, 7))
            png = io.BytesIO()
            image.save(png, format="PNG")
            archive.writestr(f"img/{i:05d}.png", png.getvalue())
    return buffer.getvalue()


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize("settings_overrides", [{"sqlite_busy_timeout_ms": 1000}])
def test_other_requests_are_served_during_a_large_import(
    api, backend: str, settings_overrides
) -> None:
    project_id, owner = api.create_project()
    seeded = api.upload(project_id, owner, [("seed.png", _png(1))]).json()
    item_id = seeded["items"][0]["item"]["id"]
    archive = many_tiny_pngs(IMAGES)
    outcome: dict[str, object] = {}

    def run_import() -> None:
        response = api.import_zip(project_id, owner, archive, name="big.zip")
        outcome["status"], outcome["body"] = response.status_code, response.json()

    importer = threading.Thread(target=run_import)
    importer.start()
    answered_while_importing, statuses = 0, list[int]()
    classes = ["cat", "dog"]
    try:
        while importer.is_alive():
            for response in (
                api.client.get(f"/projects/{project_id}/stats", headers=owner),
                api.client.put(
                    f"/items/{item_id}/label",
                    headers=owner,
                    json={"class": classes[len(statuses) % 2]},
                ),
                api.client.get(f"/projects/{project_id}/suggest", headers=owner, params={"k": 2}),
            ):
                statuses.append(response.status_code)
                assert response.status_code < 500, response.text
            if importer.is_alive():
                answered_while_importing += 1
    finally:
        importer.join()
    assert outcome["status"] == 201, outcome
    assert outcome["body"]["created"] == IMAGES  # type: ignore[index]
    assert set(statuses) == {200}
    # rounds of three requests completed while the import was still running
    assert answered_while_importing >= 3, (answered_while_importing, len(statuses))
    stats = api.client.get(f"/projects/{project_id}/stats", headers=owner).json()
    assert stats["items"] == IMAGES + 1 and stats["labelled"] == 1
    revisions = api.client.get(f"/items/{item_id}/label/revisions", headers=owner).json()
    assert len(revisions) == len(statuses) // 3 + (1 if len(statuses) % 3 >= 2 else 0)


def _png(seed: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (9, 9), (seed, 1, 2)).save(buffer, format="PNG")
    return buffer.getvalue()
