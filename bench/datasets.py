"""Benchmark datasets with fixed splits: UTKFace age, Fashion-MNIST, synthetic kites.

Test sets are fixed by a split seed that never changes between runs and are only ever used for
the final figures; validation sets come from the training side.
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from xmodel_core.data import LabelledSet
from xmodel_core.synthetic import KITE_FLIP_PAIRS, KITE_POINTS, make_kites
from xmodel_core.tasks import ClassificationTask, KeypointTask, RegressionTask, TaskSpec

ROOT = Path(__file__).resolve().parent.parent
UTKFACE_DIR = Path(
    os.environ.get("XM_UTKFACE_DIR", ROOT.parent / "shared" / "data" / "utkface" / "crop_part1")
)
FASHION_DIR = Path(os.environ.get("XM_FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist"))
CACHE_DIR = ROOT / "var" / "bench_cache"
SPLIT_SEED = 12345
FASHION_CLASSES = [
    "t-shirt",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "boot",
]


@dataclass
class Benchmark:
    """A pool to draw labels from, a validation set (tuning only) and a fixed test set."""

    name: str
    task: TaskSpec
    pool: LabelledSet  # labels known to the benchmark; a run reveals only its budget of them
    val: LabelledSet
    test: LabelledSet
    balanced: bool  # draw labelled subsets class-balanced (classification)


def parse_utkface_age(name: str) -> int | None:
    """``AGE_GENDER_RACE_DATE.jpg.chip.jpg`` -> age, or None for malformed names."""
    parts = name.split("_")
    if len(parts) < 4 or not parts[0].isdigit():
        return None
    return int(parts[0])


def load_utkface(size: int) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """All well-formed UTKFace faces, resized to ``size`` (cached): uint8 ``[N, 3, S, S]``, ages ``[N]``."""
    cache = CACHE_DIR / f"utkface_{size}.pt"
    if cache.exists():
        data = torch.load(cache, weights_only=True)
        return data["images"], data["ages"], data["names"].split("\n")
    files = sorted(p for p in UTKFACE_DIR.iterdir() if parse_utkface_age(p.name) is not None)
    images = torch.empty(len(files), 3, size, size, dtype=torch.uint8)
    for i, path in enumerate(files):
        with Image.open(path) as im:
            arr = np.asarray(im.convert("RGB").resize((size, size), Image.Resampling.BILINEAR))
        images[i] = torch.from_numpy(arr.copy()).permute(2, 0, 1)
    ages = torch.tensor([float(parse_utkface_age(p.name)) for p in files])  # type: ignore[arg-type]
    names = [p.name for p in files]
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    torch.save({"images": images, "ages": ages, "names": "\n".join(names)}, cache)
    return images, ages, names


def _split(n: int, n_test: int, n_val: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    order = torch.randperm(n, generator=torch.Generator().manual_seed(SPLIT_SEED))
    return order[n_test + n_val :], order[n_test : n_test + n_val], order[:n_test]


def utkface(
    size: int = 64, n_test: int = 1000, n_val: int = 200, pool_limit: int | None = None
) -> Benchmark:
    images, ages, _ = load_utkface(size)
    pool, val, test = _split(len(images), n_test, n_val)
    if pool_limit:
        pool = pool[:pool_limit]
    data = LabelledSet(images, ages.view(-1, 1))
    task = RegressionTask(["age"], ranges=[(1.0, 116.0)])
    return Benchmark(
        "utkface_age", task, data.subset(pool), data.subset(val), data.subset(test), False
    )


def _read_idx(path: Path, offset: int) -> np.ndarray:
    with gzip.open(path) as fh:
        return np.frombuffer(fh.read(), np.uint8, offset=offset)


def fashion_mnist(
    n_val: int = 500, pool_limit: int | None = None, test_limit: int | None = None
) -> Benchmark:
    """Fashion-MNIST from the Debian package (train side -> pool + val; official test set)."""

    def load(prefix: str) -> LabelledSet:
        x = _read_idx(FASHION_DIR / f"{prefix}-images-idx3-ubyte.gz", 16).reshape(-1, 1, 28, 28)
        y = _read_idx(FASHION_DIR / f"{prefix}-labels-idx1-ubyte.gz", 8)
        images = torch.from_numpy(x.copy()).expand(-1, 3, -1, -1).contiguous()
        return LabelledSet(images, torch.from_numpy(y.astype(np.int64)))

    train, test = load("train"), load("t10k")
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(SPLIT_SEED))
    pool = order[n_val:] if pool_limit is None else order[n_val : n_val + pool_limit]
    if test_limit:
        test = test.subset(torch.arange(test_limit))
    task = ClassificationTask(FASHION_CLASSES)
    return Benchmark(
        "fashion_mnist", task, train.subset(pool), train.subset(order[:n_val]), test, True
    )


def kites(size: int = 48, n_pool: int = 5000, n_val: int = 200, n_test: int = 1000) -> Benchmark:
    """Synthetic keypoints; the test set comes from a different generator seed than the pool."""
    pool_x, pool_y = make_kites(n_pool + n_val, size, seed=1)
    test_x, test_y = make_kites(n_test, size, seed=2)
    data = LabelledSet(pool_x, pool_y)
    task = KeypointTask(list(KITE_POINTS), flip_pairs=list(KITE_FLIP_PAIRS))
    return Benchmark(
        "kites_keypoints",
        task,
        data.subset(torch.arange(n_val, n_pool + n_val)),
        data.subset(torch.arange(n_val)),
        LabelledSet(test_x, test_y),
        False,
    )


def draw_labelled(bench: Benchmark, budget: int, seed: int) -> torch.Tensor:
    """Indices into ``bench.pool`` of a seeded labelled subset (class-balanced when asked)."""
    gen = torch.Generator().manual_seed(1000 + seed)
    if not bench.balanced:
        return torch.randperm(len(bench.pool), generator=gen)[:budget]
    targets = bench.pool.targets
    classes = targets.unique()
    per_class = [torch.nonzero(targets == c).flatten() for c in classes]
    picks = []
    for i, idx in enumerate(per_class):
        share = budget // len(classes) + (1 if i < budget % len(classes) else 0)
        picks.append(idx[torch.randperm(len(idx), generator=gen)[:share]])
    return torch.cat(picks)


def at_product_size(name: str, size: int) -> Benchmark:
    """Dataset ``name`` as the product-path benchmarks use it, at ``size`` px: every UTKFace
    face; a 10,000-image Fashion-MNIST pool with 2,000 test images, upsampled from 28 px as the
    worker's resize does; 2,000 kites with 500 test images."""
    if name == "utkface_age":
        return utkface(size)
    if name == "fashion_mnist":
        return resized(fashion_mnist(pool_limit=10_000, test_limit=2000), size)
    return kites(size, n_pool=2000, n_test=500)


def error_scale(name: str, size: int) -> float:
    """Factor from a benchmark's raw error to the units reported: years for UTKFace, % for
    Fashion-MNIST, pixels of the ``size`` px image for the kites (raw: a fraction of the side)."""
    return {"fashion_mnist": 100.0, "kites_keypoints": float(size)}.get(name, 1.0)


def resized(bench: Benchmark, size: int) -> Benchmark:
    """Upsample a small-image benchmark to ``size`` px (bilinear, as the worker's resize does)."""

    def up(s: LabelledSet) -> LabelledSet:
        x = torch.nn.functional.interpolate(
            s.images.float(), size=(size, size), mode="bilinear", align_corners=False
        )
        return LabelledSet(x.round().clamp(0, 255).to(torch.uint8), s.targets, s.visible)

    return Benchmark(
        bench.name, bench.task, up(bench.pool), up(bench.val), up(bench.test), bench.balanced
    )
