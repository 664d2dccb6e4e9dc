"""Seeded training loop for the X-model and its baselines, with exact resume.

Methods (``TrainConfig.method``):
- ``supervised``: every head on weak views of the labelled images;
- ``mean_teacher``: + student/EMA-teacher consistency on two strong views (baseline);
- ``xmodel``: + crossed consistency (head i on view a vs head j on view b) and, when
  ``minimax_weight > 0``, the minimax game through the gradient reversal layer.

The consistency pool is every image (unlabelled and labelled alike). Progress is reported
through an injected callback; raising from it stops training (the worker's cancel path).
"""

from __future__ import annotations

import copy
import functools
import json
import math
import operator
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from xmodel_contracts.files import atomic_write
from xmodel_contracts.names import MINIMAX_NOISE, TRAINING_METHODS

from .augment import (
    STRONG,
    WEAK,
    AugmentConfig,
    Views,
    augment,
    keypoints_from_view,
    keypoints_to_view,
)
from .data import LabelledSet, to_float
from .grl import warmup_coefficient
from .losses import CrossedConsistencyLoss, MeanTeacherLoss, MinimaxDiscrepancyLoss, SupervisedLoss
from .model import XModel
from .tasks import TaskSpec
from .trunk_cache import CachedViews

METHODS = TRAINING_METHODS


@dataclass
class TrainConfig:
    """Hyper-parameters of one training run (plain data: JSON-serialisable)."""

    method: str = "xmodel"
    steps: int = 500
    batch_size: int = 32
    unlabelled_batch_size: int = 32
    lr: float = 1e-3
    extractor_lr_scale: float = 0.3  # a pretrained extractor moves slower than fresh heads
    weight_decay: float = 1e-4
    consistency_weight: float = 1.0
    minimax_weight: float = 0.3
    rampup_fraction: float = 0.2  # consistency weight ramps up over this share of the steps
    # True: in the crossed term, view b's predictions are a fixed target (no gradient flows
    # through them), the asymmetric form; False: both views are pulled towards each other.
    crossed_stop_gradient: bool = False
    # Where the minimax game's disagreement comes from: "views" (heads on the two views: data
    # and model noise) or "dropout" (heads on view a twice: model noise only).
    minimax_noise: str = "views"
    ema_decay: float = 0.99
    # True: batch-norm running statistics come from the labelled (weak) batch only; strongly
    # augmented consistency views are normalised by their own batch but do not shift the
    # statistics used on clean test images. Off by default: on UTKFace validation it did not
    # help (docs/RESULTS.md §1), and every benchmark figure was measured without it.
    bn_stats_from_labelled: bool = False
    weak: AugmentConfig = field(default_factory=lambda: WEAK)
    strong: AugmentConfig = field(default_factory=lambda: STRONG)
    seed: int = 0
    device: str = "auto"
    amp: bool = True  # bfloat16 autocast, on CUDA only
    eval_every: int = 50
    patience: int | None = None  # early stopping after this many evaluations without progress
    checkpoint_every: int = 0
    # a checkpoint falls due every ``checkpoint_every`` steps, but is only written once this
    # many seconds have passed since the last one (or the start): fast steps then do not write
    # a full checkpoint every few seconds, slow ones still save every ``checkpoint_every``
    checkpoint_min_seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TrainingViews:
    """Cached frozen-trunk views for a run (``trunk_cache.py``): training then runs only the
    trainable stages and the heads.

    ``labelled``: weak views aligned with the labelled set; ``pool``: strong views aligned with
    the consistency pool (the unlabelled images, then the labelled ones; only the consistency
    methods read it); ``val``: the plain view of each validation image.
    """

    labelled: CachedViews
    pool: CachedViews | None = None
    val: CachedViews | None = None


@dataclass
class Progress:
    """What the callback receives after every step."""

    step: int
    total: int
    losses: dict[str, float]
    val_error: float | None = None
    checkpointed: bool = False  # this step wrote the checkpoint file


@dataclass
class TrainResult:
    steps_done: int
    best_step: int
    best_val_error: float | None
    history: list[dict[str, Any]]
    stopped_early: bool


