"""The frozen-trunk cache: exact split of the extractor, fixed views per image, cache hits,
recovery from damaged entries, the LRU trim, and training on cached views."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from xmodel_core.augment import STRONG, WEAK, keypoints_from_view, keypoints_to_view
from xmodel_core.data import LabelledSet
from xmodel_core.model import ModelConfig, XModel
from xmodel_core.predict import cached_view_predictions
from xmodel_core.tasks import KeypointTask, RegressionTask
from xmodel_core.trainer import TrainConfig, Trainer, TrainingViews
from xmodel_core.trunk_cache import (
    BuildStats,
    CachedViews,
    TrunkCache,
    ViewKind,
    ViewPlan,
    batch_views,
    cached_views,
    onnx_top,
    torch_trunk,
)

SIZE = 16


def small_model(output_dim: int = 1, frozen: int = 4) -> XModel:
    torch.manual_seed(0)
    config = ModelConfig(
        backbone="small_cnn",
        output_dim=output_dim,
        image_size=SIZE,
        pretrained=False,
        freeze_blocks=frozen,
    )
    return XModel(config)


def images(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(
        0, 256, (n, 3, SIZE, SIZE), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8
    )


def shas(n: int) -> list[str]:
    return [f"{i:064x}" for i in range(n)]


PLAN = ViewPlan(WEAK, STRONG, weak_views=3, strong_views=2)


def test_trunk_then_trainable_part_equals_the_whole_extractor() -> None:
    model = small_model().eval()
    x = images(5).float() / 255
    with torch.no_grad():
        assert torch.allclose(
            model.features_from_trunk(model.trunk(x)), model.features(x), atol=1e-6
        )


def test_each_image_gets_its_own_views_whatever_it_is_computed_with() -> None:
    x = images(3).float() / 255
    first = batch_views(x, shas(3), "strong", PLAN)
    again = batch_views(x, shas(3), "strong", PLAN)
    assert first.images.shape == (6, 3, SIZE, SIZE)
    assert torch.equal(first.images, again.images) and torch.equal(first.theta, again.theta)
    # the last two images computed without the first: the same views, pixel for pixel
    alone = batch_views(x[1:], shas(3)[1:], "strong", PLAN)
    assert torch.equal(alone.theta, first.theta[2:]) and torch.equal(alone.images, first.images[2:])
    # another image (another sha256) gets other views; so does another kind
    other = batch_views(x[:1], shas(4)[3:], "strong", PLAN)
    assert not torch.equal(other.theta, first.theta[:2])
    assert not torch.equal(batch_views(x, shas(3), "weak", PLAN).theta[:2], first.theta[:2])
    plain = batch_views(x, shas(3), "plain", PLAN)
    assert torch.equal(plain.images, x) and not plain.flipped.any()


def test_cache_hits_return_the_computed_views(tmp_path: Path) -> None:
    model = small_model().eval()
    pics = images(6)
    loads: list[list[int]] = []

    def load(indices: list[int]) -> torch.Tensor:
        loads.append(indices)
        return pics[indices]

    cache = TrunkCache(tmp_path, max_bytes=10**9)
    stats = BuildStats()
    key = PLAN.key(model)
    first = cached_views(
        shas(6), "weak", PLAN, key, load, torch_trunk(model), cache, batch_size=18, stats=stats
    )
    assert first.trunk.shape[:2] == (6, 3) and first.trunk.dtype == torch.float16
    assert stats.computed == 6 and stats.hits == 0
    loads.clear()
    second = cached_views(shas(6), "weak", PLAN, key, load, torch_trunk(model), cache, stats=stats)
    assert loads == [] and stats.hits == 6  # nothing decoded, nothing recomputed
    assert torch.equal(first.trunk, second.trunk) and torch.equal(first.theta, second.theta)
    # the cached activations are what the model computes on that view
    view = batch_views(pics.float() / 255, shas(6), "weak", PLAN)
    with torch.no_grad():
        direct = model.trunk(view.images[6:9])
    assert torch.allclose(first.trunk[2].float(), direct, atol=1e-2, rtol=1e-2)


def test_a_damaged_entry_is_recomputed_and_the_trim_keeps_the_newest(tmp_path: Path) -> None:
    model = small_model().eval()
    pics = images(4)
    cache = TrunkCache(tmp_path, max_bytes=10**9)
    key = PLAN.key(model)
    cached_views(shas(4), "plain", PLAN, key, lambda i: pics[i], torch_trunk(model), cache)
    files = sorted(tmp_path.rglob("*.safetensors"))
    assert len(files) == 4
    files[0].write_bytes(b"not a safetensors file")
    stats = BuildStats()
    cached_views(
        shas(4), "plain", PLAN, key, lambda i: pics[i], torch_trunk(model), cache, stats=stats
    )
    assert stats.computed == 1 and stats.hits == 3
    for age, path in enumerate(sorted(tmp_path.rglob("*.safetensors"))):
        os.utime(path, (1_000_000 + age, 1_000_000 + age))
    size = files[-1].stat().st_size
    cache.max_bytes = 2 * size
    assert cache.trim() <= 2 * size
    assert sorted(tmp_path.rglob("*.safetensors")) == sorted(files)[2:]


def test_the_cache_key_follows_the_frozen_weights() -> None:
    model = small_model()
    key = PLAN.key(model)
    assert PLAN.key(small_model()) == key
    with torch.no_grad():
        next(model.extractor.parameters()).add_(1.0)  # e.g. a warm start from other weights
    assert PLAN.key(model) != key


def test_keypoints_map_through_cached_views() -> None:
    pics = images(2)
    plan = ViewPlan(WEAK, STRONG, weak_views=4, strong_views=4)
    views = batch_views(pics[:1].float() / 255, shas(1), "strong", plan)
    points = torch.rand(4, 3, 2) * 0.5 + 0.25
    back = keypoints_from_view(keypoints_to_view(points, views, None), views, None)
    assert torch.allclose(back, points, atol=1e-5)


def test_scoring_through_onnxruntime_matches_torch() -> None:
    """Pool scoring runs the trainable stages in onnxruntime: same predictions (keypoints
    mapped back from every view) and features as the model itself."""
    task = KeypointTask(points=["a", "b", "c"], flip_pairs=[("a", "b")])
    model = small_model(output_dim=task.output_dim)
    pics = images(6).float() / 255
    trunk = torch_trunk(model)
    plain = cached_views(shas(6), "plain", PLAN, "k", lambda j: pics[j], trunk, None)
    strong = cached_views(shas(6), "strong", PLAN, "k", lambda j: pics[j], trunk, None)
    expected = cached_view_predictions(model, task, plain, strong)
    got = cached_view_predictions(model, task, plain, strong, onnx_top(model, plain.trunk[:, 0]))
    assert got[0].shape == (1 + PLAN.strong_views, 2, 6, task.output_dim)
    for a, b in zip(got, expected, strict=True):
        assert torch.allclose(a, b, atol=1e-4)


@pytest.mark.parametrize("method", ["supervised", "xmodel", "mean_teacher"])
def test_training_on_cached_views(method: str, tmp_path: Path) -> None:
    model = small_model()
    task = RegressionTask(["y"])
    pics = images(24)
    targets = pics.float().mean(dim=(1, 2, 3)).unsqueeze(1)
    task.fit(targets[:16])
    key = PLAN.key(model)
    trunk = torch_trunk(model)

    def build(ids: list[int], kind: ViewKind) -> CachedViews:
        def load(j: list[int]) -> torch.Tensor:
            return pics[[ids[k] for k in j]]

        return cached_views([shas(24)[i] for i in ids], kind, PLAN, key, load, trunk, None)

    train, val, unl = list(range(12)), list(range(12, 16)), list(range(16, 24))
    views = TrainingViews(build(train, "weak"), build(unl + train, "strong"), build(val, "plain"))
    labelled = LabelledSet(torch.empty(12, 0, dtype=torch.uint8), targets[:12])
    val_set = LabelledSet(pics[12:16], targets[12:16])
    trainer = Trainer(
        model,
        task,
        TrainConfig(
            method=method,
            steps=6,
            batch_size=4,
            unlabelled_batch_size=4,
            eval_every=3,
            device="cpu",
        ),
    )
    before = [p.detach().clone() for p in model.parameters() if p.requires_grad]
    result = trainer.fit(labelled, None, val_set, views=views)
    assert result.steps_done == 6 and result.best_val_error is not None
    assert all(torch.isfinite(torch.tensor(list(h.values()))).all() for h in trainer.history)
    after = [p for p in model.parameters() if p.requires_grad]
    assert any(not torch.equal(a, b) for a, b in zip(after, before, strict=True))
    # the frozen stages did not move: the cache stays valid
    assert PLAN.key(model) == key


def test_cached_views_must_line_up() -> None:
    model = small_model()
    task = KeypointTask(["a", "b"])
    pics = images(4)
    key = PLAN.key(model)
    v = cached_views(shas(4), "weak", PLAN, key, lambda j: pics[j], torch_trunk(model), None)
    labelled = LabelledSet(torch.empty(3, 0, dtype=torch.uint8), torch.rand(3, 2, 2))
    trainer = Trainer(model, task, TrainConfig(method="supervised", steps=1, device="cpu"))
    with pytest.raises(ValueError, match="one entry per labelled image"):
        trainer.fit(labelled, None, None, views=TrainingViews(v))
    unfrozen = Trainer(
        small_model(frozen=0), task, TrainConfig(method="supervised", steps=1, device="cpu")
    )
    with pytest.raises(ValueError, match="frozen stages"):
        unfrozen.fit(labelled, None, None, views=TrainingViews(v.subset(torch.arange(3))))
