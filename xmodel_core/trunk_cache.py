"""Frozen-trunk activations of a fixed set of views per image, computed once and reused.

On a CPU the frozen early stages of the extractor (high resolution, most of the FLOPs) cost far
more than the trainable top. Recomputing them for every view at every step is the old path;
here each image gets a fixed set of views, drawn once (from a generator seeded by the image's
sha256 and the view kind, so the same image always gets the same views), and the frozen stages
run once per view. Training and pool scoring then run only the trainable stages and the heads on
the stored activations.

View kinds (one entry per image and kind):

- ``plain``: the image itself (1 view): scoring, clustering features, validation;
- ``strong``: ``strong_views`` strong augmentations: the consistency pair of the X-model (two
  different views of an image for two heads) and the disagreement views of the score;
- ``weak``: ``weak_views`` weak augmentations: the supervised loss on labelled images.

Every view keeps its warp ``theta`` and flip flag, so keypoint labels move into a view and a
view's predictions move back to the original frame exactly as in the recomputing path.

The two kinds of noise of the X-model stay real: the heads see different views (data noise,
now drawn from a finite set per image), dropout in the heads and the minimax game on the
trainable stages (model noise) are untouched.

Entries live in a folder keyed by :meth:`ViewPlan.key` (backbone, image size, frozen stages,
a digest of the frozen weights, augmentation ranges), one safetensors file per image and kind;
files are written atomically and the folder is trimmed to a byte budget, least recently used
first. A missing or unreadable file is recomputed.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import torch
from safetensors import SafetensorError
from safetensors.torch import load, save_file

from xmodel_contracts.files import atomic_write

from .augment import NONE, AugmentConfig, ViewDraw, Views, apply_views, draw_views
from .model import XModel

ViewKind = Literal["plain", "strong", "weak"]
CACHE_DTYPE = torch.float16  # activations of the frozen stages; halves memory and disk


@dataclass(frozen=True)
class ViewPlan:
    """Which views each image gets. ``allow_hflip`` is False for keypoints without flip pairs."""

    weak: AugmentConfig
    strong: AugmentConfig
    weak_views: int = 8
    strong_views: int = 2
    allow_hflip: bool = True

    def count(self, kind: ViewKind) -> int:
        return {"plain": 1, "strong": self.strong_views, "weak": self.weak_views}[kind]

    def config(self, kind: ViewKind) -> AugmentConfig:
        return {"plain": NONE, "strong": self.strong, "weak": self.weak}[kind]

    def key(self, model: XModel) -> str:
        """Folder name: everything that changes a cached activation, hashed."""
        recipe = {
            "backbone": model.config.backbone,
            "image_size": model.config.image_size,
            "frozen": model.frozen_stages,
            "weights": frozen_weights_digest(model),
            "weak": asdict(self.weak),
            "strong": asdict(self.strong),
            "allow_hflip": self.allow_hflip,
            "dtype": str(CACHE_DTYPE),
            "version": 2,  # 2: each image's views seeded by its own sha256
        }
        digest = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]
        return (
            f"{model.config.backbone}-{model.config.image_size}px-f{model.frozen_stages}-{digest}"
        )


def frozen_weights_digest(model: XModel) -> str:
    """sha256 of the frozen stages' parameters and buffers (a warm start may change them)."""
    digest = hashlib.sha256()
    for stage in list(model.extractor.trunk)[: model.frozen_stages]:
        for name, tensor in stage.state_dict().items():
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    digest.update(model.mean.numpy().tobytes())
    digest.update(model.std.numpy().tobytes())
    return digest.hexdigest()


def batch_views(images: torch.Tensor, shas: Sequence[str], kind: ViewKind, plan: ViewPlan) -> Views:
    """The views of float images ``[n, 3, S, S]``: ``images`` ``[n * V, 3, S, S]``, image-major.

    Each image's view parameters come from a generator seeded by its own sha256 and the kind,
    so an image gets the same views whichever images it is computed with (a rebuilt entry, a
    prefill or another project's job); the warp and the photometric ops then run in one batched
    call for the whole chunk (per-image calls cost far more on a CPU).
    """
    count = plan.count(kind)
    n = images.shape[0]
    if kind == "plain":
        eye = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
        return Views(images, eye.expand(n, 2, 3).clone(), torch.zeros(n, dtype=torch.bool))
    shape = (count, *images.shape[1:])
    draws = [
        draw_views(shape, plan.config(kind), _view_generator(sha, kind), plan.allow_hflip)
        for sha in shas
    ]
    return apply_views(images.repeat_interleave(count, dim=0), ViewDraw.concat(draws))