def pick_device(name: str = "auto") -> torch.device:
    """CUDA when present (and asked for by "auto"), else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _lr_at(step: int, total: int, base: float) -> float:
    """Linear warm-up over 5% of the steps, then cosine decay to 5% of ``base``."""
    warm = max(1, total // 20)
    if step < warm:
        return base * (step + 1) / warm
    progress = (step - warm) / max(1, total - warm)
    return base * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))


def atomic_torch_save(obj: Any, path: Path) -> None:
    """Write with ``torch.save`` to a temp file, fsync, then rename over ``path``."""
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def predictions_in_original_frame(task: TaskSpec, raw: torch.Tensor, views: Views) -> torch.Tensor:
    """Raw ``[H, B, D]`` of a view -> comparison space, mapped back to the original frame."""
    comp = task.to_comparison(raw.float())
    if task.kind != "keypoints":
        return comp
    h, b, d = comp.shape
    back = keypoints_from_view(comp.view(h, b, d // 2, 2), views, task.flip_permutation)
    return back.reshape(h, b, d)


@contextmanager
def running_stats_frozen(model: torch.nn.Module, frozen: bool = True) -> Iterator[None]:
    """Batch norms keep normalising by the batch but leave their running statistics alone."""
    norms = (
        [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        if frozen
        else []
    )
    saved = [m.momentum for m in norms]
    for m in norms:
        m.momentum = 0.0  # running = (1 - 0) * running + 0 * batch
    try:
        yield
    finally:
        for m, momentum in zip(norms, saved, strict=True):
            m.momentum = momentum


@contextmanager
def channels_last(model: torch.nn.Module | None, enabled: bool = True) -> Iterator[None]:
    """The model's 4-d weights in NHWC order while inside, back in the default order after.

    On a CPU, oneDNN convolutions and batch norms run in NHWC natively; in the default NCHW
    order every call reorders its tensors (docs/RESULTS.md §8 has the measured step times).
    Weights saved or exported later (safetensors, ONNX) must be in the default order again.
    """
    if model is None or not enabled:
        yield
        return
    model.to(memory_format=torch.channels_last)
    try:
        yield
    finally:
        model.to(memory_format=torch.contiguous_format)


class Trainer:
    """Trains ``model`` on ``task``; see the module docstring for the methods."""

    def __init__(self, model: XModel, task: TaskSpec, config: TrainConfig) -> None:
        if config.method not in METHODS:
            raise ValueError(f"unknown method {config.method!r}; choose one of {METHODS}")
        if config.minimax_noise not in MINIMAX_NOISE:
            raise ValueError(
                f"unknown minimax_noise {config.minimax_noise!r}; choose one of {MINIMAX_NOISE}"
            )
        self.model = model
        self.task = task
        self.config = config
        self.device = pick_device(config.device)
        self.model.to(self.device)
        extractor = [p for p in model.extractor.parameters() if p.requires_grad]
        heads = list(model.heads.parameters())
        self.optimizer = torch.optim.AdamW(
            [
                {"params": extractor, "lr_scale": config.extractor_lr_scale},
                {"params": heads, "lr_scale": 1.0},
            ],
            lr=config.lr,
            weight_decay=config.weight_decay,
            # one kernel over every tensor: on a CPU the default loops over them in Python
            # (4.9 against 1.4 ms a step on the cached path's top; bench/train_step_layout.py)
            fused=self.device.type in ("cpu", "cuda"),
        )
        self.teacher: XModel | None = None
        if config.method == "mean_teacher":
            self.teacher = copy.deepcopy(model).requires_grad_(False)
        self.supervised = SupervisedLoss(task)
        self.crossed = CrossedConsistencyLoss(task)
        self.minimax = MinimaxDiscrepancyLoss(task)
        self.mean_teacher = MeanTeacherLoss()
        self.generator = torch.Generator().manual_seed(config.seed)
        self.step = 0
        self.history: list[dict[str, Any]] = []
        self.best_state: dict[str, torch.Tensor] | None = None
        self.best_error: float | None = None
        self.best_step = 0
        self.bad_evals = 0
        self.views: TrainingViews | None = None
        self._val: LabelledSet | None = None
        self._last_view = torch.empty(0, dtype=torch.long)

    def _check_views(
        self,
        views: TrainingViews | None,
        labelled: LabelledSet,
        unlabelled: torch.Tensor | None,
        val: LabelledSet | None,
    ) -> None:
        """Cached views must line up with the sets they stand for."""
        if views is None:
            return
        if self.model.frozen_stages == 0:
            raise ValueError(
                "cached trunk views need a model with frozen stages (freeze_blocks > 0)"
            )
        if len(views.labelled) != len(labelled):
            raise ValueError("views.labelled must have one entry per labelled image")
        if unlabelled is not None and len(unlabelled):
            raise ValueError("with cached views the consistency pool is views.pool, not images")
        if val is not None and len(val) and (views.val is None or len(views.val) != len(val)):
            raise ValueError("views.val must have one entry per validation image")

    # ---- one step -------------------------------------------------------------------------
    def _views(self, images: torch.Tensor, cfg: AugmentConfig) -> Views:
        allow_flip = self.task.kind != "keypoints" or self.task.flip_permutation is not None
        return augment(to_float(images, self.device), cfg, self.generator, allow_flip)

    def _cached_views(
        self, cached: CachedViews, idx: torch.Tensor, avoid: torch.Tensor | None = None
    ) -> Views:
        """One random stored view per image ``idx[b]``; with ``avoid``, a view other than
        ``avoid[b]`` whenever the image has more than one (two heads, two different views)."""
        n = cached.views_per_image
        if avoid is None or n < 2:
            view = torch.randint(n, (len(idx),), generator=self.generator)
        else:
            view = (avoid + 1 + torch.randint(n - 1, (len(idx),), generator=self.generator)) % n
        self._last_view = view
        return cached.pick(idx, view, self.device)

    def _forward(self, model: XModel, inputs: torch.Tensor) -> torch.Tensor:
        """Raw outputs ``[H, B, D]`` of images, or of trunk activations in the cached mode."""
        return model.heads_forward(self._features_of(model, inputs))

    def _features_of(self, model: XModel, inputs: torch.Tensor) -> torch.Tensor:
        return (
            model.features_from_trunk(inputs) if self.views is not None else model.features(inputs)
        )

    def _labelled_batch(
        self, labelled: LabelledSet
    ) -> tuple[Views, torch.Tensor, torch.Tensor | None]:
        idx = torch.randint(len(labelled), (self.config.batch_size,), generator=self.generator)
        if self.views is not None:
            views = self._cached_views(self.views.labelled, idx)
        else:
            views = self._views(labelled.images[idx], self.config.weak)
        target = labelled.targets[idx].to(self.device)
        if self.task.kind == "keypoints":
            target = keypoints_to_view(target.float(), views, self.task.flip_permutation)
        visible = labelled.visible[idx].to(self.device) if labelled.visible is not None else None
        return views, target, visible

    def _loss(self, labelled: LabelledSet, pool: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """This step's weighted losses. ``pool``: uint8 consistency images (None in the cached
        mode, where ``self.views.pool`` stands for them)."""
        cfg = self.config
        progress = self.step / max(1, cfg.steps)
        views, target, visible = self._labelled_batch(labelled)
        losses: dict[str, torch.Tensor] = {}
        pool_size = (
            len(self.views.pool)
            if self.views is not None and self.views.pool is not None
            else (0 if pool is None or self.views is not None else len(pool))
        )
        if cfg.method == "supervised" or pool_size == 0:
            losses["supervised"] = self.supervised(
                self._forward(self.model, views.images), target, visible
            )
            return losses
        idx = torch.randint(pool_size, (cfg.unlabelled_batch_size,), generator=self.generator)
        if self.views is not None:
            assert self.views.pool is not None
            view_a = self._cached_views(self.views.pool, idx)
            view_b = self._cached_views(self.views.pool, idx, avoid=self._last_view)
        else:
            assert pool is not None
            view_a = self._views(pool[idx], cfg.strong)
            view_b = self._views(pool[idx], cfg.strong)
        ramp = math.exp(-5 * (1 - min(1.0, progress / max(cfg.rampup_fraction, 1e-8))) ** 2)
        if cfg.method == "mean_teacher":
            assert self.teacher is not None
            student_l, student_u = self._labelled_and_consistency(
                lambda x: self._forward(self.model, x), views.images, view_a.images, dim=1
            )
            losses["supervised"] = self.supervised(student_l, target, visible)
            student = predictions_in_original_frame(self.task, student_u, view_a)
            with torch.no_grad(), running_stats_frozen(self.teacher, cfg.bn_stats_from_labelled):
                teacher_raw = self._forward(self.teacher, view_b.images)
                teacher = predictions_in_original_frame(self.task, teacher_raw, view_b)
            losses["mean_teacher"] = (
                cfg.consistency_weight * ramp * self.mean_teacher(student, teacher)
            )
            return losses
        f_l, f_u = self._labelled_and_consistency(
            lambda x: self._features_of(self.model, x),
            views.images,
            torch.cat([view_a.images, view_b.images]),
            dim=0,
        )
        f_a, f_b = f_u.chunk(2)
        losses["supervised"] = self.supervised(self.model.heads_forward(f_l), target, visible)
        pa = predictions_in_original_frame(self.task, self.model.heads_forward(f_a), view_a)
        pb = predictions_in_original_frame(self.task, self.model.heads_forward(f_b), view_b)
        if cfg.crossed_stop_gradient:
            pb = pb.detach()
        losses["crossed"] = cfg.consistency_weight * ramp * self.crossed(pa, pb)
        if cfg.minimax_weight > 0:
            self.model.reversal.coeff = warmup_coefficient(progress)
            ra = predictions_in_original_frame(
                self.task, self.model.heads_forward(f_a, reverse=True), view_a
            )
            f_other, view_other = (f_a, view_a) if cfg.minimax_noise == "dropout" else (f_b, view_b)
            rb = predictions_in_original_frame(
                self.task, self.model.heads_forward(f_other, reverse=True), view_other
            )
            losses["minimax"] = cfg.minimax_weight * ramp * self.minimax(ra, rb)
        return losses

    def _labelled_and_consistency(
        self,
        forward: Callable[[torch.Tensor], torch.Tensor],
        labelled: torch.Tensor,
        consistency: torch.Tensor,
        dim: int,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``forward`` on the labelled batch and on the consistency views; ``dim`` is the outputs'
        batch dimension. One concatenated pass, or with ``bn_stats_from_labelled`` two, the second
        leaving the batch-norm running statistics alone."""
        if self.config.bn_stats_from_labelled:
            out_l = forward(labelled)
            with running_stats_frozen(self.model):
                return out_l, forward(consistency)
        out_l, out_u = forward(torch.cat([labelled, consistency])).split(
            [len(labelled), len(consistency)], dim=dim
        )
        return out_l, out_u

    def _update_teacher(self) -> None:
        assert self.teacher is not None
        decay = min(self.config.ema_decay, (self.step + 1) / (self.step + 10))
        with torch.no_grad():
            for t, s in zip(
                self.teacher.state_dict().values(), self.model.state_dict().values(), strict=True
            ):
                if t.dtype.is_floating_point:
                    t.mul_(decay).add_(s.detach(), alpha=1 - decay)
                else:
                    t.copy_(s)

    # ---- evaluation -----------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, data: LabelledSet, batch_size: int = 256) -> float:
        """Mean task error of the heads' averaged prediction (eval mode, no augmentation)."""
        model = self.teacher if self.teacher is not None else self.model
        was_training = model.training
        model.eval()
        errors = []
        cached = self.views.val if self.views is not None and data is self._val else None
        for start in range(0, len(data), batch_size):
            if cached is not None:
                part = torch.arange(start, min(start + batch_size, len(data)))
                inputs = cached.pick(part, torch.zeros_like(part), self.device).images
                raw = self._forward(model, inputs)
            else:
                raw = model(to_float(data.images[start : start + batch_size], self.device))
            comp = self.task.to_comparison(raw.float()).mean(0)
            target = data.targets[start : start + batch_size].to(self.device)
            errors.append(self.task.error(self.task.decode(comp), target))
        model.train(was_training)
        return float(torch.cat(errors).mean())

    # ---- checkpoints ----------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """Everything needed to continue this exact run (loadable with ``weights_only=True``)."""
        state: dict[str, Any] = {
            "config": json.dumps(self.config.to_json()),
            "model_config": json.dumps(self.model.config.to_json()),
            "task": json.dumps(self.task.to_json()),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "step": self.step,
            "rng_cpu": torch.get_rng_state(),
            "rng_data": self.generator.get_state(),
            "history": json.dumps(self.history),
            "best_error": -1.0 if self.best_error is None else self.best_error,
            "best_step": self.best_step,
            "bad_evals": self.bad_evals,
        }
        if torch.cuda.is_available():
            state["rng_cuda"] = torch.cuda.get_rng_state_all()
        if self.teacher is not None:
            state["teacher"] = self.teacher.state_dict()
        if self.best_state is not None:
            state["best_model"] = self.best_state
        return state

    def save_checkpoint(self, path: str | Path) -> None:
        atomic_torch_save(self.state(), Path(path))

    def load_checkpoint(self, path: str | Path) -> None:
        """Restore a run saved by :meth:`save_checkpoint` (never unpickles code)."""
        state = torch.load(Path(path), map_location="cpu", weights_only=True)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step = int(state["step"])
        torch.set_rng_state(state["rng_cpu"])
        if "rng_cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng_cuda"])
        self.generator.set_state(state["rng_data"])
        self.history = json.loads(state["history"])
        self.best_error = None if state["best_error"] < 0 else float(state["best_error"])
        self.best_step = int(state["best_step"])
        self.bad_evals = int(state["bad_evals"])
        self.best_state = state.get("best_model")
        if self.teacher is not None and "teacher" in state:
            self.teacher.load_state_dict(state["teacher"])

    # ---- the loop -------------------------------------------------------------------------
    def fit(
        self,
        labelled: LabelledSet,
        unlabelled: torch.Tensor | None = None,
        val: LabelledSet | None = None,
        callback: Callable[[Progress], None] | None = None,
        checkpoint_path: str | Path | None = None,
        resume: bool = True,
        views: TrainingViews | None = None,
    ) -> TrainResult:
        """Train until ``config.steps`` (or early stop), resuming from ``checkpoint_path`` if it exists.

        ``unlabelled`` is uint8 ``[M, 3, S, S]``; labelled images join it in the consistency pool.
        With ``val``, the best evaluated weights are restored at the end. With ``views``, the
        frozen stages' activations come from those cached views instead of the images.
        """
        if len(labelled) == 0:
            raise ValueError("training needs at least one labelled image")
        self._check_views(views, labelled, unlabelled, val)
        self.views, self._val = views, val
        if checkpoint_path is not None and resume and Path(checkpoint_path).exists():
            self.load_checkpoint(checkpoint_path)
        pool: torch.Tensor | None = None
        if views is None:
            pool = (
                labelled.images if unlabelled is None else torch.cat([unlabelled, labelled.images])
            )
        self.model.train()
        nhwc = self.trains_in_nhwc()  # inputs follow: a convolution with NHWC weights runs NHWC
        with channels_last(self.model, nhwc), channels_last(self.teacher, nhwc):
            stopped_early = self._steps(labelled, pool, val, callback, checkpoint_path)
        if self.best_state is not None:
            target = self.teacher if self.teacher is not None else self.model
            target.load_state_dict(self.best_state)
            if self.teacher is not None:
                self.model.load_state_dict(self.best_state)
        return TrainResult(self.step, self.best_step, self.best_error, self.history, stopped_early)

    def trains_in_nhwc(self) -> bool:
        """Whether :meth:`fit` runs the convolutions in NHWC order: on a CPU (see
        :func:`channels_last`)."""
        return self.device.type == "cpu"

    def _steps(
        self,
        labelled: LabelledSet,
        pool: torch.Tensor | None,
        val: LabelledSet | None,
        callback: Callable[[Progress], None] | None,
        checkpoint_path: str | Path | None,
    ) -> bool:
        """Steps until ``config.steps`` or an early stop (returns whether it stopped early)."""
        cfg = self.config
        use_amp = cfg.amp and self.device.type == "cuda"
        stopped_early = False
        last_checkpoint = time.monotonic()
        while self.step < cfg.steps:
            for group in self.optimizer.param_groups:
                group["lr"] = _lr_at(self.step, cfg.steps, cfg.lr) * group["lr_scale"]
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=use_amp):
                losses = self._loss(labelled, pool)
            total = functools.reduce(operator.add, losses.values())
            self.optimizer.zero_grad(set_to_none=True)
            total.backward()
            self.optimizer.step()
            if self.teacher is not None:
                self._update_teacher()
            self.step += 1
            logged = {k: float(v.detach()) for k, v in losses.items()} | {
                "total": float(total.detach())
            }
            val_error = None
            if (
                val is not None
                and len(val)
                and (self.step % cfg.eval_every == 0 or self.step == cfg.steps)
            ):
                val_error = self.evaluate(val)
                self.history.append({"step": self.step, "val_error": val_error, **logged})
                stopped_early = self._track_best(val_error)
            checkpointed = False
            if (
                checkpoint_path is not None
                and cfg.checkpoint_every > 0
                and self.step % cfg.checkpoint_every == 0
                and time.monotonic() - last_checkpoint >= cfg.checkpoint_min_seconds
            ):
                self.save_checkpoint(checkpoint_path)
                last_checkpoint, checkpointed = time.monotonic(), True
            if callback is not None:
                callback(Progress(self.step, cfg.steps, logged, val_error, checkpointed))
            if stopped_early:
                break
        return stopped_early

    def _track_best(self, val_error: float) -> bool:
        if self.best_error is None or val_error < self.best_error - 1e-9:
            self.best_error, self.best_step, self.bad_evals = val_error, self.step, 0
            source = self.teacher if self.teacher is not None else self.model
            self.best_state = {k: v.detach().clone() for k, v in source.state_dict().items()}
            return False
        self.bad_evals += 1
        return self.config.patience is not None and self.bad_evals >= self.config.patience
