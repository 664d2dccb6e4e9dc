"""Batched, label-aware augmentation with known parameters.

Each view is an affine warp (rotation, scale, translation, optional horizontal flip) done with
``affine_grid`` / ``grid_sample`` on the whole batch, plus photometric noise. We sample the
parameters ourselves and keep the matrix ``theta`` ``[B, 2, 3]`` (output -> input coordinates in
the ``[-1, 1]`` frame), so that

- keypoint labels move with the image (``keypoints_to_view``), and
- a view's keypoint prediction is mapped back to the original frame (``keypoints_from_view``)
  before two views are compared as the X-model's crossed consistency needs (Wang et al., ICLR 2022, arXiv 2110.04572).

Batched warps instead of per-image ``torchvision.transforms.v2`` calls: one kernel per batch
keeps CPU training fast and gives the exact matrix for the inverse mapping.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class AugmentConfig:
    """Ranges for one kind of view. Angles in degrees; translation as a fraction of the side."""

    hflip: bool = True
    max_rotate: float = 0.0
    max_translate: float = 0.0
    scale: tuple[float, float] = (1.0, 1.0)
    colour: float = 0.0  # strength of brightness / contrast / saturation jitter
    cutout: float = 0.0  # probability of one grey square of 1/4-1/2 of the side
    noise: float = 0.0  # std of additive Gaussian noise


WEAK = AugmentConfig(hflip=True, max_translate=0.08, scale=(0.95, 1.05))
STRONG = AugmentConfig(
    hflip=True,
    max_rotate=20.0,
    max_translate=0.12,
    scale=(0.85, 1.15),
    colour=0.4,
    cutout=0.5,
    noise=0.03,
)
NONE = AugmentConfig(hflip=False)


@dataclass
class Views:
    """Augmented images ``[B, 3, S, S]``, their warp ``theta`` ``[B, 2, 3]`` and flip flags ``[B]``."""

    images: torch.Tensor
    theta: torch.Tensor
    flipped: torch.Tensor


def _uniform(n: int, lo: float, hi: float, gen: torch.Generator) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=gen)


def sample_theta(
    n: int, cfg: AugmentConfig, gen: torch.Generator, allow_hflip: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random affine matrices ``[n, 2, 3]`` and flip flags ``[n]`` on the CPU (drawn from ``gen``)."""
    angle = _uniform(n, -cfg.max_rotate, cfg.max_rotate, gen) * math.pi / 180
    scale = _uniform(n, cfg.scale[0], cfg.scale[1], gen)
    tx = _uniform(n, -cfg.max_translate, cfg.max_translate, gen) * 2
    ty = _uniform(n, -cfg.max_translate, cfg.max_translate, gen) * 2
    flip_draw = torch.rand(n, generator=gen) < 0.5
    flipped = flip_draw & (cfg.hflip and allow_hflip)
    sign = 1.0 - 2.0 * flipped.float()
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack(
        [torch.stack([cos * sign, -sin, tx], -1), torch.stack([sin * sign, cos, ty], -1)], 1
    )
    return theta, flipped


@dataclass
class ViewDraw:
    """The random parameters of ``n`` views, drawn on the CPU: the warp (``theta`` ``[n, 2, 3]``,
    ``flipped`` ``[n]``) and, where the config asks for them, the colour factors ``[n, 3]``
    (brightness, saturation, contrast), the pixel noise ``[n, C, S, S]`` and the cutout squares
    ``[n, 4]`` (applied 0/1, side, centre x, centre y in pixels).

    Drawing apart from applying lets a batch of views whose parameters come from different
    generators (one per image, say) be warped in one batched call.
    """

    theta: torch.Tensor
    flipped: torch.Tensor
    colour: torch.Tensor | None = None
    noise: torch.Tensor | None = None
    cutout: torch.Tensor | None = None

    @staticmethod
    def concat(parts: list[ViewDraw]) -> ViewDraw:
        def cat(name: str) -> torch.Tensor | None:
            values = [getattr(p, name) for p in parts]
            return None if values[0] is None else torch.cat(values)

        return ViewDraw(
            torch.cat([p.theta for p in parts]),
            torch.cat([p.flipped for p in parts]),
            cat("colour"),
            cat("noise"),
            cat("cutout"),
        )