def _view_generator(sha256: str, kind: ViewKind) -> torch.Generator:
    digest = hashlib.sha256(f"{kind}:{sha256}".encode()).hexdigest()
    return torch.Generator().manual_seed(int(digest[:15], 16))


@dataclass
class CachedViews:
    """Views of N images: ``trunk`` ``[N, V, C, h, w]`` (float16), ``theta`` ``[N, V, 2, 3]``,
    ``flipped`` ``[N, V]`` (bool)."""

    trunk: torch.Tensor
    theta: torch.Tensor
    flipped: torch.Tensor

    def __len__(self) -> int:
        return int(self.trunk.shape[0])

    @property
    def views_per_image(self) -> int:
        return int(self.trunk.shape[1])

    def pick(self, index: torch.Tensor, view: torch.Tensor, device: torch.device | str) -> Views:
        """View ``view[b]`` of image ``index[b]`` -> :class:`Views` whose ``images`` are trunk
        activations ``[B, C, h, w]`` (float32 on ``device``)."""
        return Views(
            self.trunk[index, view].to(device).float(),
            self.theta[index, view].to(device),
            self.flipped[index, view].to(device),
        )

    def subset(self, index: torch.Tensor) -> CachedViews:
        return CachedViews(self.trunk[index], self.theta[index], self.flipped[index])

    @staticmethod
    def concat(parts: Sequence[CachedViews]) -> CachedViews:
        return CachedViews(
            torch.cat([p.trunk for p in parts]),
            torch.cat([p.theta for p in parts]),
            torch.cat([p.flipped for p in parts]),
        )


class TrunkCache:
    """One folder of cached entries ``<root>/<plan key>/<sha[:2]>/<sha>.<kind>.safetensors``."""

    def __init__(self, root: str | Path, max_bytes: int) -> None:
        self.root = Path(root)
        self.max_bytes = max_bytes

    def _path(self, key: str, sha256: str, kind: ViewKind) -> Path:
        return self.root / key / sha256[:2] / f"{sha256}.{kind}.safetensors"

    def contains(self, key: str, sha256: str, kind: ViewKind) -> bool:
        """Whether an entry is stored (without reading it; an unreadable one is rebuilt by
        the job that finds it so)."""
        return self._path(key, sha256, kind).is_file()

    def get(self, key: str, sha256: str, kind: ViewKind, views: int) -> CachedViews | None:
        path = self._path(key, sha256, kind)
        try:
            # one read, then parse the bytes: for these small files about twice as fast as
            # load_file's memory map (a scoring pass reads two entries for every pool image)
            data = load(path.read_bytes())
            os.utime(path)  # recency for the LRU trim
        except (OSError, SafetensorError):
            return None
        if set(data) != {"trunk", "theta", "flipped"} or data["trunk"].shape[0] != views:
            return None
        return CachedViews(data["trunk"][None], data["theta"][None], data["flipped"].bool()[None])

    def put(self, key: str, sha256: str, kind: ViewKind, entry: CachedViews) -> None:
        """Write one image's entry (``entry`` holds N = 1) atomically; a failure only costs a
        recomputation later, so it is not raised."""
        tensors = {
            "trunk": entry.trunk[0].contiguous(),
            "theta": entry.theta[0].contiguous(),
            "flipped": entry.flipped[0].to(torch.uint8).contiguous(),
        }
        try:  # a cache: what a crash loses is recomputed, so no fsync
            atomic_write(
                self._path(key, sha256, kind), lambda tmp: save_file(tensors, tmp), durable=False
            )
        except OSError:
            pass

    def trim(self) -> int:
        """Delete least recently used entries until the folder fits ``max_bytes``; returns
        the bytes kept."""
        files = []
        for path in self.root.rglob("*.safetensors"):
            try:
                stat = path.stat()
            except OSError:
                continue
            files.append((stat.st_mtime, stat.st_size, path))
        total = sum(size for _, size, _ in files)
        for _, size, path in sorted(files):
            if total <= self.max_bytes:
                break
            path.unlink(missing_ok=True)
            total -= size
        return total


TrunkFn = Callable[[torch.Tensor], torch.Tensor]


