"""Fixtures for the labelling page: a live API process and headless Chromium (Debian's
package, driven by Playwright). Outside CI the browser tests skip when chromium is not
installed; in CI (CI=true) they fail instead, so a missing browser never passes silently."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from page_helpers import LiveServer, live_server

pytestmark = pytest.mark.integration


def chromium_path() -> str | None:
    for candidate in (os.environ.get("XM_CHROMIUM"), shutil.which("chromium"), "/usr/bin/chromium"):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with live_server(tmp_path_factory.mktemp("page-server")) as running:
        yield running


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    executable = chromium_path()
    if executable is None:
        reason = "Debian's chromium is not installed (apt-get install -y chromium; .ci/run does it)"
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(reason)
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
        launched = playwright.chromium.launch(
            executable_path=executable,
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1200, "height": 800})
    opened = context.new_page()

    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    # The page loads nothing the Content-Security-Policy refuses (nothing from another host).
    opened.on(
        "console",
        lambda message: (
            errors.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    yield opened
    context.close()
    assert not errors, f"the page raised: {errors}"
