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


def _losses_and_grads(task, make_model, make_images, config, seed: int = 0):
    """One step's losses and the gradient of the X-model terms (supervised left out)."""
    torch.manual_seed(seed)
    model = make_model(task)
    trainer = Trainer(model, task, config)
    trainer.step = 5
    model.eval()  # no dropout: the two configurations see the same function
    losses = trainer._loss(_labelled(task, make_images(6)), make_images(8, seed=3))
    (losses["crossed"] + losses["minimax"]).backward()
    grads = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
    return {k: float(v.detach()) for k, v in losses.items()}, grads


def test_crossed_stop_gradient_keeps_the_loss_and_changes_what_flows(
    make_task, make_model, make_images, make_train_config
):
    """The asymmetric crossed term has the same value; its gradient comes from view a only."""
    task = make_task("regression")
    both = make_train_config("xmodel", 10, minimax_weight=1e-9)
    fixed = make_train_config("xmodel", 10, minimax_weight=1e-9, crossed_stop_gradient=True)
    losses_both, grads_both = _losses_and_grads(task, make_model, make_images, both)
    losses_fixed, grads_fixed = _losses_and_grads(task, make_model, make_images, fixed)
    assert losses_fixed["crossed"] == pytest.approx(losses_both["crossed"])
    assert grads_fixed.abs().sum() > 0
    assert not torch.allclose(grads_fixed, grads_both)


def test_minimax_on_dropout_compares_the_heads_on_one_view(
    make_task, make_model, make_images, make_train_config
):
    """Model noise only: the game's two predictions share view a (in eval mode they differ by
    head alone), so its value changes while the crossed term does not."""
    task = make_task("regression")
    views = make_train_config("xmodel", 10)
    dropout = make_train_config("xmodel", 10, minimax_noise="dropout")
    losses_views, _ = _losses_and_grads(task, make_model, make_images, views)
    losses_dropout, _ = _losses_and_grads(task, make_model, make_images, dropout)
    assert losses_dropout["crossed"] == pytest.approx(losses_views["crossed"])
    assert losses_dropout["minimax"] != pytest.approx(losses_views["minimax"])
    with pytest.raises(ValueError, match="minimax_noise"):
        Trainer(make_model(task), task, make_train_config("xmodel", 10, minimax_noise="both"))
