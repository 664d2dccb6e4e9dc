"""Run an exported model (``model.onnx`` + ``config.json``) the one way every consumer must.

The export contract (written by ``xmodel_core.export``): ``config.json`` has ``format``
(:data:`xmodel_contracts.names.EXPORT_FORMAT`), ``task`` (kind and names), ``preprocess``
(``size`` [H, W], ``scale``, RGB, NCHW; the normalisation is inside the graph) and ``onnx``
(input and output names). The graph takes ``images`` float32 ``[B, 3, H, W]`` and returns
``predictions`` float32 ``[num_heads, B, D]``, already decoded per head. The API's predict and
the client's local predict both go through here, so an image is prepared and a prediction
named identically everywhere. Needs numpy, Pillow and onnxruntime (imported when a session
is opened); no torch.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from xmodel_contracts.names import EXPORT_FORMAT

if TYPE_CHECKING:
    import onnxruntime as ort

CONFIG_FILE = "config.json"
ONNX_FILE = "model.onnx"
ONNX_INPUT = "images"
ONNX_OUTPUT = "predictions"


def preprocess_recipe(size: int) -> dict[str, Any]:
    """The ``preprocess`` entries every export carries (what :func:`prepare_image` follows):
    the whole image resized bilinearly to ``size`` x ``size``, RGB, scaled to [0, 1], NCHW."""
    return {
        "size": [size, size],
        "channels": "RGB",
        "scale": 1 / 255,
        "resize": "bilinear",
        "layout": "NCHW",
    }


def read_export_config(path: Path) -> dict[str, Any]:
    """``config.json`` (``path`` is the file) checked for the format this code reads;
    ``ValueError`` for another format or a file that is not JSON, ``OSError`` if unreadable."""
    config = json.loads(Path(path).read_text())
    if not isinstance(config, dict) or config.get("format") != EXPORT_FORMAT:
        found = config.get("format") if isinstance(config, dict) else None
        raise ValueError(f"model config format {found!r} is not {EXPORT_FORMAT}")
    return config


def open_session(onnx_path: Path, threads: int | None = None) -> ort.InferenceSession:
    """An onnxruntime CPU session for ``onnx_path`` (``threads``: that many intra-op threads
    and one inter-op thread, or onnxruntime's defaults)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])


def prepare_image(source: bytes | Path, config: dict[str, Any]) -> tuple[np.ndarray, int, int]:
    """An image (encoded bytes or a file) -> float32 ``[3, H, W]`` as ``config["preprocess"]``
    says (RGB, whole image resized bilinearly, scaled), plus its original width and height."""
    spec = config["preprocess"]
    height, width = int(spec["size"][0]), int(spec["size"][1])
    with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as image:
        original_w, original_h = image.size
        rgb = image.convert("RGB").resize((width, height), Image.Resampling.BILINEAR)
    array = np.asarray(rgb, dtype=np.float32) * float(spec.get("scale", 1 / 255))
    return array.transpose(2, 0, 1).copy(), original_w, original_h


def run_heads(
    session: ort.InferenceSession, config: dict[str, Any], batch: np.ndarray
) -> np.ndarray:
    """``batch`` float32 ``[B, 3, H, W]`` -> every head's decoded output, float64 ``[H, B, D]``."""
    names = config.get("onnx", {})
    output = session.run(
        [names.get("output", ONNX_OUTPUT)], {names.get("input", ONNX_INPUT): batch}
    )[0]
    return np.asarray(output, dtype=np.float64)


def name_prediction(
    task: dict[str, Any], mean: np.ndarray, width: int, height: int
) -> dict[str, Any]:
    """The heads' mean ``[D]`` named by the task: ``{class, probabilities}``, ``{values}``, or
    ``{points}`` in pixels of the original ``width`` x ``height``. ``ValueError`` for an
    unknown kind."""
    kind = task["kind"]
    if kind == "classification":
        classes = task["classes"]
        return {
            "class": classes[int(np.argmax(mean))],
            "probabilities": {name: float(p) for name, p in zip(classes, mean, strict=True)},
        }
    if kind == "regression":
        return {"values": {name: float(v) for name, v in zip(task["targets"], mean, strict=True)}}
    if kind == "keypoints":
        points = mean.reshape(-1, 2) * np.array([width, height], dtype=np.float64)
        return {
            "points": {
                name: [float(x), float(y)]
                for name, (x, y) in zip(task["points"], points, strict=True)
            }
        }
    raise ValueError(f"unknown task kind {kind!r} in model config")
