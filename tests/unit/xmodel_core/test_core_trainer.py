"""Training: exact resume from a checkpoint, and a few supervised steps lower the loss."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from xmodel_core.augment import NONE
from xmodel_core.data import LabelledSet
from xmodel_core.trainer import Progress, TrainConfig, Trainer


class Interrupt(Exception):
    """Raised from the progress callback: the worker's cancel path."""


def _classification_data(make_images) -> tuple[LabelledSet, torch.Tensor, LabelledSet]:
    labels = torch.arange(12) % 3
    images = make_images(12, seed=1)
    return (
        LabelledSet(images[:8], labels[:8]),
        make_images(8, seed=2),
        LabelledSet(images[8:], labels[8:]),
    )


@pytest.mark.parametrize("method", ["xmodel", "mean_teacher"])
def test_resume_from_checkpoint_equals_an_uninterrupted_run(
    method, make_task, make_model, make_images, make_train_config, tmp_path: Path
):
    task = make_task("classification")
    labelled, unlabelled, val = _classification_data(make_images)
    config = make_train_config(method, 6, eval_every=2, checkpoint_every=3, seed=4)

    straight = Trainer(make_model(task, seed=0), task, config)
    torch.manual_seed(123)  # dropout draws from the global RNG
    straight.fit(labelled, unlabelled, val)

    first = Trainer(make_model(task, seed=0), task, config)
    checkpoint = tmp_path / "run.ckpt"

    def stop_at_three(progress: Progress) -> None:
        if progress.step == 3:
            raise Interrupt

    torch.manual_seed(123)
    with pytest.raises(Interrupt):
        first.fit(labelled, unlabelled, val, callback=stop_at_three, checkpoint_path=checkpoint)
    assert checkpoint.exists()
    torch.manual_seed(999)  # the resumed run must not depend on the RNG state it starts in
    resumed = Trainer(
        make_model(task, seed=7), task, config
    )  # other initial weights: all come from the checkpoint
    result = resumed.fit(labelled, unlabelled, val, checkpoint_path=checkpoint)

    assert result.steps_done == 6 and resumed.history == straight.history
    for key, tensor in straight.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[key], tensor), key
    if method == "mean_teacher":
        assert straight.teacher is not None and resumed.teacher is not None
        for key, tensor in straight.teacher.state_dict().items():
            assert torch.equal(resumed.teacher.state_dict()[key], tensor), f"teacher {key}"
    for group_a, group_b in zip(
        straight.optimizer.state.values(), resumed.optimizer.state.values(), strict=True
    ):
        assert torch.equal(group_a["exp_avg"], group_b["exp_avg"])


@pytest.mark.parametrize("min_seconds", [0.0, 3600.0])
def test_checkpoints_wait_for_the_minimum_interval(
    min_seconds, make_task, make_model, make_images, make_train_config, tmp_path: Path
):
    """Due every 2 steps; with an hour's minimum interval none of a short run's is written,
    and the callback says which steps wrote one (the worker uploads exactly those)."""
    task = make_task("classification")
    labelled, unlabelled, val = _classification_data(make_images)
    config = make_train_config("supervised", 6, checkpoint_every=2, seed=4)
    config.checkpoint_min_seconds = min_seconds
    checkpoint = tmp_path / "run.ckpt"
    written: list[int] = []

    def record(progress: Progress) -> None:
        if progress.checkpointed:
            assert checkpoint.exists()
            written.append(progress.step)

    Trainer(make_model(task, seed=0), task, config).fit(
        labelled, unlabelled, val, callback=record, checkpoint_path=checkpoint
    )
    assert written == ([2, 4, 6] if min_seconds == 0 else [])
    assert checkpoint.exists() == (min_seconds == 0)


def test_a_few_supervised_steps_lower_the_loss(make_task, make_model):
    """Regression of a learnable quantity: the target is the image's mean brightness."""
    task = make_task("regression")
    gen = torch.Generator().manual_seed(0)
    level = torch.rand(32, generator=gen)
    images = (level.view(-1, 1, 1, 1) * 255 * torch.ones(32, 3, 16, 16)).to(torch.uint8)
    targets = torch.stack([level * 100, level * 2.5], dim=1)
    task.fit(targets)
    labelled = LabelledSet(images, targets)
    model = make_model(task, dropout=0.0)
    config = TrainConfig(
        method="supervised", steps=25, batch_size=8, lr=5e-3, weak=NONE, device="cpu"
    )
    trainer = Trainer(model, task, config)

    def eval_loss() -> float:
        model.eval()
        with torch.no_grad():
            return float(task.supervised_loss(model(images.float() / 255), targets))

    before = eval_loss()
    losses: list[float] = []
    trainer.fit(labelled, callback=lambda p: losses.append(p.losses["supervised"]))
    after = eval_loss()
    assert len(losses) == 25 and all(torch.isfinite(torch.tensor(losses)))
    assert after < 0.6 * before, (before, after)
    assert sum(losses[-5:]) < sum(losses[:5])


@pytest.mark.parametrize("method", ["xmodel", "mean_teacher"])
def test_bn_stats_from_labelled_keeps_strong_views_out_of_the_running_statistics(
    method, make_task, make_model, make_images, make_train_config
):
    """With ``bn_stats_from_labelled`` a pool of saturated images does not move the running
    statistics (test-time normalisation comes from the labelled batch); without it, it does."""
    task = make_task("classification")
    labelled, _, _ = _classification_data(make_images)
    dark = torch.zeros(8, 3, 16, 16, dtype=torch.uint8)
    bright = torch.full((8, 3, 16, 16), 255, dtype=torch.uint8)

    def running_means(pool: torch.Tensor, split: bool) -> torch.Tensor:
        config = make_train_config(
            method, 1, seed=3, rampup_fraction=0.0, bn_stats_from_labelled=split
        )
        trainer = Trainer(make_model(task, seed=0), task, config)
        torch.manual_seed(5)
        trainer.fit(LabelledSet(labelled.images, labelled.targets), pool)
        norms = [
            m
            for m in trainer.model.modules()
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
        ]
        assert norms and all(m.momentum != 0.0 for m in norms)  # the momentum is restored
        return torch.cat([m.running_mean for m in norms if m.running_mean is not None])

    assert torch.equal(running_means(dark, True), running_means(bright, True))
    assert not torch.allclose(running_means(dark, False), running_means(bright, False))


def test_training_on_a_cpu_runs_in_nhwc_and_hands_back_default_layout_weights(
    make_task, make_model, make_images, make_train_config, tmp_path: Path
):
    """Convolutions train in channels-last order on a CPU (oneDNN's own layout); afterwards every
    weight is contiguous again, as safetensors and the exporters need."""
    from safetensors.torch import save_file

    task = make_task("classification")
    labelled, unlabelled, val = _classification_data(make_images)
    model = make_model(task)
    conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    layouts: list[bool] = []

    def record(_: Progress) -> None:
        layouts.append(conv.weight.is_contiguous(memory_format=torch.channels_last))

    Trainer(model, task, make_train_config("xmodel", 3, eval_every=2)).fit(
        labelled, unlabelled, val, callback=record
    )
    assert layouts == [True, True, True]
    assert all(t.is_contiguous() for t in model.state_dict().values())
    save_file(model.state_dict(), str(tmp_path / "model.safetensors"))
