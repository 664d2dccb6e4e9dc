"""Task specifications: how labels become training targets and model outputs become labels.

Every task maps the heads' raw outputs ``[H, B, D]`` into a bounded *comparison space* in which
the supervised loss, the consistency losses and the disagreement scores are computed:

- classification: class probabilities (``D`` = number of classes);
- regression: standardised targets squashed by ``k * tanh(z / k)`` (``k`` = 4 std), bounded so
  that the heads' maximisation in the minimax game stays finite (Wang et al., ICLR 2022, arXiv 2110.04572);
- keypoints: ``(x, y)`` as fractions of the image width / height through a sigmoid
  (``D`` = 2K), so views can be mapped back to the original frame with an affine matrix.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F

REGRESSION_BOUND = 4.0  # standard deviations; outputs live in (-4, 4)


@dataclass
class ClassificationTask:
    """Single-label classification over named classes."""

    classes: list[str]
    kind: Literal["classification"] = field(default="classification", init=False)

    @property
    def output_dim(self) -> int:
        return len(self.classes)

    def to_comparison(self, raw: torch.Tensor) -> torch.Tensor:
        """Raw logits ``[..., C]`` -> probabilities ``[..., C]``."""
        return raw.softmax(dim=-1)

    def supervised_loss(self, raw: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Cross-entropy averaged over heads. ``raw`` [H, B, C], ``target`` [B] class ids."""
        heads = raw.shape[0]
        return F.cross_entropy(raw.flatten(0, 1), target.repeat(heads))

    def decode(self, comparison: torch.Tensor) -> torch.Tensor:
        """Probabilities stay probabilities (the export's output)."""
        return comparison

    def error(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Per-sample 0/1 error. ``prediction`` [B, C] decoded, ``target`` [B]."""
        return (prediction.argmax(-1) != target).float()

    def fit(self, targets: torch.Tensor) -> None:
        """Classification needs no statistics of the labelled data."""

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "classes": list(self.classes)}


@dataclass
class RegressionTask:
    """One or many real-valued targets, standardised with statistics of the labelled data."""

    targets: list[str]
    ranges: list[tuple[float, float]] | None = None
    mean: list[float] | None = None
    std: list[float] | None = None
    kind: Literal["regression"] = field(default="regression", init=False)

    @property
    def output_dim(self) -> int:
        return len(self.targets)

    def fit(self, targets: torch.Tensor) -> None:
        """Set mean / std from labelled targets ``[N, T]`` (std floored to stay finite)."""
        targets = targets.reshape(len(targets), -1).double()
        self.mean = targets.mean(0).tolist()
        std = targets.std(0, unbiased=False) if len(targets) > 1 else torch.ones(targets.shape[1])
        if self.ranges is not None:
            spans = torch.tensor([hi - lo for lo, hi in self.ranges], dtype=torch.float64)
            std = torch.maximum(std, spans / 100)
        self.std = torch.clamp(std, min=1e-3).tolist()

    def _stats(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.mean is None or self.std is None:
            raise ValueError("RegressionTask.fit(labels) must run before training or decoding")
        mean = torch.tensor(self.mean, dtype=like.dtype, device=like.device)
        std = torch.tensor(self.std, dtype=like.dtype, device=like.device)
        return mean, std

    def to_comparison(self, raw: torch.Tensor) -> torch.Tensor:
        """Raw ``[..., T]`` -> bounded standardised values ``k * tanh(raw / k)``."""
        return REGRESSION_BOUND * torch.tanh(raw / REGRESSION_BOUND)

    def encode(self, target: torch.Tensor) -> torch.Tensor:
        mean, std = self._stats(target)
        return (target.reshape(len(target), -1) - mean) / std

    def supervised_loss(self, raw: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Smooth L1 on standardised targets, every head. ``raw`` [H, B, T], ``target`` [B, T]."""
        z = self.encode(target).clamp(-REGRESSION_BOUND + 0.05, REGRESSION_BOUND - 0.05)
        return F.smooth_l1_loss(self.to_comparison(raw), z.expand_as(raw), beta=0.1)

    def decode(self, comparison: torch.Tensor) -> torch.Tensor:
        """Standardised values -> target units, clamped to the known range when there is one."""
        mean, std = self._stats(comparison)
        values = comparison * std + mean
        if self.ranges is not None:
            lo = torch.tensor([r[0] for r in self.ranges], dtype=values.dtype, device=values.device)
            hi = torch.tensor([r[1] for r in self.ranges], dtype=values.dtype, device=values.device)
            values = torch.maximum(torch.minimum(values, hi), lo)
        return values

    def error(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Per-sample absolute error averaged over targets (MAE in target units)."""
        return (prediction - target.reshape(len(target), -1)).abs().mean(-1)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "targets": list(self.targets),
            "ranges": [list(r) for r in self.ranges] if self.ranges else None,
            "mean": self.mean,
            "std": self.std,
        }


@dataclass
class KeypointTask:
    """Named 2-D points; labels are ``[B, K, 2]`` fractions of width / height, optional visibility.

    ``flip_pairs`` name the points that swap under a horizontal flip (left eye <-> right eye);
    without them, horizontal flips are not used as augmentation.
    """

    points: list[str]
    flip_pairs: list[tuple[str, str]] | None = None
    kind: Literal["keypoints"] = field(default="keypoints", init=False)

    @property
    def output_dim(self) -> int:
        return 2 * len(self.points)

    @property
    def flip_permutation(self) -> list[int] | None:
        """Index permutation that swaps left/right points, or None when flips are not allowed."""
        if self.flip_pairs is None:
            return None
        perm = list(range(len(self.points)))
        for a, b in self.flip_pairs:
            ia, ib = self.points.index(a), self.points.index(b)
            perm[ia], perm[ib] = ib, ia
        return perm

    def fit(self, targets: torch.Tensor) -> None:
        """Keypoints need no statistics: coordinates are already fractions of the image."""

    def to_comparison(self, raw: torch.Tensor) -> torch.Tensor:
        """Raw ``[..., 2K]`` -> coordinates in (0, 1) through a sigmoid."""
        return torch.sigmoid(raw)

    def supervised_loss(
        self, raw: torch.Tensor, target: torch.Tensor, visible: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Smooth L1 on coordinates. ``raw`` [H, B, 2K]; ``target`` [B, K, 2]; ``visible`` [B, K]."""
        pred = self.to_comparison(raw)
        tgt = target.reshape(len(target), -1).expand_as(pred)
        loss = F.smooth_l1_loss(pred, tgt, beta=0.02, reduction="none")
        if visible is not None:
            weight = visible.float().repeat_interleave(2, dim=-1).expand_as(loss)
            return (loss * weight).sum() / weight.sum().clamp(min=1)
        return loss.mean()

    def decode(self, comparison: torch.Tensor) -> torch.Tensor:
        return comparison

    def error(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Per-sample mean Euclidean distance, as a fraction of the image side."""
        pred = prediction.reshape(len(prediction), -1, 2)
        return (pred - target.reshape_as(pred)).norm(dim=-1).mean(-1)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "points": list(self.points),
            "flip_pairs": [list(p) for p in self.flip_pairs] if self.flip_pairs else None,
        }


TaskSpec = ClassificationTask | RegressionTask | KeypointTask


def task_from_json(data: dict[str, Any]) -> TaskSpec:
    """Rebuild a task (with its fitted statistics) from :meth:`to_json` output."""
    kind = data["kind"]
    if kind == "classification":
        return ClassificationTask(classes=list(data["classes"]))
    if kind == "regression":
        ranges = data.get("ranges")
        return RegressionTask(
            targets=list(data["targets"]),
            ranges=[tuple(r) for r in ranges] if ranges else None,
            mean=data.get("mean"),
            std=data.get("std"),
        )
    if kind == "keypoints":
        pairs = data.get("flip_pairs")
        return KeypointTask(
            points=list(data["points"]), flip_pairs=[tuple(p) for p in pairs] if pairs else None
        )
    raise ValueError(f"unknown task kind {kind!r}")


__all__ = ["ClassificationTask", "KeypointTask", "RegressionTask", "TaskSpec", "task_from_json"]
