"""The embedded launcher (``scripts/run_embedded.py``) under a worker crash: ``kill -9`` of
its worker mid-training. The API keeps answering, the launcher says what happened and starts
a new worker, the job resumes and finishes, and its history shows the lost attempt."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from worker_helpers import ADMIN_TOKEN, FAST_WORKER_ENV, REPO, png

from xmodel_contracts.launch import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@dataclass
class Launcher:
    process: subprocess.Popen[bytes]
    log: Path
    url: str

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def worker_pids(self) -> list[int]:
        return [int(p) for p in re.findall(r"worker started \(pid (\d+)\)", self.text())]

    def wait_for(self, check: Any, timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = check()
            if value:
                return value
            time.sleep(0.2)
        raise AssertionError(
            f"{what} not seen within {timeout}s; launcher log:\n{self.text()[-6000:]}"
        )


@pytest.fixture
def launcher(tmp_path: Path) -> Iterator[Launcher]:
    port = free_port()
    log = tmp_path / "launcher.log"
    env = {**os.environ, **FAST_WORKER_ENV, "XM_ADMIN_TOKEN": ADMIN_TOKEN}
    for name in ("XM_DATABASE_URL", "XM_STORAGE_DIR", "XM_BROKER_URL", "XM_BROKER_QUEUE"):
        env.pop(name, None)  # the launcher derives them from --data-dir
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "scripts/run_embedded.py",
                "--port",
                str(port),
                "--data-dir",
                str(tmp_path / "data"),
                "--grace",
                "10",
            ],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    running = Launcher(process, log, f"http://127.0.0.1:{port}")
    try:
        running.wait_for(
            lambda: "xmodel is running" in running.text() and running.worker_pids(), 120, "start-up"
        )
        yield running
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(40)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def test_killed_worker_is_restarted_and_its_job_finishes(launcher: Launcher) -> None:
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    with httpx.Client(base_url=launcher.url, timeout=30) as http:
        body = {
            "name": "colours",
            "task": {"kind": "classification", "classes": ["red", "blue"]},
            "image_size": 16,
            "backbone": "small_cnn",
            "training": {
                "steps": 300,
                "batch_size": 32,
                "unlabelled_batch_size": 32,
                "eval_every": 1000,
            },
        }
        created = http.post("/projects", json=body, headers=admin)
        assert created.status_code == 201, created.text
        project_id = created.json()["id"]
        owner = {"Authorization": f"Bearer {created.json()['owner_token']}"}
        files = [
            (
                "files",
                (
                    f"{i}.png",
                    png((200, 30, 30) if i % 2 == 0 else (30, 30, 200), 1000 + i),
                    "image/png",
                ),
            )
            for i in range(24)
        ]
        items = http.post(f"/projects/{project_id}/items", headers=owner, files=files).json()[
            "items"
        ]
        for i, entry in enumerate(items[:12]):
            answer = http.put(
                f"/items/{entry['item']['id']}/label",
                headers=owner,
                json={"class": "red" if i % 2 == 0 else "blue"},
            )
            assert answer.status_code == 200, answer.text
        job_id = http.post(f"/projects/{project_id}/jobs", headers=owner).json()["id"]

        def job() -> dict[str, Any]:
            response = http.get(f"/jobs/{job_id}", headers=owner)
            assert response.status_code == 200, response.text
            return response.json()

        launcher.wait_for(lambda: job()["progress_step"] >= 15, 120, "training progress")
        first = launcher.worker_pids()[-1]
        os.kill(first, signal.SIGKILL)

        # the API keeps answering while the worker is gone and comes back
        for _ in range(10):
            assert http.get("/health").status_code == 200
            assert http.get(f"/projects/{project_id}/stats", headers=owner).status_code == 200
        launcher.wait_for(
            lambda: f"worker (pid {first}) was killed by SIGKILL; restarting" in launcher.text(),
            30,
            "the launcher's log line",
        )
        launcher.wait_for(lambda: len(launcher.worker_pids()) == 2, 30, "a new worker")
        assert launcher.process.poll() is None

        done = launcher.wait_for(
            lambda: (lambda j: j if j["status"] in ("succeeded", "failed", "cancelled") else None)(
                job()
            ),
            240,
            "the job finishing",
        )
        assert done["status"] == "succeeded", done
        assert done["attempts"] == 2
        assert [(e["attempt"], e["kind"]) for e in done["history"]] == [(1, "lost")]
        assert done["metrics"]["resumed_from_step"] >= 5
        assert http.get(f"/projects/{project_id}/suggest?k=3", headers=owner).status_code == 200
