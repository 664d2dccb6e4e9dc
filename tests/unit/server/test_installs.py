"""The API runs without torch, the client without the server: imported in a fresh interpreter
whose import system refuses the forbidden packages, as on a ``pip install .[server]`` (or a
plain ``pip install .``) machine. And the extras in pyproject.toml say the same."""

from __future__ import annotations

import tomllib
from pathlib import Path

from blocked_imports import REPO, run_blocked


def test_the_api_serves_without_torch(tmp_path: Path) -> None:
    done = run_blocked(
        {"torch", "torchvision", "xmodel_core", "worker", "safetensors", "onnxscript"},
        f"""
        import sys
        from fastapi.testclient import TestClient
        from server.main import create_app
        from server.settings import Settings

        settings = Settings(
            database_url="sqlite:///{tmp_path}/x.db",
            storage_dir="{tmp_path}/storage",
            broker_url="sqla+sqlite:///{tmp_path}/broker.sqlite",
            admin_token="an-admin-token-of-enough-length-0123",
        )
        with TestClient(create_app(settings)) as client:
            assert client.get("/health").status_code == 200
            assert client.get("/metrics").status_code == 200
        import server.models.router, server.models.predict, server.storage.factory
        assert "torch" not in sys.modules
        print("served")
        """,
        tmp_path,
    )
    assert done.returncode == 0 and "served" in done.stdout, done.stderr[-3000:]


def test_the_client_needs_no_server(tmp_path: Path) -> None:
    done = run_blocked(
        {"torch", "torchvision", "fastapi", "sqlalchemy", "celery", "boto3", "server", "worker"},
        """
        import xmodel_client, xmodel_client.cli, xmodel_client.local_predict
        print("imported")
        """,
        tmp_path,
    )
    assert done.returncode == 0 and "imported" in done.stdout, done.stderr[-3000:]


def test_extras_split_server_and_worker() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]

    def names(requirements: list[str]) -> set[str]:
        return {r.split(">")[0].split("=")[0].split("[")[0].strip() for r in requirements}

    base, server, worker = (
        names(project["dependencies"]),
        names(extras["server"]),
        names(extras["worker"]),
    )
    assert not {"torch", "torchvision"} & (base | server)
    assert not {"fastapi", "sqlalchemy", "celery"} & base
    assert {"fastapi", "sqlalchemy", "onnxruntime", "boto3", "prometheus-client"} <= server | base
    assert {"torch", "torchvision", "xmodel-annotate"} <= worker  # the worker takes .[server] too


def test_compose_shares_no_volume_between_api_and_workers() -> None:
    """The images and docker-compose.yml are not built here (no Docker daemon); this checks
    the file's promises: two targets, and API and workers meeting only through the servers."""
    import yaml

    dockerfile = (REPO / "Dockerfile").read_text()
    assert "AS api" in dockerfile and "AS worker" in dockerfile
    api_stage = dockerfile.split("AS api")[1].split("FROM ")[0]
    assert "torch" not in api_stage and "'.[server]'" in api_stage
    services = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
    assert {"postgres", "redis", "seaweedfs", "api", "worker"} <= set(services)
    for name in ("api", "worker", "worker-gpu", "migrate"):
        assert not services[name].get("volumes"), name
    assert services["api"]["build"]["target"] == "api"
    assert services["worker"]["build"]["target"] == "worker"
    shared = ("XM_DATABASE_URL", "XM_BROKER_URL", "XM_STORAGE_BACKEND", "XM_S3_ENDPOINT_URL")
    for key in shared:  # both sides must name the same servers
        assert services["api"]["environment"][key] == services["worker"]["environment"][key]
    assert services["api"]["environment"]["XM_STORAGE_BACKEND"] == "s3"
