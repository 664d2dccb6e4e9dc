"""A real Label Studio (its own virtual environment, SQLite in a temporary folder), the
embedded annotation service and the bridge, shared by the module's tests.

Outside CI the tests skip when Label Studio is not installed (``make label-studio`` installs
it); in CI (CI=true) they fail instead, so a missing Label Studio never passes silently."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from bench.label_studio_live import (
    Stack,
    bridge,
    label_studio,
    label_studio_executable,
    xmodel_service,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TRAINING = {"steps": 12, "batch_size": 8, "unlabelled_batch_size": 8, "eval_every": 6}
PROJECT = {"image_size": 16, "backbone": "small_cnn", "training": TRAINING, "retrain_every": 4}


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    if label_studio_executable() is None and not os.environ.get("XM_LABEL_STUDIO_URL"):
        reason = "Label Studio is not installed (make label-studio; .ci/run does it)"
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(reason)
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("label-studio-bridge")
    (root / "ls").mkdir()
    (root / "xm").mkdir()
    (root / "br").mkdir()
    with (
        xmodel_service(root / "xm") as (xmodel_url, admin_token),
        label_studio(root / "ls") as studio,
        bridge(root / "br", xmodel_url, admin_token, PROJECT) as bridge_url,
    ):
        yield Stack(studio, xmodel_url, admin_token, bridge_url)
