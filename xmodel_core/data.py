"""In-memory image sets: uint8 tensors at the model's input size, plus their labels."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class LabelledSet:
    """``images`` uint8 ``[N, 3, S, S]``; ``targets``: class ids ``[N]`` (long), values ``[N, T]``
    (float) or keypoints ``[N, K, 2]`` (fractions of width / height); ``visible`` ``[N, K]``."""

    images: torch.Tensor
    targets: torch.Tensor
    visible: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def subset(self, index: torch.Tensor) -> LabelledSet:
        vis = self.visible[index] if self.visible is not None else None
        return LabelledSet(self.images[index], self.targets[index], vis)


def to_float(images: torch.Tensor, device: torch.device | str) -> torch.Tensor:
    """uint8 ``[B, 3, S, S]`` -> float ``[B, 3, S, S]`` in [0, 1] on ``device``."""
    return images.to(device, non_blocking=True).float().div_(255.0)


def split_train_val(
    n: int, val_fraction: float, seed: int, min_val: int = 1
) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded split of ``range(n)`` into train and validation indices (validation may be empty)."""
    gen = torch.Generator().manual_seed(seed)
    order = torch.randperm(n, generator=gen)
    n_val = max(min_val, round(n * val_fraction)) if n > 2 * min_val else 0
    return order[n_val:], order[:n_val]
