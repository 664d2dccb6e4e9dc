"""Model files: safetensors weights + JSON config, ONNX and TorchScript exports, warm start.

A saved model is a folder::

    model.safetensors   the state dict (never a pickle)
    config.json         format, task, architecture, preprocessing, ONNX names, extras

Exports wrap the model in :class:`DecodedModel`, whose output is already in label units, so a
consumer without torch (the API with onnxruntime) needs only ``config.json``'s preprocessing:
RGB, resize (bilinear) to ``size``, scale by 1/255, NCHW float32 — the mean / std
normalisation happens inside the model. Every file appears atomically (temp file, fsync,
rename), so a reader never sees half a model.
"""

from __future__ import annotations

import copy
import json
import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from torch import nn

from xmodel_contracts.exported import CONFIG_FILE, ONNX_INPUT, ONNX_OUTPUT, preprocess_recipe
from xmodel_contracts.files import atomic_write, atomic_write_bytes, sha256_of_file
from xmodel_contracts.names import EXPORT_FORMAT

from .model import ModelConfig, XModel
from .tasks import TaskSpec, task_from_json

FORMAT = EXPORT_FORMAT
WEIGHTS_FILE = "model.safetensors"

ONNX_EXPORTERS = ("classic", "dynamo")  # the first is the default
DEFAULT_ATOL = 1e-4  # absolute, in output units (probabilities, fractions, target units)
DEFAULT_RTOL = 1e-5  # relative, for regression targets in large units (float32 has ~7 digits)

log = logging.getLogger(__name__)


class ExportError(RuntimeError):
    """An export could not be written, or its outputs do not match the eager model."""


# ---- files ---------------------------------------------------------------------------------
def file_info(path: Path) -> dict[str, Any]:
    """``{"path", "sha256", "bytes"}`` of a written file (what the worker records)."""
    return {"path": str(path), "sha256": sha256_of_file(path), "bytes": path.stat().st_size}


# ---- safetensors + JSON --------------------------------------------------------------------
def _standalone_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """State dict with every tensor in its own contiguous CPU storage.

    safetensors refuses tensors that share storage (tied weights, views); a clone per tensor
    removes the sharing while keeping every key, so ``load_state_dict(strict=True)`` works.
    """
    return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in model.state_dict().items()}


