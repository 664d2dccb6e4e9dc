"""Upload, train and predict with images and models in a real S3 server (SeaweedFS), the API
and the worker each with its own local folder: nothing passes between them but PostgreSQL,
Redis and the bucket."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from s3_test_server import S3Server
from worker_helpers import Client, WorkerProcess, finished, make_client, png, worker_env

from server.storage.s3 import S3Objects

pytestmark = pytest.mark.integration

TRAINING = {"steps": 12, "batch_size": 8, "unlabelled_batch_size": 8, "eval_every": 6}


@pytest.fixture(scope="module")
def s3_setup(pg_setup: dict, s3_server: S3Server, tmp_path_factory: pytest.TempPathFactory) -> dict:
    bucket = f"xm-jobs-{pg_setup['queue'][-8:]}"
    return {
        **pg_setup,
        "bucket": bucket,
        "api_dir": tmp_path_factory.mktemp("api-local"),
        "worker_dir": tmp_path_factory.mktemp("worker-local"),
        "objects": S3Objects.connect(
            s3_server.endpoint_url,
            bucket,
            access_key_id=s3_server.access_key_id,
            secret_access_key=s3_server.secret_access_key,
        ),
    }


@pytest.fixture(scope="module")
def s3_worker(s3_setup: dict, s3_server: S3Server) -> Iterator[WorkerProcess]:
    env = worker_env(
        s3_setup["database_url"], s3_setup["worker_dir"], s3_setup["broker_url"], s3_setup["queue"]
    ) | s3_server.env(s3_setup["bucket"])
    process = WorkerProcess(env, s3_setup["logs"]).start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def s3_client(s3_setup: dict, s3_server: S3Server) -> Iterator[Client]:
    yield from make_client(
        s3_setup["database_url"],
        s3_setup["api_dir"],
        s3_setup["broker_url"],
        s3_setup["queue"],
        **s3_server.settings(s3_setup["bucket"]),
    )


def test_upload_train_predict_on_s3(
    s3_client: Client,
    s3_worker: WorkerProcess,
    s3_setup: dict,
) -> None:
    client, objects = s3_client, s3_setup["objects"]
    project_id, owner, ids = client.project(TRAINING, n_images=20, n_labelled=10)
    images = set(objects.names("images/"))
    assert len(images) == 20  # every upload is an object, none a local file
    assert not any(p.is_file() for p in (s3_setup["api_dir"]).rglob("*"))
    image = client.http.get(f"/items/{ids[0]}/image", headers=owner)
    assert image.status_code == 200
    assert hashlib.sha256(image.content).hexdigest() == image.headers["X-Content-SHA256"]

    job_id = client.train(project_id, owner)
    job = client.wait_job(job_id, owner, finished, timeout=180, worker=s3_worker)
    assert job["status"] == "succeeded", (job, s3_worker.log_text()[-4000:])
    assert client.counts(project_id)["scored_items"] == 10

    # the model's files are objects under one content-addressed folder; the job's scratch
    # (snapshot, checkpoint) is gone from the bucket once it succeeded
    model = client.http.get(f"/models/{job['model_id']}", headers=owner).json()
    stored = set(objects.names(f"models/{project_id}/{job_id}/"))
    assert len(stored) == 4 and len({key.rsplit("/", 1)[0] for key in stored}) == 1
    assert list(objects.names(f"jobs/{job_id}/")) == []
    for artefact in model["artefacts"]:
        got = client.http.get(artefact["download_url"], headers=owner)
        assert got.status_code == 200, got.text
        assert hashlib.sha256(got.content).hexdigest() == artefact["sha256"]
        if artefact["format"] == "config":
            assert json.loads(got.content)["job_id"] == job_id

    predicted = client.http.post(
        f"/models/{job['model_id']}/predict",
        headers=owner,
        files={"file": ("x.png", png((200, 30, 30), 4242), "image/png")},
    )
    assert predicted.status_code == 200, predicted.text
    assert predicted.json()["prediction"]["class"] in ("red", "blue")
    guess = client.http.get(f"/items/{ids[15]}/prediction", headers=owner)
    assert guess.status_code == 200, guess.text

    # a retrain warm-starts from the active model, read back from the bucket by the worker
    client.owner_api(owner).set_label(ids[12], {"class": "red"})
    second = client.train(project_id, owner)
    job2 = client.wait_job(second, owner, finished, timeout=180, worker=s3_worker)
    assert job2["status"] == "succeeded", (job2, s3_worker.log_text()[-4000:])
    assert job2["metrics"].get("warm_start_from_version") == 1, job2["metrics"]

    # the worker's folder holds only its caches; the API's only downloaded model files
    worker_files = [p for p in Path(s3_setup["worker_dir"]).rglob("*") if p.is_file()]
    assert not any("images" in p.parts for p in worker_files)
    api_files = [p for p in Path(s3_setup["api_dir"]).rglob("*") if p.is_file()]
    assert api_files and all("cache" in p.parts for p in api_files)

    deleted = client.http.delete(
        f"/projects/{project_id}", headers=owner, params={"confirm": "colours"}
    )
    assert deleted.status_code == 200, deleted.text
    assert list(objects.names(f"models/{project_id}/")) == []
    assert list(objects.names("images/")) == []


def test_publish_refuses_a_file_that_did_not_arrive_whole(
    s3_setup: dict,
    tmp_path: Path,
) -> None:
    """The worker creates a model's row only after every file is stored and checked: a file
    whose bytes are not the exported ones stops the publication with an error."""
    from server.storage import S3ArtefactStore
    from worker.training.artefacts import publish_artefacts

    store = S3ArtefactStore(s3_setup["objects"], tmp_path / "cache")
    files = {}
    for fmt, name in (("config", "config.json"), ("onnx", "model.onnx")):
        path = tmp_path / name
        path.write_bytes(name.encode() * 100)
        files[fmt] = {"path": str(path), "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    published = publish_artefacts(store, 999, 1, files)
    assert {info["key"].rsplit("/", 1)[0] for info in published.values()} == {
        published["config"]["key"].rsplit("/", 1)[0]
    }
    (tmp_path / "model.onnx").write_bytes(b"changed after export")  # e.g. a torn local write
    with pytest.raises(OSError, match="sha256"):
        publish_artefacts(store, 999, 2, files)
