"""Time of each model export a training job writes, classic vs dynamo ONNX side by side.

Every training job exports safetensors + config, ONNX and TorchScript, so export time is part
of every retrain an annotator waits for. For each backbone the same model is exported with both
ONNX exporters in alternation (``repeats`` times each, so machine noise hits both alike),
verified against the eager model, and the medians are compared. Beside them, the two traced
formats as a job writes them: one trace shared by ONNX and TorchScript, without torch's own
trace check (``shared_trace``), against a trace per format with the check (``separate_traces``).

    python -m bench.export_speed            # mobilenet_v2 at 48 px, small_cnn at 28 px, 3 repeats
    python -m bench.export_speed --repeats 1

Prints a table and writes bench/results/export_speed.json.
"""

from __future__ import annotations

import argparse
import functools
import json
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from xmodel_core.export import (
    ONNX_EXPORTERS,
    export_onnx,
    export_torchscript,
    save_model,
    trace_decoded,
)
from xmodel_core.model import ModelConfig, XModel
from xmodel_core.tasks import RegressionTask

RESULTS = Path(__file__).parent / "results" / "export_speed.json"
MODELS: dict[
    str, dict[str, Any]
] = {  # the benchmarks' and the active-learning run's configurations
    "mobilenet_v2@48": {
        "backbone": "mobilenet_v2",
        "image_size": 48,
        "freeze_blocks": 14,
        "pretrained": True,
    },
    "small_cnn@28": {"backbone": "small_cnn", "image_size": 28, "pretrained": False},
    "mobilenet_v2@128": {  # the regression default
        "backbone": "mobilenet_v2",
        "image_size": 128,
        "freeze_blocks": 14,
        "pretrained": True,
    },
}


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def measure(name: str, repeats: int) -> dict[str, Any]:
    """Median seconds per export kind for one model, and the ONNX outputs' largest difference."""
    task = RegressionTask(targets=["age"], ranges=[(1.0, 116.0)])
    task.fit(torch.tensor([[10.0], [50.0]]))
    model = XModel(ModelConfig(output_dim=1, **MODELS[name])).eval()
    times: dict[str, list[float]] = {
        kind: []
        for kind in (
            "safetensors",
            "torchscript",
            *ONNX_EXPORTERS,
            "separate_traces",
            "shared_trace",
        )
    }
    diffs: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        for _ in range(repeats):
            times["safetensors"].append(_timed(lambda: save_model(model, task, out / "saved"))[0])
            times["torchscript"].append(
                _timed(lambda: export_torchscript(model, task, out / "m.pt"))[0]
            )
            for exporter in ONNX_EXPORTERS:  # alternate, so noise hits both
                seconds, info = _timed(
                    functools.partial(
                        export_onnx, model, task, out / f"{exporter}.onnx", exporter=exporter
                    )
                )
                if info["exporter"] != exporter:
                    raise RuntimeError(f"{exporter} export fell back to {info['exporter']}")
                times[exporter].append(seconds)
                diffs[exporter] = max(diffs.get(exporter, 0.0), info["max_abs_diff"])
            times["separate_traces"].append(
                _timed(lambda: _both_formats(model, task, out, shared=False))[0]
            )
            times["shared_trace"].append(
                _timed(lambda: _both_formats(model, task, out, shared=True))[0]
            )
    median = {kind: statistics.median(values) for kind, values in times.items()}
    return {
        "median_seconds": median,
        "all_seconds": times,
        "max_abs_diff": diffs,
        "dynamo_over_classic": median["dynamo"] / median["classic"],
        "shared_trace_speedup": median["separate_traces"] / median["shared_trace"],
    }


def _both_formats(model: XModel, task: RegressionTask, out: Path, shared: bool) -> None:
    """ONNX (classic) and TorchScript, each verified: from one unchecked trace, or each from
    its own trace with torch's trace check."""
    if shared:
        traced = trace_decoded(model, task)
        export_onnx(model, task, out / "both.onnx", traced=traced)
        export_torchscript(model, task, out / "both.pt", traced=traced)
        return
    export_onnx(model, task, out / "both.onnx")
    export_torchscript(model, task, out / "both.pt", traced=trace_decoded(model, task, True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (a worker's share of the CPU)"
    )
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = {name: measure(name, args.repeats) for name in MODELS}
    print(
        "| model | safetensors | TorchScript | ONNX classic | ONNX dynamo | dynamo / classic "
        "| both, a trace each | both, one trace | speed-up |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        m = r["median_seconds"]
        print(
            f"| {name} | {m['safetensors']:.2f} s | {m['torchscript']:.2f} s | {m['classic']:.2f} s | "
            f"{m['dynamo']:.2f} s | {r['dynamo_over_classic']:.1f}x | {m['separate_traces']:.2f} s "
            f"| {m['shared_trace']:.2f} s | {r['shared_trace_speedup']:.2f}x |"
        )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(
        json.dumps(
            {
                "when": datetime.now(UTC).isoformat(timespec="seconds"),
                "machine": platform.platform(),
                "torch": torch.__version__,
                "threads": args.threads,
                "repeats": args.repeats,
                "results": results,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
