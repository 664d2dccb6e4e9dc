"""Gradient reversal with a warm-up schedule (Ganin & Lempitsky 2015, as used for minimax games).

Forward: identity. Backward: ``-coeff * grad``. With ``L = -η d(h(GRL(ψ(x))))`` the heads descend
``-η d`` (they *maximise* the discrepancy ``d``) while ψ receives ``+coeff·η ∇d`` (it
*minimises* ``d``): one backward pass plays both sides of the game.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class _ReverseGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, coeff: float) -> torch.Tensor:
        ctx.coeff = coeff
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return -ctx.coeff * grad, None


class GradientReversal(nn.Module):
    """Identity forward; multiplies the gradient by ``-coeff`` on the way back."""

    def __init__(self, coeff: float = 1.0) -> None:
        super().__init__()
        self.coeff = coeff

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _ReverseGrad.apply(x, self.coeff)


def warmup_coefficient(progress: float, gamma: float = 10.0) -> float:
    """DANN's schedule ``2 / (1 + exp(-γ p)) - 1``: 0 at the start, → 1 as progress p → 1."""
    progress = min(max(progress, 0.0), 1.0)
    return 2.0 / (1.0 + math.exp(-gamma * progress)) - 1.0
