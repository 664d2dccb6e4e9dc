"""Scoring reads the next batch's views while the model works on the current one."""

from __future__ import annotations

import threading

import pytest

from worker.training.scoring import read_ahead


def test_results_and_order_are_those_of_a_plain_loop() -> None:
    batches = [[1, 2], [3], [4, 5, 6]]
    got = list(read_ahead(iter(batches), sum))
    assert got == [([1, 2], 3), ([3], 3), ([4, 5, 6], 15)]
    assert list(read_ahead(iter([]), sum)) == []


def test_the_next_load_runs_while_the_caller_works_on_this_batch() -> None:
    started = {i: threading.Event() for i in range(3)}

    def load(i: int) -> int:
        started[i].set()
        return i * 10

    for i, loaded in read_ahead(iter(range(3)), load):
        assert loaded == i * 10
        if i < 2:  # without reading ahead, load(i + 1) would only start after this body
            assert started[i + 1].wait(timeout=30), f"load({i + 1}) did not start during batch {i}"


def test_a_failed_load_is_raised_to_the_caller() -> None:
    def load(i: int) -> int:
        if i == 1:
            raise OSError("unreadable entry")
        return i

    seen = []
    with pytest.raises(OSError, match="unreadable"):
        for i, _ in read_ahead(iter(range(3)), load):
            seen.append(i)
    assert seen == [0]
