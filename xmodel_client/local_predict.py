"""Predict with a downloaded model on this machine: onnxruntime on the CPU, preparing each
image exactly as the model's ``config.json`` says (size, scale, RGB, NCHW), decoding the mean
over heads by task as the service's own predict does."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from xmodel_contracts.names import EXPORT_FORMAT

SUPPORTED_FORMAT = EXPORT_FORMAT


class LocalModel:
    """``model.onnx`` + ``config.json`` from one folder (what ``xmodel model download`` writes)."""

    def __init__(self, folder: Path) -> None:
        import onnxruntime as ort

        self.config: dict[str, Any] = json.loads((folder / "config.json").read_text())
        if self.config.get("format") != SUPPORTED_FORMAT:
            raise ValueError(
                f"model config format {self.config.get('format')!r} is not {SUPPORTED_FORMAT}"
            )
        self.session = ort.InferenceSession(
            str(folder / "model.onnx"), providers=["CPUExecutionProvider"]
        )

    def prepare(self, path: Path) -> tuple[np.ndarray, int, int]:
        """``[3, H, W]`` float32 and the original width and height."""
        spec = self.config["preprocess"]
        height, width = int(spec["size"][0]), int(spec["size"][1])
        with Image.open(path) as image:
            original = image.size
            rgb = image.convert("RGB").resize((width, height), Image.Resampling.BILINEAR)
        array = np.asarray(rgb, dtype=np.float32) * float(spec.get("scale", 1 / 255))
        return array.transpose(2, 0, 1), original[0], original[1]

    def predict(self, paths: list[Path]) -> list[dict[str, Any]]:
        """One answer per image: ``prediction`` (named, mean over heads) and ``disagreement``."""
        prepared = [self.prepare(p) for p in paths]
        names = self.config.get("onnx", {})
        batch = np.stack([p[0] for p in prepared])
        heads = np.asarray(
            self.session.run(
                [names.get("output", "predictions")], {names.get("input", "images"): batch}
            )[0],
            dtype=np.float64,
        )
        out = []
        for index, (_x, width, height) in enumerate(prepared):
            per_head = heads[:, index, :]
            out.append(
                {
                    "prediction": decode(self.config["task"], per_head.mean(axis=0), width, height),
                    "disagreement": float(per_head.var(axis=0).mean()),
                }
            )
        return out


def decode(task: dict[str, Any], mean: np.ndarray, width: int, height: int) -> dict[str, Any]:
    kind = task["kind"]
    if kind == "classification":
        classes = task["classes"]
        return {
            "class": classes[int(np.argmax(mean))],
            "probabilities": {n: float(p) for n, p in zip(classes, mean, strict=True)},
        }
    if kind == "regression":
        return {"values": {n: float(v) for n, v in zip(task["targets"], mean, strict=True)}}
    if kind == "keypoints":
        points = mean.reshape(-1, 2) * np.array([width, height], dtype=np.float64)
        return {
            "points": {
                n: [float(x), float(y)] for n, (x, y) in zip(task["points"], points, strict=True)
            }
        }
    raise ValueError(f"unknown task kind {kind!r}")
