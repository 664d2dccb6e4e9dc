"""Predict with a downloaded model on this machine: onnxruntime on the CPU, preparing each
image exactly as the model's ``config.json`` says (size, scale, RGB, NCHW), decoding the mean
over heads by task as the service's own predict does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from xmodel_contracts.exported import (
    CONFIG_FILE,
    ONNX_FILE,
    name_prediction,
    open_session,
    prepare_image,
    read_export_config,
    run_heads,
)


class LocalModel:
    """``model.onnx`` + ``config.json`` from one folder (what ``xmodel model download`` writes)."""

    def __init__(self, folder: Path) -> None:
        self.config: dict[str, Any] = read_export_config(folder / CONFIG_FILE)
        self.session = open_session(folder / ONNX_FILE)

    def predict(self, paths: list[Path]) -> list[dict[str, Any]]:
        """One answer per image: ``prediction`` (named, mean over heads) and ``disagreement``."""
        prepared = [prepare_image(p, self.config) for p in paths]
        heads = run_heads(self.session, self.config, np.stack([p[0] for p in prepared]))
        out = []
        for index, (_x, width, height) in enumerate(prepared):
            per_head = heads[:, index, :]
            out.append(
                {
                    "prediction": name_prediction(
                        self.config["task"], per_head.mean(axis=0), width, height
                    ),
                    "disagreement": float(per_head.var(axis=0).mean()),
                }
            )
        return out
