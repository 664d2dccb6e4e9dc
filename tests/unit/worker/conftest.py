"""What the worker passes ``job_config`` besides a project's settings, for a tiny CPU job.

Handed out as a fixture (a fresh dict each time), not imported from this file."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture
def job_args() -> dict[str, Any]:
    return {
        "backbone": "small_cnn",
        "image_size": 16,
        "output_dim": 2,
        "device": "cpu",
        "checkpoint_every": 7,
        "score_views": 4,
    }
