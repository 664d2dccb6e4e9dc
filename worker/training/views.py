"""The worker's side of the frozen-trunk cache (``xmodel_core.trunk_cache``): which views a
job needs, where the cache lives, and how missing entries are computed.

A job with frozen stages (``freeze_blocks > 0``) and ``trunk_cache`` on never decodes an image
whose views are cached: the labelled images' weak views, the consistency pool's strong views
and the validation images' plain view come from the cache, and only the misses are loaded and
run through the frozen stages (onnxruntime, several times faster than torch eager on a CPU)."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from server.storage import ImageStore
from worker.settings import WorkerSettings
from worker.training.config import JobConfig
from worker.training.data import load_images
from xmodel_core.model import XModel
from xmodel_core.tasks import TaskSpec
from xmodel_core.trainer import TrainConfig, TrainingViews
from xmodel_core.trunk_cache import (
    BuildStats,
    CachedViews,
    TrunkCache,
    TrunkFn,
    ViewKind,
    ViewPlan,
    cached_views,
    onnx_trunk,
    torch_trunk,
)


class JobMemo(TrunkCache):
    """The worker's cache seen through one job's memory: entries read or computed by this job
    are kept in a dict, so scoring reuses the views training just loaded instead of reading
    thousands of small files again. Dropped with the job (bounded by the job's own pool)."""

    def __init__(self, disk: TrunkCache | None) -> None:
        super().__init__(
            disk.root if disk is not None else Path("."), disk.max_bytes if disk is not None else 0
        )
        self.disk = disk
        self.entries: dict[tuple[str, str, str], CachedViews] = {}

    def get(self, key: str, sha256: str, kind: ViewKind, views: int) -> CachedViews | None:
        entry = self.entries.get((key, sha256, kind))
        if entry is None and self.disk is not None:
            entry = self.disk.get(key, sha256, kind, views)
            if entry is not None:
                self.entries[(key, sha256, kind)] = entry
        return entry

    def put(self, key: str, sha256: str, kind: ViewKind, entry: CachedViews) -> None:
        self.entries[(key, sha256, kind)] = entry
        if self.disk is not None:
            self.disk.put(key, sha256, kind, entry)

    def trim(self) -> int:
        return self.disk.trim() if self.disk is not None else 0


def view_plan(task: TaskSpec, train: TrainConfig, weak_views: int, strong_views: int) -> ViewPlan:
    allow_flip = task.kind != "keypoints" or task.flip_permutation is not None
    return ViewPlan(train.weak, train.strong, weak_views, strong_views, allow_flip)


DECODED_MEMO_IMAGES = 512  # at 128 px, 25 MB of uint8 pixels


@dataclass
class ViewBuilder:
    """Cached views of a job's images. ``trunk`` is built lazily (the first miss exports the
    frozen stages to onnxruntime), so a job whose views are all cached runs no export.

    The last ``DECODED_MEMO_IMAGES`` decoded images are kept: scoring asks for a batch's plain
    views and then for the same batch's strong views, and a cold cache would otherwise decode
    every pool image twice (decoding once is a tenth of a cold scoring pass on a CPU)."""

    model: XModel
    plan: ViewPlan
    store: ImageStore
    image_size: int
    cache: TrunkCache | None
    device: torch.device
    batch_size: int = 64
    stats: BuildStats = field(default_factory=BuildStats)
    seconds: float = 0.0
    _trunk: TrunkFn | None = None
    _key: str | None = None
    memo: JobMemo = field(init=False)
    images_decoded: int = 0
    _decoded: OrderedDict[str, torch.Tensor] = field(default_factory=OrderedDict)

    def __post_init__(self) -> None:
        self.memo = JobMemo(self.cache)

    @property
    def key(self) -> str:
        if self._key is None:
            self._key = self.plan.key(self.model)
        return self._key

    def trunk(self, images: torch.Tensor) -> torch.Tensor:
        if self._trunk is None:
            if self.device.type == "cpu":
                try:
                    self._trunk = onnx_trunk(self.model)
                except ImportError:  # onnxruntime missing: torch eager serves too
                    self._trunk = torch_trunk(self.model, self.device)
            else:
                self._trunk = torch_trunk(self.model, self.device)
        return self._trunk(images)

    def views(
        self, shas: Sequence[str], kind: ViewKind, check: Callable[[int], None] | None = None
    ) -> CachedViews:
        """``kind`` views of the images ``shas`` (from the cache, or computed and stored)."""
        start = time.monotonic()
        shas = list(shas)

        def load(indices: list[int]) -> torch.Tensor:
            return self._load([shas[i] for i in indices])

        try:
            return cached_views(
                shas,
                kind,
                self.plan,
                self.key,
                load,
                self.trunk,
                self.memo,
                self.batch_size,
                self.stats,
                check,
            )
        finally:
            self.seconds += time.monotonic() - start

    def fill(self, shas: Sequence[str], kind: ViewKind, chunk: int = 256) -> int:
        """Compute and store the ``kind`` views of those of ``shas`` that the disk cache lacks,
        ``chunk`` images at a time, keeping none of them in memory. Returns how many images
        were computed (0 without a disk cache: there is nowhere to keep them)."""
        disk = self.memo.disk
        if disk is None:
            return 0
        missing = [sha for sha in shas if not disk.contains(self.key, sha, kind)]
        for start in range(0, len(missing), chunk):
            self.views(missing[start : start + chunk], kind)
            self.memo.entries.clear()
        return len(missing)

    def _load(self, shas: list[str]) -> torch.Tensor:
        """uint8 images ``[n, 3, S, S]`` of ``shas``, decoding only those not decoded lately."""
        missing = [sha for sha in shas if sha not in self._decoded]
        self.images_decoded += len(missing)
        for sha, image in zip(
            missing, load_images(self.store, missing, self.image_size), strict=True
        ):
            self._decoded[sha] = image
        images = [self._decoded[sha] for sha in shas]
        for sha in shas:
            self._decoded.move_to_end(sha)
        while len(self._decoded) > DECODED_MEMO_IMAGES:
            self._decoded.popitem(last=False)
        if not images:
            return torch.empty(0, 3, self.image_size, self.image_size, dtype=torch.uint8)
        return torch.stack(images)

    def training_views(
        self,
        train_shas: Sequence[str],
        val_shas: Sequence[str],
        pool_shas: Sequence[str],
        consistency: bool,
        check: Callable[[int], None] | None = None,
    ) -> TrainingViews:
        """Weak views of the training labels, strong views of the consistency pool (the
        unlabelled images then the training labels, as the trainer expects), plain views of
        the validation labels."""
        labelled = self.views(train_shas, "weak", check)
        pool = self.views([*pool_shas, *train_shas], "strong", check) if consistency else None
        val = self.views(val_shas, "plain", check) if val_shas else None
        return TrainingViews(labelled, pool, val)


def cache_for(root: Path | None, max_bytes: int) -> TrunkCache | None:
    """The worker's cache folder, or None to keep entries in memory for one job only."""
    return TrunkCache(root, max_bytes) if root is not None and max_bytes > 0 else None


def builder_for(
    cfg: JobConfig,
    task: TaskSpec,
    model: XModel,
    device: torch.device,
    store: ImageStore,
    image_size: int,
    storage: Path,
    ws: WorkerSettings,
) -> ViewBuilder:
    """The view builder of a job (or of a prefill) with config ``cfg`` on this worker's cache
    (``XM_TRUNK_CACHE_DIR``, default ``<storage>/cache/trunk``)."""
    root = Path(ws.trunk_cache_dir) if ws.trunk_cache_dir else storage / "cache" / "trunk"
    return ViewBuilder(
        model,
        view_plan(task, cfg.train, cfg.weak_views, cfg.strong_views),
        store,
        image_size,
        cache_for(root, ws.trunk_cache_mb * 2**20),
        device,
    )