def draw_views(
    shape: tuple[int, ...], cfg: AugmentConfig, gen: torch.Generator, allow_hflip: bool = True
) -> ViewDraw:
    """The parameters of one view per image of a batch of ``shape`` ``[n, C, S, S]``, from
    ``gen`` in a fixed order (warp, colour, noise, cutout)."""
    n, side = shape[0], shape[-1]
    theta, flipped = sample_theta(n, cfg, gen, allow_hflip)
    out = ViewDraw(theta, flipped)
    if cfg.colour > 0:
        bright = _uniform(n, 1 - cfg.colour, 1 + cfg.colour, gen)
        contrast = _uniform(n, 1 - cfg.colour, 1 + cfg.colour, gen)
        satur = _uniform(n, 1 - cfg.colour, 1 + cfg.colour, gen)
        out.colour = torch.stack([bright, satur, contrast], 1)
    if cfg.noise > 0:
        out.noise = cfg.noise * torch.randn(shape, generator=gen)
    if cfg.cutout > 0:
        apply = (torch.rand(n, generator=gen) < cfg.cutout).long()
        square = (_uniform(n, 0.25, 0.5, gen) * side).long()
        cx = (torch.rand(n, generator=gen) * side).long()
        cy = (torch.rand(n, generator=gen) * side).long()
        out.cutout = torch.stack([apply, square, cx, cy], 1)
    return out


def _photometric(x: torch.Tensor, d: ViewDraw) -> torch.Tensor:
    b, dev = x.shape[0], x.device
    if d.colour is not None:
        bright, satur, contrast = d.colour.to(dev).view(b, 3, 1, 1, 1).unbind(1)
        x = x * bright
        grey = x.mean(dim=1, keepdim=True)
        x = grey + (x - grey) * satur
        x = (
            x.mean(dim=(1, 2, 3), keepdim=True)
            + (x - x.mean(dim=(1, 2, 3), keepdim=True)) * contrast
        )
    if d.noise is not None:
        x = x + d.noise.to(dev)
    if d.cutout is not None:
        s = x.shape[-1]
        apply, side, cx, cy = d.cutout.to(dev).unbind(1)
        idx = torch.arange(s, device=dev)
        in_x = (idx.view(1, -1) - cx.view(-1, 1)).abs() <= side.view(-1, 1) // 2
        in_y = (idx.view(1, -1) - cy.view(-1, 1)).abs() <= side.view(-1, 1) // 2
        mask = (in_y.unsqueeze(2) & in_x.unsqueeze(1) & apply.bool().view(-1, 1, 1)).unsqueeze(1)
        x = torch.where(mask, torch.full_like(x, 0.5), x)
    return x.clamp(0, 1)


def apply_views(images: torch.Tensor, d: ViewDraw) -> Views:
    """The views ``d`` of ``[B, 3, S, S]`` float images in [0, 1] (one batched warp)."""
    theta, flipped = d.theta.to(images.device), d.flipped.to(images.device)
    identity = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], device=images.device)
    if torch.allclose(theta, identity.expand_as(theta)):
        warped = images
    else:
        grid = F.affine_grid(theta.to(images.dtype), list(images.shape), align_corners=False)
        warped = F.grid_sample(
            images, grid, mode="bilinear", padding_mode="zeros", align_corners=False
        )
    return Views(_photometric(warped, d), theta, flipped)


def augment(
    images: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator, allow_hflip: bool = True
) -> Views:
    """Apply one random view to every image of ``[B, 3, S, S]`` float images in [0, 1]."""
    return apply_views(images, draw_views(tuple(images.shape), cfg, gen, allow_hflip))


def _permute_flipped(
    points: torch.Tensor, flipped: torch.Tensor, perm: list[int] | None
) -> torch.Tensor:
    if perm is None or not bool(flipped.any()):
        return points
    swapped = points[:, perm]
    return torch.where(flipped.view(-1, 1, 1), swapped, points)


def keypoints_to_view(points: torch.Tensor, views: Views, perm: list[int] | None) -> torch.Tensor:
    """Move labels ``[B, K, 2]`` (fractions of width/height) into each view's frame.

    A point at input location ``u_in`` appears at ``u_out = A⁻¹ (u_in - t)``; on a flipped view
    named point k is where the original's mirror partner ``perm[k]`` landed.
    """
    u_in = points * 2 - 1
    a, t = views.theta[:, :, :2], views.theta[:, :, 2]
    u_out = torch.linalg.solve(a.unsqueeze(1), (u_in - t.unsqueeze(1)).unsqueeze(-1)).squeeze(-1)
    return _permute_flipped((u_out + 1) / 2, views.flipped, perm)


def keypoints_from_view(points: torch.Tensor, views: Views, perm: list[int] | None) -> torch.Tensor:
    """Map a view's predictions ``[..., B, K, 2]`` back to the original frame: ``u_in = A u_out + t``."""
    shape = points.shape
    pts = points.reshape(-1, *shape[-3:])  # [N, B, K, 2]
    a, t = views.theta[:, :, :2], views.theta[:, :, 2]
    u_out = pts * 2 - 1
    u_in = torch.einsum("bij,nbkj->nbki", a, u_out) + t.view(1, -1, 1, 2)
    back = (u_in + 1) / 2
    if perm is not None:
        back = torch.stack([_permute_flipped(p, views.flipped, perm) for p in back])
    return back.reshape(shape)
