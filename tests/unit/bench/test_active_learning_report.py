"""The active-learning report and split runs: labels-to-reach, each strategy compared with random
on its own seeds (counted, and paired seed by seed), merging only some seeds, and a cold start
shared through another process's result file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.active_learning import (
    labels_to_reach,
    merge,
    paired_differences,
    table,
    wait_for_cold_start,
)


def _run(strategy: str, seed: int, errors: list[float]) -> dict:
    return {
        "dataset": "fashion_mnist",
        "strategy": strategy,
        "seed": seed,
        "rounds": [{"labels": 50 * (i + 1), "test_error": e} for i, e in enumerate(errors)],
    }


def test_labels_to_reach_interpolates_and_says_never() -> None:
    curve = [(50, 40.0), (100, 30.0), (150, 20.0)]
    assert labels_to_reach(curve, 25.0) == 125.0
    assert labels_to_reach(curve, 45.0) == 50.0
    assert labels_to_reach(curve, 10.0) is None


def test_table_counts_each_strategys_seeds() -> None:
    runs = [_run("random", s, [40, 30, 20 + s]) for s in range(5)]
    runs += [_run("xmodel", s, [40, 25, 19]) for s in range(3)]
    lines = table(runs, "fashion_mnist", "test_error", "overall")
    assert lines[2].endswith("| within 1 std of random | seeds | paired with random |")
    row = {line.split(" | ")[0].lstrip("| "): line for line in lines[4:] if line}
    assert row["random"].endswith("| – | 5 | – |")
    # xmodel ran seeds 0-2, where random's last mean is 21.0 (std 1.0), not the 22.0 of all 5:
    # it passes 21 between 100 (25) and 150 labels (19)
    assert "| 133 (89%) | yes (worst -2.0 std) | 3 |" in row["xmodel"]
    # paired on seeds 0-2 at 100 and 150 labels: 25 vs 30 (x3), 19 vs 20, 21, 22
    assert row["xmodel"].endswith("| better in 6/6, mean -3.50 |")


def test_paired_differences_match_seed_and_budget() -> None:
    runs = [
        _run("random", 0, [40, 30, 20]),
        _run("random", 1, [40, 30, 22]),
        _run("xmodel", 1, [40, 31, 21]),
        _run("xmodel", 2, [40, 10, 10]),
    ]
    # only seed 1 ran both; the cold start (first round) is left out
    assert paired_differences(runs, "fashion_mnist", "test_error", "xmodel") == [1.0, -1.0]


def test_merge_keeps_only_the_chosen_seeds(tmp_path: Path) -> None:
    meta = {"mode": "smoke", "settings": {}}
    runs = [_run("random", s, [40, 30]) for s in range(5)]
    cold = {f"fashion_mnist/{s}": [s] for s in range(5)}
    source = tmp_path / "a.json"
    source.write_text(json.dumps({"meta": meta, "cold_starts": cold, "runs": runs}))
    out = tmp_path / "out" / "merged.json"
    out.parent.mkdir()
    merge([source], out, seed_ids=[0, 2])
    merged = json.loads(out.read_text())
    assert sorted(r["seed"] for r in merged["runs"]) == [0, 2]
    assert sorted(merged["cold_starts"]) == ["fashion_mnist/0", "fashion_mnist/2"]
    assert merged["meta"]["seed_ids"] == [0, 2]


def test_wait_for_cold_start_reads_another_processs_file(tmp_path: Path) -> None:
    path = tmp_path / "other.json"
    path.write_text(json.dumps({"cold_starts": {"kites_keypoints/1": [4, 2, 7]}}))
    assert wait_for_cold_start(path, "kites_keypoints/1", print, poll=0.01) == [4, 2, 7]
    with pytest.raises(SystemExit, match="no cold start kites_keypoints/2"):
        wait_for_cold_start(path, "kites_keypoints/2", print, poll=0.01, timeout=0.05)
