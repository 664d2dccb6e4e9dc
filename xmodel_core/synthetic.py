"""Synthetic keypoint data: a coloured kite on a textured background, its corners the keypoints.

Points (fractions of width / height): ``left``, ``right``, ``top``, ``bottom``; a horizontal flip
swaps ``left`` and ``right``. Kites are randomly sized, stretched and rotated, with a distractor
disc, so locating the corners needs real spatial features.
"""

from __future__ import annotations

import math

import torch

KITE_POINTS = ["left", "right", "top", "bottom"]
KITE_FLIP_PAIRS = [("left", "right")]


def _inside_convex(px: torch.Tensor, py: torch.Tensor, poly: torch.Tensor) -> torch.Tensor:
    """``[S, S]`` mask of pixel centres inside the convex polygon ``[V, 2]`` (clockwise on screen, y down)."""
    inside = torch.ones_like(px, dtype=torch.bool)
    for v in range(poly.shape[0]):
        x0, y0 = poly[v]
        x1, y1 = poly[(v + 1) % poly.shape[0]]
        cross = (x1 - x0) * (py - y0) - (y1 - y0) * (px - x0)
        inside &= cross >= 0
    return inside


def make_kites(n: int, size: int = 48, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` images uint8 ``[n, 3, size, size]`` and keypoints ``[n, 4, 2]`` (fractions)."""
    gen = torch.Generator().manual_seed(seed)
    coords = (torch.arange(size, dtype=torch.float32) + 0.5) / size
    py, px = torch.meshgrid(coords, coords, indexing="ij")
    images = torch.empty(n, 3, size, size, dtype=torch.uint8)
    points = torch.empty(n, 4, 2)

    def u(lo: float, hi: float) -> float:
        return lo + (hi - lo) * float(torch.rand((), generator=gen))

    for i in range(n):
        base = torch.rand(3, 1, 1, generator=gen) * 0.5
        texture = torch.rand(3, size // 4, size // 4, generator=gen) * 0.25
        img = (
            base
            + torch.nn.functional.interpolate(texture[None], size=(size, size), mode="bilinear")[0]
        )
        cx, cy = u(0.35, 0.65), u(0.35, 0.65)
        half_w, up, down = u(0.12, 0.28), u(0.12, 0.25), u(0.18, 0.32)
        angle = u(-0.45, 0.45)
        local = torch.tensor(
            [[-half_w, 0.0], [0.0, down], [half_w, 0.0], [0.0, -up]]
        )  # left, bottom, right, top
        rot = torch.tensor(
            [[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]]
        )
        poly = local @ rot.T + torch.tensor([cx, cy])
        # distractor disc, drawn first so the kite covers it
        dx, dy, r = u(0.1, 0.9), u(0.1, 0.9), u(0.05, 0.12)
        disc = (px - dx) ** 2 + (py - dy) ** 2 <= r * r
        img = torch.where(disc, torch.rand(3, 1, 1, generator=gen) * 0.6 + 0.2, img)
        # the polygon test wants clockwise order in image coordinates (y down): left, top, right, bottom
        mask = _inside_convex(px, py, poly[[0, 3, 2, 1]])
        colour = 0.55 + torch.rand(3, 1, 1, generator=gen) * 0.45
        img = torch.where(mask, colour, img)
        images[i] = (img.clamp(0, 1) * 255).round().to(torch.uint8)
        points[i] = poly[[0, 2, 3, 1]]  # left, right, top, bottom
    return images, points
