"""Training step time in NCHW against NHWC (``channels_last``) order, on both training paths.

On a CPU the trainer runs its convolutions in NHWC order (``xmodel_core.trainer.channels_last``).
This measures what that buys, side by side in one process, at the product's regression
settings (MobileNetV2, 128 px, first 14 stages frozen, supervised, batch 32):

- ``cached``: the product's path, the trainable stages and the heads on stored trunk views;
- ``recompute``: the old path, the whole network on images at every step.

The four configurations run in turn, ``--repeats`` times, so machine noise hits them alike; the
medians and the NHWC / NCHW speed-ups are printed and saved. Beside them, the optimizer step
alone on the cached path's trainable parameters (AdamW, random gradients): PyTorch's default
per-tensor loop on a CPU against the fused kernel the trainer uses.

    python -m bench.train_step_layout                 # 60 steps, 3 repeats
    python -m bench.train_step_layout --steps 20 --repeats 1
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from xmodel_contracts.training_defaults import FROZEN_STAGES, default_image_size
from xmodel_core.data import LabelledSet
from xmodel_core.model import ModelConfig, XModel
from xmodel_core.tasks import RegressionTask
from xmodel_core.trainer import TrainConfig, Trainer, TrainingViews
from xmodel_core.trunk_cache import CachedViews

from .common import save_result

RESULTS = Path(__file__).parent / "results" / "train_step_layout.json"
IMAGES = 128  # labelled images (batches are drawn from them with replacement)
VIEWS = 8  # stored weak views per image, as the product's plan


def _setup(cached: bool, steps: int) -> tuple[Trainer, LabelledSet, TrainingViews | None]:
    torch.manual_seed(0)
    size = default_image_size("regression")
    model = XModel(
        ModelConfig(
            backbone="mobilenet_v2",
            image_size=size,
            freeze_blocks=FROZEN_STAGES["mobilenet_v2"],
            output_dim=1,
        )
    )
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (IMAGES, 3, size, size), generator=gen, dtype=torch.uint8)
    targets = 1 + 80 * torch.rand(IMAGES, 1, generator=gen)
    task = RegressionTask(["age"])
    task.fit(targets)
    config = TrainConfig(method="supervised", steps=steps, device="cpu", checkpoint_every=0)
    trainer = Trainer(model, task, config)
    if not cached:
        return trainer, LabelledSet(images, targets), None
    with torch.no_grad():
        trunk = model.trunk(images.float() / 255)  # [N, C, h, w]: real activations
    stored = trunk[:, None].expand(-1, VIEWS, -1, -1, -1).half().contiguous()
    theta = torch.eye(2, 3).expand(IMAGES, VIEWS, 2, 3).clone()
    views = CachedViews(stored, theta, torch.zeros(IMAGES, VIEWS, dtype=torch.bool))
    return trainer, LabelledSet(images[:, :, :1, :1], targets), TrainingViews(views)


def step_ms(cached: bool, nhwc: bool, steps: int, warmup: int = 5) -> float:
    """Milliseconds per training step (after ``warmup`` steps) of one configuration."""
    trainer, labelled, views = _setup(cached, warmup + steps)
    trainer.trains_in_nhwc = lambda: nhwc  # type: ignore[method-assign]
    marks: list[float] = []
    trainer.fit(labelled, views=views, callback=lambda p: marks.append(time.perf_counter()))
    return 1000 * (marks[-1] - marks[warmup - 1]) / steps


def optimizer_ms(fused: bool, steps: int = 100, warmup: int = 5) -> float:
    """Milliseconds per AdamW step over the trainable parameters (the same on both paths; the
    old path's setup computes no trunk activations)."""
    trainer, _, _ = _setup(False, 1)
    groups = [
        {"params": g["params"], "lr_scale": g["lr_scale"]} for g in trainer.optimizer.param_groups
    ]
    for group in groups:
        for param in group["params"]:
            param.grad = torch.randn_like(param)
    config = trainer.config
    optimizer = torch.optim.AdamW(
        groups, lr=config.lr, weight_decay=config.weight_decay, fused=fused, foreach=False
    )
    for _ in range(warmup):
        optimizer.step()
    start = time.perf_counter()
    for _ in range(steps):
        optimizer.step()
    return 1000 * (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    configs = [(p, o) for p in ("cached", "recompute") for o in ("nchw", "nhwc")]
    times: dict[str, list[float]] = {f"{p}_{o}": [] for p, o in configs}
    optimizer: dict[str, list[float]] = {"loop": [], "fused": []}
    for repeat in range(args.repeats):
        for path, order in configs:
            ms = step_ms(path == "cached", order == "nhwc", args.steps)
            times[f"{path}_{order}"].append(round(ms, 1))
            print(f"repeat {repeat}: {path:9s} {order}: {ms:7.1f} ms/step", flush=True)
        for kind in optimizer:
            ms = optimizer_ms(kind == "fused")
            optimizer[kind].append(round(ms, 2))
            print(f"repeat {repeat}: AdamW {kind}: {ms:6.2f} ms/step", flush=True)
    median = {k: statistics.median(v) for k, v in times.items()}
    optimizer_median = {k: statistics.median(v) for k, v in optimizer.items()}
    speedup = {
        p: round(median[f"{p}_nchw"] / median[f"{p}_nhwc"], 3) for p in ("cached", "recompute")
    }
    document: dict[str, Any] = {
        "threads": torch.get_num_threads(),
        "steps": args.steps,
        "ms_per_step": times,
        "median_ms_per_step": median,
        "nhwc_speedup": speedup,
        "cached_vs_recompute": {
            o: round(median[f"recompute_{o}"] / median[f"cached_{o}"], 3) for o in ("nchw", "nhwc")
        },
        "optimizer_ms_per_step": optimizer,
        "optimizer_fused_speedup": round(optimizer_median["loop"] / optimizer_median["fused"], 2),
    }
    print(
        f"NHWC speed-up (median): {speedup}; cached path against the old path per step: "
        f"{document['cached_vs_recompute']}; AdamW fused against the per-tensor loop: "
        f"{document['optimizer_fused_speedup']}x"
    )
    save_result(args.out, document)


if __name__ == "__main__":
    main()
