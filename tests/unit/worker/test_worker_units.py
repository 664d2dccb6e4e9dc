"""Worker pieces without a database or broker: settings → configs, labels → targets,
images, clustering, error classes."""

from __future__ import annotations

import io
from typing import Any

import pytest
import torch
from PIL import Image
from sqlalchemy.exc import OperationalError

from worker.errors import JobDataError, is_retryable
from worker.training import scoring
from worker.training.config import job_config
from worker.training.data import ItemRow, core_task, load_image, targets
from xmodel_core.tasks import KeypointTask, RegressionTask


def test_job_config_maps_params_and_defaults(job_args: dict[str, Any]) -> None:
    cfg = job_config(
        {"steps": 30, "lr": 0.01, "num_heads": 3, "val_fraction": 0.25, "clusters": 5}, **job_args
    )
    assert cfg.train.steps == 30 and cfg.train.lr == 0.01 and cfg.train.checkpoint_every == 7
    assert (
        cfg.model.num_heads == 3
        and cfg.model.backbone == "small_cnn"
        and cfg.model.image_size == 16
    )
    assert cfg.val_fraction == 0.25 and cfg.clusters == 5 and cfg.train.device == "cpu"


@pytest.mark.parametrize(
    "params, words",
    [
        ({"stepz": 3}, "unknown training settings"),
        ({"val_fraction": 1.5}, "val_fraction"),
        ({"steps": "many"}, "bad training settings"),
        ({"clusters": 0}, "clusters"),
        ({"seed": True}, "seed"),
        ({"backbone": "small_cnn"}, "unknown training settings"),
    ],
)
def test_job_config_refuses_bad_params(params: dict, words: str, job_args: dict[str, Any]) -> None:
    with pytest.raises(JobDataError, match=words):
        job_config(params, **job_args)


def test_training_settings_schema_matches_the_keys_the_worker_maps() -> None:
    """The API validates with the shared schema; the worker maps these keys onto the core's
    configs. A key on one side only would be accepted by the API and refused (or ignored)
    by the worker."""
    from worker.training.config import JOB_KEYS, MODEL_KEYS, TRAIN_KEYS
    from xmodel_contracts.training_settings import TRAINING_SETTING_KEYS

    assert TRAINING_SETTING_KEYS == MODEL_KEYS | TRAIN_KEYS | JOB_KEYS


def test_core_task_reshapes_ranges_and_pairs() -> None:
    task = core_task(
        {"kind": "regression", "targets": ["a", "b"], "ranges": {"b": [0, 1], "a": [1, 9]}}
    )
    assert isinstance(task, RegressionTask) and task.ranges == [(1, 9), (0, 1)]
    partial = core_task({"kind": "regression", "targets": ["a", "b"], "ranges": {"a": [1, 9]}})
    assert (
        isinstance(partial, RegressionTask) and partial.ranges is None
    )  # the core clamps all targets or none
    points = core_task({"kind": "keypoints", "points": ["l", "r", "n"], "flip_pairs": [["l", "r"]]})
    assert isinstance(points, KeypointTask) and points.flip_permutation == [1, 0, 2]
    single = core_task({"kind": "keypoints", "points": ["n"], "flip_pairs": []})
    assert isinstance(single, KeypointTask) and single.flip_permutation is None
    with pytest.raises(JobDataError):
        core_task({"kind": "segmentation"})


def test_targets_for_each_kind() -> None:
    cls = core_task({"kind": "classification", "classes": ["cat", "dog"]})
    y, vis = targets(
        cls, [ItemRow(1, "s", 10, 10, {"class": "dog"}), ItemRow(2, "s", 10, 10, {"class": "cat"})]
    )
    assert y.tolist() == [1, 0] and vis is None
    reg = core_task({"kind": "regression", "targets": ["age", "h"]})
    y, _ = targets(reg, [ItemRow(1, "s", 10, 10, {"values": {"h": 2.0, "age": 30.0}})])
    assert y.tolist() == [[30.0, 2.0]]
    kp = core_task({"kind": "keypoints", "points": ["a", "b"]})
    y, vis = targets(kp, [ItemRow(1, "s", 200, 100, {"points": [[50, 25, 2], [0, 0, 0]]})])
    assert vis is not None and vis.tolist() == [[1.0, 0.0]]
    assert y.tolist() == [[[0.25, 0.25], [0.0, 0.0]]]
    with pytest.raises(JobDataError, match="does not fit"):
        targets(reg, [ItemRow(1, "s", 10, 10, {"class": "cat"})])


class _Store:
    def __init__(self, data: dict[str, bytes]) -> None:
        self.data = data

    def get(self, sha: str) -> bytes:
        if sha not in self.data:
            raise FileNotFoundError(sha)
        return self.data[sha]


def test_load_image_resizes_and_refuses_bad_bytes() -> None:
    buffer = io.BytesIO()
    Image.new("L", (40, 20), 128).save(buffer, format="PNG")
    store = _Store({"ok": buffer.getvalue(), "bad": b"not an image"})
    image = load_image(store, "ok", 16)  # type: ignore[arg-type]
    assert image.shape == (3, 16, 16) and image.dtype == torch.uint8 and int(image[0, 0, 0]) == 128
    with pytest.raises(JobDataError, match="cannot be decoded"):
        load_image(store, "bad", 16)  # type: ignore[arg-type]
    with pytest.raises(JobDataError, match="missing"):
        load_image(store, "gone", 16)  # type: ignore[arg-type]


def test_cluster_ids_on_a_sample_match_separated_groups(monkeypatch: pytest.MonkeyPatch) -> None:
    gen = torch.Generator().manual_seed(0)
    centres = torch.eye(3) * 10
    features = torch.cat([c + torch.randn(100, 3, generator=gen) * 0.1 for c in centres])
    monkeypatch.setattr(scoring, "KMEANS_SAMPLE", 60)  # force the sample-then-assign path
    ids = scoring.cluster_ids(features, 3, seed=0)
    assert ids.shape == (300,)
    assert all(len(set(ids[i * 100 : (i + 1) * 100].tolist())) == 1 for i in range(3))
    assert len(set(ids.tolist())) == 3
    assert scoring.default_clusters(1) == 1 and scoring.default_clusters(10**7) == 50


def test_retryable_errors() -> None:
    assert is_retryable(OperationalError("SELECT 1", {}, Exception("server closed the connection")))
    assert is_retryable(OSError("disk full"))
    assert not is_retryable(JobDataError("no labels"))
    assert not is_retryable(ValueError("bad"))
