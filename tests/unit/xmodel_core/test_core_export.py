"""Model files and exports: safetensors + JSON round trip, ONNX / TorchScript parity, warm start."""

from __future__ import annotations

import json
from pathlib import Path

import onnxruntime as ort
import pytest
import safetensors.torch
import torch

from xmodel_core.export import (
    DecodedModel,
    ExportError,
    export_onnx,
    export_torchscript,
    load_model,
    load_warm_start,
    save_model,
    trace_decoded,
    verify_onnx,
    verify_torchscript,
)
from xmodel_core.tasks import ClassificationTask

ATOL = 1e-4


def _images(n: int, size: int = 16, seed: int = 5) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def _trained_looking(model):
    """Batch-norm statistics of real batches (not the 0 / 1 defaults), so a save that dropped
    buffers would show; returned in eval mode."""
    model.train()
    with torch.no_grad():
        for seed in range(3):
            model(_images(8, seed=seed))
    model.eval()
    with torch.no_grad():
        out = model(_images(4))
    assert (out - out[:, :1]).abs().amax() > 1e-3, "outputs must depend on the image"
    return model


def test_save_then_load_gives_identical_outputs(task, make_model, tmp_path: Path):
    model = _trained_looking(make_model(task))
    files = save_model(model, task, tmp_path / "m", extra={"trained_on": 12})
    assert set(files) == {"model.safetensors", "config.json"}
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == [
        "config.json",
        "model.safetensors",
    ], "no temp files"
    loaded, loaded_task = load_model(
        tmp_path / "m", weights_sha256=files["model.safetensors"]["sha256"]
    )
    assert loaded_task == task and not loaded.training
    images = _images(4)
    with torch.no_grad():
        assert torch.equal(loaded(images), model(images))
    for key, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], tensor), key


def test_config_json_describes_task_architecture_and_preprocessing(
    make_task, make_model, tmp_path: Path
):
    task = make_task("keypoints")
    model = make_model(task)
    save_model(model, task, tmp_path, extra={"job_id": "j1"})
    config = json.loads((tmp_path / "config.json").read_text())
    assert set(config) == {"format", "task", "model", "num_heads", "preprocess", "onnx", "job_id"}
    assert config["format"] == "xmodel/1" and config["num_heads"] == 2
    assert config["task"] == task.to_json() and config["model"] == model.config.to_json()
    assert config["preprocess"] == {
        "size": [16, 16],
        "channels": "RGB",
        "scale": 1 / 255,
        "resize": "bilinear",
        "layout": "NCHW",
        "mean": [0.5, 0.5, 0.5],
        "std": [0.25, 0.25, 0.25],
        "normalize_inside_model": True,
    }
    assert config["onnx"] == {"input": "images", "output": "predictions"}
    assert not (tmp_path / "model.safetensors").read_bytes().startswith(b"\x80"), "not a pickle"
    with pytest.raises(ValueError, match="overwrite"):
        save_model(model, task, tmp_path / "other", extra={"task": "x"})


def test_load_refuses_a_weights_file_with_another_checksum(make_task, make_model, tmp_path: Path):
    task = make_task("classification")
    save_model(make_model(task), task, tmp_path)
    with pytest.raises(ValueError, match="sha256"):
        load_model(tmp_path, weights_sha256="0" * 64)


def test_decoded_model_outputs_label_units_per_head(make_task, make_model):
    task = make_task("regression")
    task.ranges = [(30.0, 31.0), (0.0, 2.5)]  # a narrow range, so the clamp is exercised
    model = make_model(task).eval()
    images = _images(6)
    with torch.no_grad():
        decoded = DecodedModel(model, task)(images)
        expected = task.decode(task.to_comparison(model(images)))
    assert decoded.shape == (2, 6, 2) and decoded.dtype == torch.float32
    torch.testing.assert_close(decoded, expected)
    assert decoded[..., 0].min() >= 30.0 and decoded[..., 0].max() <= 31.0


@pytest.mark.parametrize("exporter", ["classic", "dynamo"])
def test_onnx_export_matches_eager_with_a_dynamic_batch(task, exporter, make_model, tmp_path: Path):
    model = _trained_looking(make_model(task))
    info = export_onnx(model, task, tmp_path / "model.onnx", exporter=exporter)
    assert info["exporter"] == exporter
    assert info["max_abs_diff"] <= ATOL
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"], (
        "one self-contained file, no temp left"
    )
    session = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["images"]
    assert [o.name for o in session.get_outputs()] == ["predictions"]
    images = _images(5, seed=9)
    (out,) = session.run(None, {"images": images.numpy()})
    with torch.no_grad():
        expected = DecodedModel(model, task)(images)
    torch.testing.assert_close(torch.from_numpy(out), expected, atol=ATOL, rtol=0)
    print(f"ONNX {task.kind}: max |onnx - eager| = {info['max_abs_diff']:.2e}")


def test_torchscript_export_matches_eager(task, make_model, tmp_path: Path):
    model = _trained_looking(make_model(task))
    info = export_torchscript(model, task, tmp_path / "model.ts")
    assert info["max_abs_diff"] <= ATOL
    assert verify_torchscript(model, task, tmp_path / "model.ts", images=_images(7, seed=3)) <= ATOL
    print(f"TorchScript {task.kind}: max |ts - eager| = {info['max_abs_diff']:.2e}")


