"""Augmentation moves keypoint labels with the image, and views map back to the original frame."""

from __future__ import annotations

import torch

from xmodel_core.augment import (
    STRONG,
    AugmentConfig,
    Views,
    augment,
    keypoints_from_view,
    keypoints_to_view,
)
from xmodel_core.tasks import KeypointTask

SIZE = 48
TASK = KeypointTask(
    points=["left_eye", "right_eye", "nose"], flip_pairs=[("left_eye", "right_eye")]
)
POINTS = torch.tensor([[0.36, 0.40], [0.66, 0.42], [0.50, 0.62]])  # one colour channel each


def _dots(batch: int) -> torch.Tensor:
    """Images ``[B, 3, S, S]`` with a small Gaussian dot of point k in channel k."""
    centres = (torch.arange(SIZE) + 0.5) / SIZE  # pixel centres as fractions (align_corners=False)
    images = torch.zeros(batch, 3, SIZE, SIZE)
    for k, (x, y) in enumerate(POINTS.tolist()):
        d2 = (centres.view(1, -1) - x) ** 2 + (centres.view(-1, 1) - y) ** 2
        images[:, k] = torch.exp(-d2 * SIZE**2 / (2 * 1.2**2))
    return images


def _brightest(channel: torch.Tensor) -> torch.Tensor:
    """(x, y) of the brightest pixel's centre, as fractions of the side."""
    flat = int(channel.flatten().argmax())
    row, col = divmod(flat, SIZE)
    return torch.tensor([(col + 0.5) / SIZE, (row + 0.5) / SIZE])


def test_keypoint_labels_follow_rotated_and_flipped_images():
    cfg = AugmentConfig(hflip=True, max_rotate=30.0, max_translate=0.08, scale=(0.9, 1.1))
    batch = 12
    views = augment(_dots(batch), cfg, torch.Generator().manual_seed(0))
    assert views.flipped.any() and (~views.flipped).any(), "need both flipped and plain views"
    angles = torch.atan2(views.theta[:, 1, 0], views.theta[:, 1, 1]).abs()
    assert (angles > 0.2).any(), "need a real rotation"
    labels = keypoints_to_view(POINTS.expand(batch, -1, -1), views, TASK.flip_permutation)
    perm = TASK.flip_permutation
    assert perm is not None
    for b in range(batch):
        for k in range(len(TASK.points)):
            # on a flipped view, the label "left_eye" sits where the original's right eye landed
            source = perm[k] if bool(views.flipped[b]) else k
            found = _brightest(views.images[b, source])
            assert (found - labels[b, k]).abs().max() <= 1.5 / SIZE, (b, k, found, labels[b, k])


def test_keypoints_from_view_inverts_keypoints_to_view():
    gen = torch.Generator().manual_seed(1)
    points = torch.rand(16, 3, 2, generator=gen)
    views = augment(torch.rand(16, 3, 8, 8, generator=gen), STRONG, gen)
    assert views.flipped.any()
    perm = TASK.flip_permutation
    assert perm is not None
    moved = keypoints_to_view(points, views, perm)
    assert not torch.allclose(moved, points, atol=1e-3)
    torch.testing.assert_close(keypoints_from_view(moved, views, perm), points, atol=1e-5, rtol=0)
    stacked = torch.stack([moved, moved])  # [heads, B, K, 2] maps back head by head
    torch.testing.assert_close(
        keypoints_from_view(stacked, views, perm), torch.stack([points, points]), atol=1e-5, rtol=0
    )


def test_pure_horizontal_flip_swaps_left_and_right_names():
    theta = torch.tensor([[[-1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])
    views = Views(torch.zeros(1, 3, 4, 4), theta, torch.tensor([True]))
    moved = keypoints_to_view(POINTS.unsqueeze(0), views, TASK.flip_permutation)[0]
    expected = torch.tensor([[1 - 0.66, 0.42], [1 - 0.36, 0.40], [1 - 0.50, 0.62]])
    torch.testing.assert_close(moved, expected)
