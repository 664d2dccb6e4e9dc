"""Run a model's ONNX export on one image, following the export contract in config.json.

The ONNX graph takes ``images`` float32 [B, 3, H, W] (RGB, scaled to [0, 1], whole image
resized bilinearly to ``preprocess.size``) and returns ``predictions`` float32
[num_heads, B, D], already decoded per head."""

from __future__ import annotations

import io
import json
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from PIL import Image

from server.errors import BadRequest, ServiceUnavailable
from xmodel_contracts.names import EXPORT_FORMAT

SUPPORTED_FORMAT = EXPORT_FORMAT


class OnnxSessionCache:
    """A few loaded inference sessions, least recently used evicted."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._sessions: OrderedDict[str, tuple[ort.InferenceSession, dict[str, Any]]] = (
            OrderedDict()
        )
        self._lock = threading.Lock()

    def get(
        self, onnx_path: Path, config_path: Path, key: str
    ) -> tuple[ort.InferenceSession, dict[str, Any]]:
        with self._lock:
            if key in self._sessions:
                self._sessions.move_to_end(key)
                return self._sessions[key]
        try:
            config = json.loads(config_path.read_text())
            options = ort.SessionOptions()
            options.intra_op_num_threads = 1
            session = ort.InferenceSession(
                str(onnx_path), options, providers=["CPUExecutionProvider"]
            )
        except (OSError, ValueError, RuntimeError, ort.capi.onnxruntime_pybind11_state.Fail) as exc:
            raise ServiceUnavailable(f"model artefacts cannot be loaded ({exc})") from exc
        if config.get("format") != SUPPORTED_FORMAT:
            raise ServiceUnavailable(
                f"model config format {config.get('format')!r} is not {SUPPORTED_FORMAT}"
            )
        with self._lock:
            self._sessions[key] = (session, config)
            while len(self._sessions) > self.capacity:
                self._sessions.popitem(last=False)
        return session, config


def preprocess(image_bytes: bytes, config: dict[str, Any]) -> tuple[np.ndarray, int, int]:
    """Image → [1, 3, H, W] float32, plus the original width and height."""
    spec = config["preprocess"]
    height, width = int(spec["size"][0]), int(spec["size"][1])
    with Image.open(io.BytesIO(image_bytes)) as image:
        original_w, original_h = image.size
        rgb = image.convert("RGB").resize((width, height), Image.Resampling.BILINEAR)
    array = np.asarray(rgb, dtype=np.float32) * float(spec.get("scale", 1 / 255))
    return array.transpose(2, 0, 1)[None, ...].copy(), original_w, original_h


def decode(config: dict[str, Any], heads: np.ndarray, width: int, height: int) -> dict[str, Any]:
    """Mean over heads, named by the task."""
    mean = heads.mean(axis=0)
    task = config["task"]
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
    raise BadRequest(f"unknown task kind {kind!r} in model config")


def predict(
    session: ort.InferenceSession, config: dict[str, Any], image_bytes: bytes
) -> dict[str, Any]:
    batch, width, height = preprocess(image_bytes, config)
    names = config.get("onnx", {})
    output = session.run(
        [names.get("output", "predictions")], {names.get("input", "images"): batch}
    )[0]
    heads = np.asarray(output, dtype=np.float64)[:, 0, :]  # [num_heads, D]
    return {
        "prediction": decode(config, heads, width, height),
        "heads": heads.tolist(),
        "disagreement": float(heads.var(axis=0).mean()),
        "task": config["task"]["kind"],
    }
