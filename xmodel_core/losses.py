"""The X-model's losses. Shapes: ``H`` heads, ``B`` images, ``D`` output dims.

All comparisons happen in the task's bounded comparison space (``tasks.py``) after each view's
prediction has been mapped back to the original frame (``augment.keypoints_from_view``).
"""

from __future__ import annotations

import torch
from torch import nn

from .tasks import TaskSpec


def discrepancy(p: torch.Tensor, q: torch.Tensor, task: TaskSpec) -> torch.Tensor:
    """Per-sample distance ``[..., B]`` between two predictions ``[..., B, D]``.

    Classification: total variation ``½ Σ_c |p_c - q_c|`` (in [0, 1], as in MCD, Saito et al.
    2018); regression and keypoints: mean absolute difference over dims.
    """
    diff = (p - q).abs()
    if task.kind == "classification":
        return 0.5 * diff.sum(-1)
    return diff.mean(-1)


class SupervisedLoss(nn.Module):
    """``L_sup = 1/H Σ_h ℓ(h(ψ(x_weak)), y)``: every head learns every label.

    ℓ is cross-entropy (classification), smooth L1 on standardised targets (regression) or on
    coordinates with optional visibility weights (keypoints). ``raw`` is ``[H, B, D]``.
    """

    def __init__(self, task: TaskSpec) -> None:
        super().__init__()
        self.task = task

    def forward(
        self, raw: torch.Tensor, target: torch.Tensor, visible: torch.Tensor | None = None
    ) -> torch.Tensor:
        if self.task.kind == "keypoints":
            return self.task.supervised_loss(raw, target, visible)
        return self.task.supervised_loss(raw, target)


class CrossedConsistencyLoss(nn.Module):
    """The "X": head i on view a against head j on view b, for every i ≠ j.

    ``L_x = 1/(H(H-1)) Σ_{i≠j} 1/B Σ_b d(h_i(ψ(a(x_b))), h_j(ψ(b(x_b))))``

    with views a, b two strong augmentations (data noise) and heads with dropout (model noise),
    so the pair differs in both kinds of noise at once (Wang et al., ICLR 2022, arXiv 2110.04572). Inputs ``pred_a``, ``pred_b``
    are ``[H, B, D]`` in comparison space, already in the original frame. Gradients flow into
    both sides: neither view is a fixed target.
    """

    def __init__(self, task: TaskSpec) -> None:
        super().__init__()
        self.task = task

    def forward(self, pred_a: torch.Tensor, pred_b: torch.Tensor) -> torch.Tensor:
        heads = pred_a.shape[0]
        if heads < 2:
            return discrepancy(pred_a[0], pred_b[0], self.task).mean()
        terms = [
            discrepancy(pred_a[i], pred_b[j], self.task).mean()
            for i in range(heads)
            for j in range(heads)
            if i != j
        ]
        return torch.stack(terms).mean()


class MinimaxDiscrepancyLoss(nn.Module):
    """The minimax game, in one backward pass through a gradient reversal layer.

    Given heads applied to *reversed* features (``XModel.heads_forward(f, reverse=True)``):
    ``L_mm = -λ · L_x(h(GRL(ψ(a(x)))), h(GRL(ψ(b(x)))))``.
    The heads descend ``-λ L_x`` — they maximise the crossed discrepancy, seeking the directions
    in feature space where the labels leave room to disagree — while ψ, behind the reversal,
    descends ``+λ·c(t) L_x``: it moves features to where the heads cannot disagree. ``c(t)`` is
    the reversal's warm-up (``grl.warmup_coefficient``). Bounded comparison spaces keep the
    maximisation finite.
    """

    def __init__(self, task: TaskSpec) -> None:
        super().__init__()
        self.crossed = CrossedConsistencyLoss(task)

    def forward(self, reversed_a: torch.Tensor, reversed_b: torch.Tensor) -> torch.Tensor:
        return -self.crossed(reversed_a, reversed_b)


class MeanTeacherLoss(nn.Module):
    """Mean Teacher (Tarvainen & Valpola 2017) baseline: student on view a vs EMA teacher on view b.

    ``L_mt = 1/H Σ_h 1/B Σ_b ||s_h(a(x_b)) - t_h(b(x_b))||²`` with the teacher's output detached;
    inputs ``[H, B, D]`` in comparison space, in the original frame.
    """

    def forward(self, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        return (student - teacher.detach()).pow(2).mean(-1).mean()
