"""The label-efficiency benchmark's tuning phase: which points each method tries, that the
consistency weight reaches the trainer, and that the validation minimum is what gets chosen."""

from __future__ import annotations

import torch

from bench.datasets import Benchmark, kites
from bench.label_efficiency import (
    MINIMAX_PER_CONSISTENCY,
    TUNED_LIKE,
    Setting,
    candidates,
    method_overrides,
    settings,
    train_once,
    tune,
)


def test_every_semi_supervised_method_gets_a_joint_grid_and_supervised_a_wider_lr_grid() -> None:
    setting = settings(quick=False)["utkface_age"]
    assert candidates(setting, "supervised") == [(f, 0.0) for f in setting.supervised_lr_grid]
    assert len(setting.supervised_lr_grid) > len(setting.lr_grid)
    for method in ("mean_teacher", "xmodel"):
        points = candidates(setting, method)
        assert len(points) == len(setting.lr_grid) * len(setting.weight_grid) == len(set(points))
    assert TUNED_LIKE == {"xmodel_no_minimax": "xmodel"}


def test_the_weight_sets_consistency_and_the_xmodel_minimax_moves_with_it() -> None:
    assert method_overrides("supervised", 0.1) == {"method": "supervised"}
    assert method_overrides("mean_teacher", 0.3)["consistency_weight"] == 0.3
    full = method_overrides("xmodel", 0.1)
    assert full["consistency_weight"] == 0.1
    assert abs(full["minimax_weight"] - MINIMAX_PER_CONSISTENCY * 0.1) < 1e-12
    ablation = method_overrides("xmodel_no_minimax", 0.1)
    assert ablation["consistency_weight"] == 0.1 and ablation["minimax_weight"] == 0.0


def _tiny() -> tuple[Setting, Benchmark]:
    torch.set_num_threads(1)
    bench = kites(24, n_pool=60, n_val=16, n_test=16)
    setting = Setting(
        build=lambda: bench,
        budgets=[12],
        model={"backbone": "small_cnn", "image_size": 24, "pretrained": False},
        train={
            "steps": 3,
            "lr": 3e-3,
            "extractor_lr_scale": 1.0,
            "eval_every": 3,
            "batch_size": 4,
            "unlabelled_batch_size": 4,
        },
        lr_grid=[0.3, 3.0],
        weight_grid=[0.1, 1.0],
        supervised_lr_grid=[0.3, 1.0, 3.0],
    )
    return setting, bench


def test_a_run_records_the_weights_it_trained_with() -> None:
    setting, bench = _tiny()
    row = train_once(bench, torch.arange(12), setting, "xmodel", seed=0, lr_factor=3.0, weight=0.1)
    assert abs(row["lr"] - 9e-3) < 1e-12
    assert row["consistency_weight"] == 0.1
    assert abs(row["minimax_weight"] - MINIMAX_PER_CONSISTENCY * 0.1) < 1e-12
    assert row["val_error"] is not None and row["test_error"] >= 0


def test_tuning_tries_every_point_and_keeps_the_validation_minimum() -> None:
    setting, bench = _tiny()
    choice = tune(bench, setting, "xmodel")
    assert len(choice["val_error"]) == 4
    best_key = min(choice["val_error"], key=choice["val_error"].get)
    assert best_key == f"lr={3e-3 * choice['factor']:.4g} w={choice['weight']:g}"
    supervised = tune(bench, setting, "supervised")
    assert len(supervised["val_error"]) == 3 and supervised["weight"] == 0.0