def torch_trunk(model: XModel, device: torch.device | str = "cpu") -> TrunkFn:
    """Float images ``[B, 3, S, S]`` in [0, 1] -> trunk activations, torch eager
    (``channels_last``: faster convolutions on a CPU)."""
    channels_last = torch.device(device).type == "cpu"

    def run(images: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            x = images.to(device)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            return model.trunk(x).float().contiguous()

    return run


class _TrunkModule(torch.nn.Module):
    def __init__(self, model: XModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model.trunk(images)


class _TopModule(torch.nn.Module):
    """Trunk activations -> (raw head outputs ``[H, B, D]``, features ``[B, F]``)."""

    def __init__(self, model: XModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, trunk: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.model.features_from_trunk(trunk)
        return self.model.heads_forward(features), features


def onnx_session(
    module: torch.nn.Module,
    example: torch.Tensor,
    outputs: dict[str, int],
    threads: int | None = None,
) -> Callable[[torch.Tensor], list[torch.Tensor]]:
    """``module`` (eval mode, CPU) exported to ONNX and loaded in onnxruntime: a function from
    a batch (dimension 0 dynamic, like ``example``) to the outputs named in ``outputs`` (name ->
    batch dimension). Exported once per call, through a temporary file."""
    import onnxruntime as ort  # optional at import time: the torch paths need none of it

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "module.onnx"
        torch.onnx.export(
            module,
            (example,),
            str(path),
            input_names=["input"],
            output_names=list(outputs),
            dynamic_axes={"input": {0: "batch"}, **{k: {d: "batch"} for k, d in outputs.items()}},
            opset_version=17,
            dynamo=False,
        )
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def run(batch: torch.Tensor) -> list[torch.Tensor]:
        out = session.run(None, {"input": batch.float().contiguous().numpy()})
        return [torch.from_numpy(o) for o in out]

    return run


def onnx_trunk(model: XModel, threads: int | None = None) -> TrunkFn:
    """Like :func:`torch_trunk`, through onnxruntime (several times faster than torch eager on
    a CPU)."""
    size = model.config.image_size
    module = _TrunkModule(copy.deepcopy(model).cpu().eval()).eval()
    session = onnx_session(module, torch.rand(2, 3, size, size), {"trunk": 0}, threads)
    return lambda images: session(images)[0]


TopFn = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def onnx_top(model: XModel, example: torch.Tensor, threads: int | None = None) -> TopFn:
    """The trainable stages and the heads in eval mode, through onnxruntime: trunk activations
    ``[B, C, h, w]`` (``example`` gives C, h, w) -> (raw outputs ``[H, B, D]``, features
    ``[B, F]``). Scores a pool's cached views faster than torch eager; built once per model."""
    module = _TopModule(copy.deepcopy(model).cpu().eval()).eval()
    session = onnx_session(module, example[:2].float(), {"raw": 1, "features": 0}, threads)

    def run(trunk: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raw, features = session(trunk)
        return raw, features

    return run


@dataclass
class BuildStats:
    """What :func:`cached_views` did: entries found in the cache and computed."""

    hits: int = 0
    computed: int = 0
    views_computed: int = 0


def cached_views(
    shas: Sequence[str],
    kind: ViewKind,
    plan: ViewPlan,
    key: str,
    load: Callable[[list[int]], torch.Tensor],
    trunk: TrunkFn,
    cache: TrunkCache | None,
    batch_size: int = 64,
    stats: BuildStats | None = None,
    check: Callable[[int], None] | None = None,
) -> CachedViews:
    """The ``kind`` views of every image in ``shas`` -> :class:`CachedViews` ``[N, V, ...]``.

    Entries come from ``cache`` when present; the others are computed: ``load(indices)`` gives
    their uint8 images ``[n, 3, S, S]``, ``trunk`` runs the frozen stages, batched over
    ``batch_size`` views. ``check(done)`` runs after each batch (progress, cancellation).
    """
    stats = stats if stats is not None else BuildStats()
    count = plan.count(kind)
    found: list[CachedViews | None] = [
        cache.get(key, sha, kind, count) if cache is not None else None for sha in shas
    ]
    missing = [i for i, entry in enumerate(found) if entry is None]
    stats.hits += len(shas) - len(missing)
    per_batch = max(1, batch_size // count)
    for start in range(0, len(missing), per_batch):
        chunk = missing[start : start + per_batch]
        images = load(chunk).float().div_(255.0)
        views = batch_views(images, [shas[i] for i in chunk], kind, plan)
        acts = trunk(views.images).to(CACHE_DTYPE)
        for j, i in enumerate(chunk):
            part = slice(j * count, (j + 1) * count)
            entry = CachedViews(
                acts[part][None].clone(), views.theta[part][None], views.flipped[part][None]
            )
            found[i] = entry
            if cache is not None:
                cache.put(key, shas[i], kind, entry)
        stats.computed += len(chunk)
        stats.views_computed += len(chunk) * count
        if check is not None:
            check(start + len(chunk))
    if not shas:
        raise ValueError("cached_views needs at least one image")
    return CachedViews.concat([e for e in found if e is not None])
