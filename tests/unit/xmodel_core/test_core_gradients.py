"""Gradients: every trainable parameter learns from the X-model loss; the reversal flips the sign."""

from __future__ import annotations

import functools
import operator

import pytest
import torch

from xmodel_core.data import LabelledSet
from xmodel_core.grl import GradientReversal, warmup_coefficient
from xmodel_core.trainer import Trainer


def _labelled(task, images):
    n = len(images)
    gen = torch.Generator().manual_seed(1)
    if task.kind == "classification":
        return LabelledSet(images, torch.randint(0, task.output_dim, (n,), generator=gen))
    if task.kind == "regression":
        return LabelledSet(images, torch.rand(n, task.output_dim, generator=gen) * 50)
    return LabelledSet(images, 0.2 + 0.6 * torch.rand(n, len(task.points), 2, generator=gen))


@pytest.mark.parametrize("method", ["xmodel", "mean_teacher"])
def test_every_trainable_parameter_gets_a_nonzero_gradient(
    task, method, make_model, make_images, make_train_config
):
    model = make_model(task)
    trainer = Trainer(model, task, make_train_config(method, 10))
    trainer.step = 5  # past the ramp-up's near-zero start, reversal coefficient > 0
    model.train()
    losses = trainer._loss(_labelled(task, make_images(6)), make_images(8, seed=3))
    assert all(torch.isfinite(v) for v in losses.values())
    functools.reduce(operator.add, losses.values()).backward()
    trainable = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    assert trainable
    no_grad = [name for name, p in trainable if p.grad is None or not bool(p.grad.abs().sum() > 0)]
    assert no_grad == []
    if method == "xmodel":
        assert set(losses) == {"supervised", "crossed", "minimax"}


@pytest.mark.parametrize("coeff", [1.0, 0.25])
def test_gradient_reversal_is_identity_forward_and_negates_scaled_gradient(coeff):
    x = torch.randn(4, 3, requires_grad=True)
    weight = torch.randn(4, 3)
    y = GradientReversal(coeff)(x)
    assert torch.equal(y, x)
    (y * weight).sum().backward()
    torch.testing.assert_close(x.grad, -coeff * weight)


def test_reversed_heads_forward_flips_extractor_gradient_only(make_task, make_model, make_images):
    task = make_task("regression")
    model = make_model(task).eval()  # eval: no dropout, the two passes see the same function
    model.reversal.coeff = 0.5
    images = make_images(4).float() / 255

    def grads(reverse: bool) -> tuple[torch.Tensor, torch.Tensor]:
        model.zero_grad()
        model.heads_forward(model.features(images), reverse=reverse).pow(2).sum().backward()
        return model.extractor.trunk[0].weight.grad.clone(), model.heads[0].net[
            1
        ].weight.grad.clone()

    plain_extractor, plain_head = grads(False)
    reversed_extractor, reversed_head = grads(True)
    assert plain_extractor.abs().sum() > 0
    torch.testing.assert_close(reversed_extractor, -0.5 * plain_extractor)
    torch.testing.assert_close(reversed_head, plain_head)


def test_warmup_coefficient_rises_from_zero_towards_one():
    values = [warmup_coefficient(p) for p in (0.0, 0.1, 0.5, 1.0)]
    assert values[0] == 0.0 and values == sorted(values) and 0.99 < values[-1] <= 1.0
