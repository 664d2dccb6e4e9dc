"""The active-learning benchmark end to end on tiny data: a real embedded service (API +
Celery worker subprocess via scripts/run_embedded.py on a temp dir), a simulated annotator over
HTTP, two rounds per strategy. Checks the files it writes, not the figures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[3]


def _run_benchmark(
    env: dict[str, str], args: list[str], timeout: float
) -> subprocess.CompletedProcess[str]:
    """``python -m bench.active_learning --smoke`` with ``args``, its output captured."""
    return subprocess.run(
        [sys.executable, "-m", "bench.active_learning", "--smoke", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_active_learning_smoke(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("XM_")}  # a service of its own
    env |= {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    out = tmp_path / "results"
    done = _run_benchmark(
        env,
        ["--threads", "1", "--out-dir", str(out), "--data-dir", str(tmp_path / "service")],
        timeout=240,
    )
    log = tmp_path / "service" / "service.log"
    assert done.returncode == 0, (
        done.stdout[-3000:]
        + done.stderr[-3000:]
        + (log.read_text()[-3000:] if log.exists() else "")
    )

    document = json.loads((out / "active_learning_smoke.json").read_text())
    assert document["meta"]["mode"] == "smoke"
    strategies = document["meta"]["settings"]["kites_keypoints"]["strategies"]
    runs = document["runs"]
    assert sorted(r["strategy"] for r in runs) == sorted(strategies) and len(strategies) >= 3
    cold = document["cold_starts"]["kites_keypoints/0"]
    assert len(cold) == 10
    for run in runs:
        assert [r["labels"] for r in run["rounds"]] == [10, 20]
        first, second = run["rounds"]
        assert sorted(first["picked"]) == sorted(cold)  # one cold start shared by every strategy
        assert second["suggested_by"] == run["strategy"]  # no silent fallback to random
        assert len(set(first["picked"]) | set(second["picked"])) == 20
        assert all(
            isinstance(r["test_error"], float) and r["test_error"] >= 0 for r in run["rounds"]
        )
    first_errors = {r["rounds"][0]["test_error"] for r in runs}
    assert max(first_errors) - min(first_errors) < 1e-3  # same labels, same seed: same first model

    assert (out / "active_learning_smoke.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = (out / "active_learning_smoke.md").read_text()
    assert "| strategy | 10 | 20 | labels to reach random@max |" in table
    assert all(f"| {s} |" in table for s in strategies)

    # a run split over processes merges into one document; a run found twice counts once
    merged_dir = tmp_path / "merged"
    done = _run_benchmark(
        env,
        [
            "--out-dir",
            str(merged_dir),
            "--merge",
            str(out / "active_learning_smoke.json"),
            str(out / "active_learning_smoke.json"),
        ],
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    merged = json.loads((merged_dir / "active_learning_smoke.json").read_text())
    assert merged["runs"] == runs and merged["cold_starts"] == document["cold_starts"]
    assert (merged_dir / "active_learning_smoke.md").read_text() == table
    assert (merged_dir / "active_learning_smoke.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
