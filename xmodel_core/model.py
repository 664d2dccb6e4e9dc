"""The X-model: one shared feature extractor and H task heads with dropout (Wang et al., ICLR 2022, arXiv 2110.04572)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from .backbones import PooledTrunk, build_backbone
from .grl import GradientReversal


@dataclass
class ModelConfig:
    """Everything needed to rebuild a model's architecture (weights come separately)."""

    backbone: str = "mobilenet_v2"
    output_dim: int = 1
    num_heads: int = 2
    head_hidden: int = 256
    dropout: float = 0.3
    image_size: int = 96
    pretrained: bool = True
    freeze_blocks: int = 0
    bn_eval: bool = False  # keep every batch norm on its running statistics while training

    def to_json(self) -> dict:
        return asdict(self)


class TaskHead(nn.Module):
    """``[B, F] -> [B, D]``: dropout, a hidden layer, dropout, a linear output."""

    def __init__(self, feature_dim: int, hidden: int, output_dim: int, dropout: float) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(feature_dim, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, output_dim),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features)


class XModel(nn.Module):
    """Feature extractor ψ plus heads h_1..h_H.

    Input: float images ``[B, 3, S, S]`` in [0, 1], RGB; the backbone's mean / std normalisation
    is a buffer inside the model, so every consumer (export, worker, API) prepares images alike.
    Output of :meth:`forward`: raw head outputs ``[H, B, D]`` (see ``tasks`` for their meaning).
    """

    mean: torch.Tensor  # buffers ``[1, 3, 1, 1]``
    std: torch.Tensor
    extractor: PooledTrunk

    def __init__(self, config: ModelConfig, load_pretrained: bool | None = None) -> None:
        super().__init__()
        self.config = config
        pretrained = config.pretrained if load_pretrained is None else load_pretrained
        backbone = build_backbone(
            config.backbone, pretrained=pretrained, freeze_blocks=config.freeze_blocks
        )
        self.extractor = backbone.module
        self.register_buffer("mean", torch.tensor(backbone.mean).view(1, 3, 1, 1), persistent=True)
        self.register_buffer("std", torch.tensor(backbone.std).view(1, 3, 1, 1), persistent=True)
        self.heads = nn.ModuleList(
            TaskHead(backbone.feature_dim, config.head_hidden, config.output_dim, config.dropout)
            for _ in range(config.num_heads)
        )
        self.reversal = GradientReversal()

    def train(self, mode: bool = True) -> XModel:
        """Like ``nn.Module.train``; with ``config.bn_eval`` batch norms stay in eval mode.

        Pretrained statistics then survive small labelled batches, and strongly augmented
        views in a shared batch cannot shift the statistics used on clean test images.
        """
        super().train(mode)
        if self.config.bn_eval:
            for module in self.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()
        return self

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """``[B, 3, S, S]`` in [0, 1] -> extractor features ``[B, F]``."""
        return self.extractor((images - self.mean) / self.std)

    @property
    def frozen_stages(self) -> int:
        """How many leading extractor stages never train (0: the whole extractor trains)."""
        return int(getattr(self.extractor, "frozen", 0))

    def trunk(self, images: torch.Tensor) -> torch.Tensor:
        """``[B, 3, S, S]`` in [0, 1] -> the frozen stages' activations ``[B, C, h, w]`` (no
        gradient). ``features_from_trunk(trunk(x))`` equals ``features(x)``; the split lets a
        trainer compute the frozen part once per image and view instead of once per step."""
        return self.extractor.frozen_part((images - self.mean) / self.std)

    def features_from_trunk(self, trunk: torch.Tensor) -> torch.Tensor:
        """Activations from :meth:`trunk` -> extractor features ``[B, F]``."""
        return self.extractor.trainable_part(trunk)

    def heads_forward(self, features: torch.Tensor, reverse: bool = False) -> torch.Tensor:
        """Every head on the same features -> ``[H, B, D]``.

        ``reverse=True`` puts the gradient reversal layer between ψ and the heads: the heads get
        the loss's gradient unchanged while ψ gets it negated (and scaled by the warm-up).
        """
        if reverse:
            features = self.reversal(features)
        return torch.stack([head(features) for head in self.heads])

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.heads_forward(self.features(images))