def model_config_json(
    model: XModel, task: TaskSpec, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The ``config.json`` document of a saved model (see module docstring)."""
    size = model.config.image_size
    config: dict[str, Any] = {
        "format": FORMAT,
        "task": task.to_json(),
        "model": model.config.to_json(),
        "num_heads": model.config.num_heads,
        "preprocess": preprocess_recipe(size)
        | {
            "mean": [float(v) for v in model.mean.flatten()],
            "std": [float(v) for v in model.std.flatten()],
            "normalize_inside_model": True,
        },
        "onnx": {"input": ONNX_INPUT, "output": ONNX_OUTPUT},
    }
    clash = set(config) & set(extra or {})
    if clash:
        raise ValueError(f"extra keys {sorted(clash)} would overwrite the model's config")
    return config | (extra or {})


def save_model(
    model: XModel, task: TaskSpec, out_dir: str | Path, extra: dict[str, Any] | None = None
) -> dict[str, dict[str, Any]]:
    """Write ``model.safetensors`` and ``config.json`` into ``out_dir``.

    Returns ``{file name: {"path", "sha256", "bytes"}}``. The weights are written first, so a
    reader that finds ``config.json`` finds the weights it describes.
    """
    out = Path(out_dir)
    config = model_config_json(model, task, extra)
    weights = safetensors.torch.save(_standalone_state_dict(model), metadata={"format": FORMAT})
    atomic_write_bytes(out / WEIGHTS_FILE, weights)
    atomic_write_bytes(out / CONFIG_FILE, (json.dumps(config, indent=2) + "\n").encode())
    return {name: file_info(out / name) for name in (WEIGHTS_FILE, CONFIG_FILE)}


def read_config(model_dir: str | Path) -> dict[str, Any]:
    """``config.json`` of a saved model, checked for the format this code writes."""
    config = json.loads((Path(model_dir) / CONFIG_FILE).read_text())
    if config.get("format") != FORMAT:
        raise ValueError(
            f"{model_dir}: unsupported model format {config.get('format')!r}, expected {FORMAT!r}"
        )
    return config


def load_model(model_dir: str | Path, weights_sha256: str | None = None) -> tuple[XModel, TaskSpec]:
    """Rebuild ``(model, task)`` from a folder written by :func:`save_model`, in eval mode.

    The architecture comes from ``config.json``, the weights from safetensors (no unpickling);
    the backbone is built without its pretrained file, which the saved weights replace anyway.
    With ``weights_sha256`` the weights file is checked before it is read.
    """
    model_dir = Path(model_dir)
    config = read_config(model_dir)
    weights_path = model_dir / WEIGHTS_FILE
    if weights_sha256 is not None and file_info(weights_path)["sha256"] != weights_sha256:
        raise ValueError(f"{weights_path}: sha256 mismatch, refusing to load")
    task = task_from_json(config["task"])
    model = XModel(ModelConfig(**config["model"]), load_pretrained=False)
    model.load_state_dict(safetensors.torch.load_file(weights_path), strict=True)
    return model.eval(), task


# ---- the exported graph --------------------------------------------------------------------
class DecodedModel(nn.Module):
    """``images`` float32 ``[B, 3, S, S]`` in [0, 1] -> ``predictions`` float32 ``[H, B, D]`` per head, decoded.

    Classification: probabilities; regression: values in target units, clamped to the task's
    range when it has one; keypoints: ``(x0, y0, x1, y1, ...)`` as fractions of width / height.
    The decoding constants are buffers and the clamp is ``min`` / ``max`` against tensors, so
    ONNX and TorchScript capture them as plain constants. Always in eval mode.
    """

    target_mean: torch.Tensor  # buffers ``[D]`` (regression only)
    target_std: torch.Tensor
    range_lo: torch.Tensor
    range_hi: torch.Tensor

    def __init__(self, model: XModel, task: TaskSpec) -> None:
        super().__init__()
        self.model = model
        self.kind = task.kind
        self.task = task
        self.has_range = False
        if task.kind == "regression":
            if task.mean is None or task.std is None:
                raise ValueError(
                    "RegressionTask.fit(labels) must run before export: decoding needs mean / std"
                )
            self.register_buffer("target_mean", torch.tensor(task.mean, dtype=torch.float32))
            self.register_buffer("target_std", torch.tensor(task.std, dtype=torch.float32))
            if task.ranges is not None:
                self.has_range = True
                self.register_buffer(
                    "range_lo", torch.tensor([r[0] for r in task.ranges], dtype=torch.float32)
                )
                self.register_buffer(
                    "range_hi", torch.tensor([r[1] for r in task.ranges], dtype=torch.float32)
                )
        self.eval()

    def train(self, mode: bool = True) -> DecodedModel:
        """Stays in eval mode: an export must not carry dropout or batch-statistics behaviour."""
        return super().train(False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        comparison = self.task.to_comparison(self.model(images).float())
        if self.kind != "regression":
            return comparison  # probabilities, or keypoint fractions: already decoded
        values = comparison * self.target_std + self.target_mean
        if self.has_range:
            values = torch.maximum(torch.minimum(values, self.range_hi), self.range_lo)
        return values


def _cpu_decoded(model: XModel, task: TaskSpec) -> DecodedModel:
    """A CPU copy wrapped for export: the caller's model keeps its device and mode."""
    return DecodedModel(copy.deepcopy(model).cpu(), task)


def _example_images(model: XModel, batch: int, seed: int = 0) -> torch.Tensor:
    size = model.config.image_size
    return torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


def trace_decoded(
    model: XModel, task: TaskSpec, check_trace: bool = False
) -> torch.jit.ScriptModule:
    """:class:`DecodedModel` traced with ``torch.jit.trace`` on a batch of 2: one trace serves
    the TorchScript file and the classic ONNX exporter alike.

    ``check_trace`` (torch's own check: trace again and compare) is off because every export
    is verified against the eager model on other batch sizes anyway; skipping it halves the
    tracing time (``bench/export_speed.py``)."""
    with torch.no_grad(), _torchscript_deprecation_silenced():
        return torch.jit.trace(
            _cpu_decoded(model, task), (_example_images(model, 2),), check_trace=check_trace
        )


def export_onnx(
    model: XModel,
    task: TaskSpec,
    path: str | Path,
    opset: int = 18,
    verify: bool = True,
    atol: float = DEFAULT_ATOL,
    exporter: str = "classic",
    traced: torch.jit.ScriptModule | None = None,
) -> dict[str, Any]:
    """Export :class:`DecodedModel` to ONNX with a dynamic batch dimension, atomically.

    ``exporter="classic"`` (default) traces with the TorchScript-based exporter: for these
    models it is ~20x faster than the dynamo exporter (0.7 s against 15.5 s for MobileNetV2 at
    48 px on one CPU thread, verification included; ``bench/export_speed.py``), which matters
    because every training job exports.
    ``traced`` (from :func:`trace_decoded`) spares the classic exporter its own trace.
    ``"dynamo"`` uses ``torch.export`` + onnxscript. If the chosen exporter fails, the other one
    runs; the result records which did. Returns ``file_info`` plus ``"exporter"`` and, with
    ``verify``, ``"max_abs_diff"`` against the eager model.
    """
    if exporter not in ONNX_EXPORTERS:
        raise ValueError(f"unknown ONNX exporter {exporter!r}; choose one of {ONNX_EXPORTERS}")
    path = Path(path)
    example = (_example_images(model, 2),)
    used: list[str] = []

    def run(name: str, tmp: Path) -> None:
        if name == "dynamo":
            torch.onnx.export(
                _cpu_decoded(model, task),
                example,
                str(tmp),
                input_names=[ONNX_INPUT],
                output_names=[ONNX_OUTPUT],
                opset_version=opset,
                dynamo=True,
                external_data=False,
                verbose=False,
                dynamic_shapes={ONNX_INPUT: {0: torch.export.Dim("batch", min=1)}},
            )
        else:
            with warnings.catch_warnings():  # the classic exporter announces its deprecation
                warnings.filterwarnings(
                    "ignore", message="You are using the legacy TorchScript-based ONNX export"
                )
                warnings.filterwarnings("ignore", message="The feature will be removed")
                warnings.simplefilter("ignore", category=DeprecationWarning)
                torch.onnx.export(
                    _cpu_decoded(model, task) if traced is None else traced,
                    example,
                    str(tmp),
                    input_names=[ONNX_INPUT],
                    output_names=[ONNX_OUTPUT],
                    opset_version=opset,
                    dynamo=False,
                    dynamic_axes={ONNX_INPUT: {0: "batch"}, ONNX_OUTPUT: {1: "batch"}},
                )
        used.append(name)

    def write(tmp: Path) -> None:
        try:
            run(exporter, tmp)
        except Exception as error:  # noqa: BLE001 - any exporter failure means "try the other one"
            other = next(e for e in ONNX_EXPORTERS if e != exporter)
            log.warning(
                "%s ONNX export failed (%s); falling back to the %s exporter",
                exporter,
                error,
                other,
            )
            run(other, tmp)

    atomic_write(path, write)
    info = file_info(path) | {"exporter": used[-1], "opset": opset}
    if verify:
        info["max_abs_diff"] = verify_onnx(model, task, path, atol=atol)
    return info


def verify_onnx(
    model: XModel,
    task: TaskSpec,
    path: str | Path,
    images: torch.Tensor | None = None,
    atol: float = DEFAULT_ATOL,
) -> float:
    """Run the ONNX file with onnxruntime (CPU) and compare with the eager :class:`DecodedModel`.

    Checks two batch sizes (the batch dimension must be dynamic) unless ``images`` (float
    ``[B, 3, S, S]`` in [0, 1]) are given. Returns the largest absolute difference; raises
    :class:`ExportError` when an element differs by more than ``atol + DEFAULT_RTOL·|eager|``.
    """
    import onnxruntime as ort  # imported here: only export checks need it

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def run(batch: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(session.run([ONNX_OUTPUT], {ONNX_INPUT: batch.numpy()})[0])

    return _verify_against_eager(run, model, task, images, atol, "ONNX")


def _verify_against_eager(
    run: Any, model: XModel, task: TaskSpec, images: torch.Tensor | None, atol: float, what: str
) -> float:
    """Compare ``run(batch)`` with the eager :class:`DecodedModel` on two batch sizes (or ``images``)."""
    wrapper = _cpu_decoded(model, task)
    batches = (
        [images]
        if images is not None
        else [_example_images(model, 3, seed=1), _example_images(model, 1, seed=2)]
    )
    worst = 0.0
    with torch.no_grad():
        for batch in batches:
            batch = batch.float().cpu()
            worst = max(worst, _compare(run(batch), wrapper(batch), atol, what))
    return worst


def _compare(got: torch.Tensor, want: torch.Tensor, atol: float, what: str) -> float:
    """Largest ``|got - want|``; raises unless every element is within ``atol + rtol·|want|``."""
    if got.shape != want.shape:
        raise ExportError(f"{what} output shape {tuple(got.shape)} != eager {tuple(want.shape)}")
    if want.numel() == 0:
        return 0.0
    error = (got.float() - want.float()).abs()
    allowed = atol + DEFAULT_RTOL * want.float().abs()
    if not bool((error <= allowed).all()):  # also catches NaN
        raise ExportError(
            f"{what} output differs from the eager model by up to {float(error.max()):.3g} (atol {atol:g})"
        )
    return float(error.max())


@contextmanager
def _torchscript_deprecation_silenced() -> Iterator[None]:
    """Recent torch marks ``torch.jit`` deprecated (FutureWarning); the format is still asked for."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"torch\.jit")
        yield


def export_torchscript(
    model: XModel,
    task: TaskSpec,
    path: str | Path,
    verify: bool = True,
    atol: float = DEFAULT_ATOL,
    traced: torch.jit.ScriptModule | None = None,
) -> dict[str, Any]:
    """Save :class:`DecodedModel` traced (``traced``, else :func:`trace_decoded`) atomically.

    Tracing records one batch size's ops, none of which depend on the batch size here; the
    check runs other batch sizes to prove it. Returns ``file_info`` (+ ``max_abs_diff``).
    """
    path = Path(path)
    module = trace_decoded(model, task) if traced is None else traced
    with _torchscript_deprecation_silenced():
        atomic_write(path, lambda tmp: torch.jit.save(module, str(tmp)))
    info = file_info(path)
    if verify:
        info["max_abs_diff"] = verify_torchscript(model, task, path, atol=atol)
    return info


def verify_torchscript(
    model: XModel,
    task: TaskSpec,
    path: str | Path,
    images: torch.Tensor | None = None,
    atol: float = DEFAULT_ATOL,
) -> float:
    """Load the TorchScript file and compare it with the eager :class:`DecodedModel` (see ``verify_onnx``)."""
    with _torchscript_deprecation_silenced():
        loaded = torch.jit.load(str(path), map_location="cpu")
    return _verify_against_eager(loaded, model, task, images, atol, "TorchScript")


# ---- warm start ----------------------------------------------------------------------------
@dataclass
class WarmStartReport:
    """What :func:`load_warm_start` did: tensor names loaded, and head tensors left as initialised."""

    loaded: list[str] = field(default_factory=list)
    skipped_shape: list[str] = field(default_factory=list)  # head tensors whose shape changed
    missing: list[str] = field(default_factory=list)  # head tensors the old model did not have
    unexpected: list[str] = field(default_factory=list)  # old head tensors with no place here

    @property
    def strict(self) -> bool:
        return not (self.skipped_shape or self.missing or self.unexpected)


def _is_head(name: str) -> bool:
    return name.startswith("heads.")


def load_warm_start(model: XModel, source: str | Path) -> WarmStartReport:
    """Load an earlier model's weights (a saved folder or a ``.safetensors`` file) into ``model``.

    Strict when every name and shape matches. Otherwise head tensors whose shape changed (a
    class added, a target added) or that exist on one side only (a changed number of heads)
    keep their fresh initialisation and are reported — and logged; a mismatch in the extractor
    or the normalisation buffers means a different architecture and raises ``ValueError``.
    """
    source = Path(source)
    if source.is_dir():
        read_config(source)  # a folder of another format is refused, not half-read
    weights = source / WEIGHTS_FILE if source.is_dir() else source
    old = safetensors.torch.load_file(weights)
    new = model.state_dict()
    report = WarmStartReport()
    usable: dict[str, torch.Tensor] = {}
    for name, tensor in old.items():
        if name not in new:
            if not _is_head(name):
                raise ValueError(f"warm start: {name} is not part of this architecture")
            report.unexpected.append(name)
        elif tensor.shape != new[name].shape:
            if not _is_head(name):
                raise ValueError(
                    f"warm start: {name} changed shape {tuple(tensor.shape)} -> {tuple(new[name].shape)}"
                )
            report.skipped_shape.append(name)
        else:
            usable[name] = tensor
    for name in new:
        if name not in old:
            if not _is_head(name):
                raise ValueError(f"warm start: {name} missing from {weights}")
            report.missing.append(name)
    model.load_state_dict(usable, strict=report.strict)
    report.loaded = sorted(usable)
    if not report.strict:
        log.info(
            "warm start from %s: kept fresh %s (shape changed), %s (missing); ignored %s",
            weights,
            report.skipped_shape,
            report.missing,
            report.unexpected,
        )
    return report


__all__ = [
    "DecodedModel",
    "ExportError",
    "WarmStartReport",
    "export_onnx",
    "export_torchscript",
    "trace_decoded",
    "load_model",
    "load_warm_start",
    "read_config",
    "save_model",
    "verify_onnx",
    "verify_torchscript",
]