def test_one_trace_serves_both_formats_with_a_dynamic_batch(task, make_model, tmp_path: Path):
    """A job traces once (batch 2) and writes ONNX and TorchScript from that trace: both must
    still follow the eager model on other batch sizes."""
    model = _trained_looking(make_model(task))
    traced = trace_decoded(model, task)
    onnx_info = export_onnx(model, task, tmp_path / "model.onnx", traced=traced)
    ts_info = export_torchscript(model, task, tmp_path / "model.ts", traced=traced)
    assert onnx_info["exporter"] == "classic"
    assert max(onnx_info["max_abs_diff"], ts_info["max_abs_diff"]) <= ATOL
    images = _images(5, seed=11)
    with torch.no_grad():
        expected = DecodedModel(model, task)(images)
    session = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {"images": images.numpy()})
    torch.testing.assert_close(torch.from_numpy(out), expected, atol=ATOL, rtol=0)
    assert verify_torchscript(model, task, tmp_path / "model.ts", images=images) <= ATOL


def test_verification_catches_an_export_that_no_longer_matches(
    make_task, make_model, tmp_path: Path
):
    task = make_task("classification")
    model = make_model(task).eval()
    export_onnx(model, task, tmp_path / "m.onnx", verify=False)
    export_torchscript(model, task, tmp_path / "m.ts", verify=False)
    with torch.no_grad():
        model.heads[0].net[-1].bias[0] += 1.0  # one class: softmax ignores a shift of all
    with pytest.raises(ExportError):
        verify_onnx(model, task, tmp_path / "m.onnx")
    with pytest.raises(ExportError):
        verify_torchscript(model, task, tmp_path / "m.ts")


def test_warm_start_is_strict_when_everything_matches(make_task, make_model, tmp_path: Path):
    task = make_task("regression")
    old = _trained_looking(make_model(task, seed=1))
    save_model(old, task, tmp_path)
    new = make_model(task, seed=2)
    report = load_warm_start(new, tmp_path)
    assert report.strict and report.loaded == sorted(new.state_dict())
    for key, tensor in old.state_dict().items():
        assert torch.equal(new.state_dict()[key], tensor), key


def test_warm_start_skips_head_tensors_whose_shape_changed(make_model, tmp_path: Path):
    old_task = ClassificationTask(classes=["a", "b", "c"])
    old = make_model(old_task, seed=1)
    save_model(old, old_task, tmp_path)
    new_task = ClassificationTask(classes=["a", "b", "c", "d"])
    new = make_model(new_task, seed=2)
    fresh_output = new.heads[0].net[-1].weight.clone()
    report = load_warm_start(new, tmp_path / "model.safetensors")
    changed = [f"heads.{h}.net.4.{p}" for h in range(2) for p in ("bias", "weight")]
    assert sorted(report.skipped_shape) == changed and not report.strict
    assert torch.equal(new.heads[0].net[-1].weight, fresh_output)
    assert torch.equal(new.heads[0].net[1].weight, old.heads[0].net[1].weight)
    assert torch.equal(new.extractor.trunk[0].weight, old.extractor.trunk[0].weight)


def test_warm_start_handles_more_heads_and_refuses_another_extractor(
    make_task, make_model, tmp_path: Path
):
    task = make_task("regression")
    save_model(make_model(task, num_heads=2), task, tmp_path)
    report = load_warm_start(make_model(task, num_heads=3), tmp_path)
    assert report.missing and all(name.startswith("heads.2.") for name in report.missing)
    weights = safetensors.torch.load_file(tmp_path / "model.safetensors")
    weights["extractor.trunk.0.weight"] = torch.zeros(8, 3, 3, 3)
    safetensors.torch.save_file(weights, tmp_path / "other.safetensors")
    with pytest.raises(ValueError, match="extractor.trunk.0.weight"):
        load_warm_start(make_model(task), tmp_path / "other.safetensors")


def test_warm_start_refuses_a_folder_of_another_format(make_task, make_model, tmp_path: Path):
    task = make_task("regression")
    save_model(make_model(task), task, tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "format": "xmodel/0"}))
    with pytest.raises(ValueError, match="unsupported model format 'xmodel/0'"):
        load_warm_start(make_model(task), tmp_path)


@pytest.mark.parametrize(("preferred", "fallback"), [("classic", "dynamo"), ("dynamo", "classic")])
def test_onnx_falls_back_to_the_other_exporter_when_one_fails(
    preferred, fallback, make_task, make_model, tmp_path, monkeypatch
):
    task = make_task("regression")
    model = _trained_looking(make_model(task))
    real_export = torch.onnx.export

    def preferred_breaks(*args, **kwargs):
        if kwargs.get("dynamo") == (preferred == "dynamo"):
            raise RuntimeError(f"simulated {preferred} failure")
        return real_export(*args, **kwargs)

    monkeypatch.setattr(torch.onnx, "export", preferred_breaks)
    info = export_onnx(model, task, tmp_path / "model.onnx", exporter=preferred)
    assert info["exporter"] == fallback and info["max_abs_diff"] <= ATOL


def test_an_unknown_onnx_exporter_is_refused(make_task, make_model, tmp_path):
    task = make_task("regression")
    with pytest.raises(ValueError, match="unknown ONNX exporter"):
        export_onnx(make_model(task), task, tmp_path / "model.onnx", exporter="tflite")


def test_a_failed_export_leaves_neither_file_nor_temp_file(
    make_task, make_model, tmp_path, monkeypatch
):
    task = make_task("classification")

    def always_breaks(*args, **kwargs):
        raise RuntimeError("simulated failure")

    monkeypatch.setattr(torch.onnx, "export", always_breaks)
    with pytest.raises(RuntimeError, match="simulated"):
        export_onnx(make_model(task), task, tmp_path / "model.onnx")
    assert list(tmp_path.iterdir()) == []
