"""The API's predictions: a model's ONNX export run by onnxruntime on the CPU, with a small
cache of open sessions. How an image is prepared and a prediction named is the export
contract's, in ``xmodel_contracts.exported`` (the client's local predict uses the same)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from server.errors import BadRequest, ServiceUnavailable
from xmodel_contracts.exported import (
    name_prediction,
    open_session,
    prepare_image,
    read_export_config,
    run_heads,
)


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
            config = read_export_config(config_path)
            session = open_session(onnx_path, threads=1)
        except (OSError, ValueError, RuntimeError, ort.capi.onnxruntime_pybind11_state.Fail) as exc:
            raise ServiceUnavailable(f"model artefacts cannot be loaded ({exc})") from exc
        with self._lock:
            self._sessions[key] = (session, config)
            while len(self._sessions) > self.capacity:
                self._sessions.popitem(last=False)
        return session, config


def predict_many(
    session: ort.InferenceSession, config: dict[str, Any], images: list[bytes]
) -> list[dict[str, Any]]:
    """One answer per encoded image, run as one batch ``[B, 3, H, W]``: ``{"task",
    "prediction" (the heads' mean, named), "heads" [H][D], "disagreement"}``."""
    prepared = [prepare_image(data, config) for data in images]
    heads_all = run_heads(session, config, np.stack([array for array, _w, _h in prepared]))
    answers = []
    for index, (_array, width, height) in enumerate(prepared):
        heads = heads_all[:, index, :]  # [num_heads, D]
        try:
            named = name_prediction(config["task"], heads.mean(axis=0), width, height)
        except ValueError as exc:
            raise BadRequest(str(exc)) from exc
        answers.append(
            {
                "task": config["task"]["kind"],
                "prediction": named,
                "heads": heads.tolist(),
                "disagreement": float(heads.var(axis=0).mean()),
            }
        )
    return answers


def predict(
    session: ort.InferenceSession, config: dict[str, Any], image_bytes: bytes
) -> dict[str, Any]:
    """The answer for one encoded image (see :func:`predict_many`)."""
    return predict_many(session, config, [image_bytes])[0]
