"""Batched inference: plain predictions, views mapped back to the original frame, MC dropout."""

from __future__ import annotations

from typing import cast

import torch
from torch import nn

from xmodel_core.augment import AugmentConfig
from xmodel_core.model import ModelConfig, XModel
from xmodel_core.predict import collect_view_predictions, mc_dropout_predictions, predict_comparison
from xmodel_core.tasks import KeypointTask


def test_predict_comparison_matches_the_model_in_eval_mode_whatever_the_batch_size(
    task, make_model, make_images
):
    model = make_model(task).train()
    images = make_images(7)
    preds = predict_comparison(model, task, images, batch_size=3)
    assert preds.shape == (2, 7, task.output_dim)
    assert model.training, "the caller's mode is restored"
    with torch.no_grad():
        expected = task.to_comparison(model.eval()(images.float() / 255))
    torch.testing.assert_close(preds, expected)
    torch.testing.assert_close(predict_comparison(model, task, images, batch_size=256), preds)


def test_view_predictions_start_with_the_plain_image(task, make_model, make_images):
    model = make_model(task)
    images = make_images(5)
    preds, features = collect_view_predictions(model, task, images, n_views=3, seed=0, batch_size=2)
    assert preds.shape == (3, 2, 5, task.output_dim)
    assert features.shape == (5, 128)
    torch.testing.assert_close(preds[0], predict_comparison(model, task, images))
    assert not torch.allclose(preds[1], preds[0]), "augmented views change the prediction"
    again, _ = collect_view_predictions(model, task, images, n_views=3, seed=0, batch_size=2)
    assert torch.equal(again, preds), "seeded"


SIZE = 32
TASK = KeypointTask(points=["left", "right"], flip_pairs=[("left", "right")])
POINTS = torch.tensor([0.35, 0.40, 0.62, 0.55])  # x0, y0, x1, y1


class DotLocator(nn.Module):
    """An exact keypoint "model": the two dots' intensity centroids, "left" being the one at smaller x.

    Like a real model it names points by how they look in the image (a flipped right eye looks
    like a left eye), so its predictions are right in every view and, mapped back, must agree.
    """

    def __init__(self) -> None:
        super().__init__()
        self.config = ModelConfig(backbone="small_cnn", output_dim=4, num_heads=2, image_size=SIZE)
        self.anchor = nn.Parameter(torch.zeros(1))  # gives the module a device

    def features(self, images: torch.Tensor) -> torch.Tensor:
        centres = (torch.arange(SIZE, dtype=images.dtype) + 0.5) / SIZE
        weight = images[:, :2].pow(4)
        weight = weight / weight.sum(dim=(2, 3), keepdim=True)
        x = (weight.sum(2) * centres).sum(-1)
        y = (weight.sum(3) * centres).sum(-1)
        dots = torch.stack([x, y], -1)  # [B, 2 dots, 2]
        swap = (dots[:, 0, 0] > dots[:, 1, 0]).view(-1, 1, 1)
        return torch.where(swap, dots.flip(1), dots).flatten(1)  # [B, 4] = x0, y0, x1, y1

    def heads_forward(self, features: torch.Tensor) -> torch.Tensor:
        return torch.logit(features).unsqueeze(0).expand(2, -1, -1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.heads_forward(self.features(images))


def _dot_images(n: int) -> torch.Tensor:
    centres = (torch.arange(SIZE) + 0.5) / SIZE
    images = torch.zeros(n, 3, SIZE, SIZE)
    for k in range(2):
        x, y = POINTS[2 * k].item(), POINTS[2 * k + 1].item()
        d2 = (centres.view(1, -1) - x) ** 2 + (centres.view(-1, 1) - y) ** 2
        images[:, k] = torch.exp(-d2 * SIZE**2 / (2 * 1.5**2))
    return (images * 255).round().to(torch.uint8)


def test_keypoint_views_are_mapped_back_to_the_original_frame():
    cfg = AugmentConfig(hflip=True, max_rotate=25.0, max_translate=0.08, scale=(0.9, 1.1))
    preds, _ = collect_view_predictions(
        cast(XModel, DotLocator()), TASK, _dot_images(6), n_views=5, augment_cfg=cfg, seed=3
    )
    assert preds.shape == (5, 2, 6, 4)
    torch.testing.assert_close(preds[0], POINTS.expand(2, 6, 4), atol=0.01, rtol=0)
    # flips and rotations moved the dots; mapped back (names swapped on flips) they agree
    torch.testing.assert_close(preds, POINTS.expand(5, 2, 6, 4), atol=0.02, rtol=0)


def test_mc_dropout_samples_differ_keep_batch_norm_frozen_and_are_seeded(
    make_task, make_model, make_images
):
    task = make_task("regression")
    model = make_model(task, dropout=0.5).train()
    images = make_images(6)
    running_mean = model.extractor.trunk[1].running_mean.clone()
    rng_before = torch.get_rng_state()
    samples = mc_dropout_predictions(model, task, images, samples=4, seed=7, batch_size=4)
    assert samples.shape == (4, 6, task.output_dim)
    assert torch.isfinite(samples).all()
    assert samples.var(0).min() > 0, "dropout is active"
    assert torch.equal(model.extractor.trunk[1].running_mean, running_mean), "batch norm in eval"
    assert torch.equal(torch.get_rng_state(), rng_before), "global RNG untouched"
    assert model.training
    assert torch.equal(
        mc_dropout_predictions(model, task, images, samples=4, seed=7, batch_size=4), samples
    )
    # with the dropout masks switched off every sample equals the plain, head-averaged prediction
    plain = predict_comparison(model, task, images).mean(0)
    no_dropout = make_model(task, dropout=0.0)
    no_dropout.load_state_dict(model.state_dict())
    torch.testing.assert_close(
        mc_dropout_predictions(no_dropout, task, images, samples=2), plain.expand(2, -1, -1)
    )
