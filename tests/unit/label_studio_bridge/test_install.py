"""The bridge runs on a ``pip install '.[bridge]'`` machine: the client, FastAPI and uvicorn,
without the server, the worker, torch or a database driver. Checked in a fresh interpreter whose
import system refuses those packages, and in pyproject.toml's extras."""

from __future__ import annotations

import tomllib
from pathlib import Path

from blocked_imports import REPO, run_blocked

BLOCKED = [
    "boto3",
    "celery",
    "server",
    "sqlalchemy",
    "torch",
    "torchvision",
    "worker",
    "xmodel_core",
]


def test_the_bridge_serves_without_server_worker_or_torch(tmp_path: Path) -> None:
    done = run_blocked(
        BLOCKED,
        f"""
        from pathlib import Path
        from fastapi.testclient import TestClient
        from xmodel_client import XModelClient
        import label_studio_bridge.__main__
        from label_studio_bridge.app import create_app
        from label_studio_bridge.bridge import Bridge, BridgeSettings
        from label_studio_bridge.state import State

        bridge = Bridge(
            XModelClient("http://127.0.0.1:9", "token"),
            State(Path("{tmp_path}") / "bridge.sqlite"),
            BridgeSettings(),
        )
        with TestClient(create_app(bridge)) as client:
            health = client.get("/health").json()
            assert health["status"] == "UP" and health["events"]["pending"] == 0, health
            refused = client.post("/setup", json={{"project": "1.1", "schema": "<View/>"}})
            assert refused.status_code == 400 and "0 <Image> tags" in refused.text, refused.text
        print("served")
        """,
        tmp_path,
    )
    assert done.returncode == 0 and "served" in done.stdout, done.stderr[-3000:]


def test_the_bridge_extra_is_the_client_plus_a_web_server() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    bridge = {
        r.split(">")[0].split("=")[0].strip() for r in project["optional-dependencies"]["bridge"]
    }
    assert bridge == {"fastapi", "uvicorn"}
