"""A real Label Studio, the annotation service and the bridge, each in a child process on a
free port, for the bridge's end-to-end tests and its benchmark.

Label Studio comes from its own virtual environment (``make label-studio`` builds
``.venv-label-studio``; ``$XM_LABEL_STUDIO`` may name another ``label-studio`` executable),
runs on SQLite in a temporary folder, and gets its user and API token from its own
``start --username --password --user-token`` command.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.live_api import QUICK_SERVICE_ENV, embedded_service, stop, wait_healthy
from xmodel_contracts.launch import free_port

REPO = Path(__file__).resolve().parents[1]
LABEL_STUDIO_VENV = REPO / ".venv-label-studio"


def label_studio_executable() -> Path | None:
    """The ``label-studio`` command to run, or None when it is not installed."""
    named = os.environ.get("XM_LABEL_STUDIO")
    candidate = Path(named) if named else LABEL_STUDIO_VENV / "bin" / "label-studio"
    return candidate if candidate.is_file() and os.access(candidate, os.X_OK) else None


@dataclass
class LabelStudioProcess:
    """A running Label Studio: its URL, its user's API token, and an HTTP client using it."""

    url: str
    token: str
    http: httpx.Client

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        """Call the REST API; raise with Label Studio's answer on an error status."""
        answer = self.http.request(method, path, **kwargs)
        if answer.status_code >= 400:
            raise RuntimeError(f"{method} {path}: {answer.status_code} {answer.text[:2000]}")
        return answer.json() if answer.content else None


@dataclass
class Stack:
    """Label Studio, the annotation service (URL, admin token) and the bridge, all running."""

    studio: LabelStudioProcess
    xmodel_url: str
    admin_token: str
    bridge_url: str


@contextmanager
def label_studio(data_dir: Path, timeout: float = 600) -> Iterator[LabelStudioProcess]:
    """Start Label Studio on a free port with SQLite in ``data_dir``. Local addresses are
    allowed for ML backends and webhooks (the bridge runs on 127.0.0.1), and webhooks may
    take 10 s. ``$XM_LABEL_STUDIO_URL`` and ``$XM_LABEL_STUDIO_TOKEN`` name one already running
    (started with the same settings) instead."""
    running = os.environ.get("XM_LABEL_STUDIO_URL")
    if running:  # one already started the same way (a quicker edit-test cycle)
        token = os.environ["XM_LABEL_STUDIO_TOKEN"]
        with httpx.Client(
            base_url=running, headers={"Authorization": f"Token {token}"}, timeout=120
        ) as http:
            yield LabelStudioProcess(url=running, token=token, http=http)
        return
    executable = label_studio_executable()
    if executable is None:
        raise RuntimeError("Label Studio is not installed: run `make label-studio`")
    port = free_port()
    token = secrets.token_hex(20)
    env = {
        **os.environ,
        "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir),
        "ML_BLOCK_LOCAL_IP": "false",
        "SSRF_PROTECTION_ENABLED": "false",
        "WEBHOOK_TIMEOUT": "10",
        "LOCAL_FILES_SERVING_ENABLED": "true",
        "LOCAL_FILES_DOCUMENT_ROOT": str(data_dir),
        "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
        "COLLECT_ANALYTICS": "false",
        "SENTRY_DSN": "",
        "FRONTEND_SENTRY_DSN": "",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    log = data_dir / "label-studio.log"
    with log.open("wb") as out:
        child = subprocess.Popen(
            [
                str(executable),
                "start",
                "--no-browser",
                "--internal-host",
                "127.0.0.1",
                "--port",
                str(port),
                "--data-dir",
                str(data_dir / "data"),
                "--username",
                "bridge-test@example.com",
                "--password",
                secrets.token_hex(12),
                "--user-token",
                token,
                "--enable-legacy-api-token",
            ],
            cwd=data_dir,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, child, log, timeout=timeout)
        with httpx.Client(
            base_url=url, headers={"Authorization": f"Token {token}"}, timeout=120
        ) as http:
            yield LabelStudioProcess(url=url, token=token, http=http)
    finally:
        stop(child)


@contextmanager
def xmodel_service(data_dir: Path) -> Iterator[tuple[str, str]]:
    """The embedded service (API + one worker, SQLite): its URL and admin token."""
    with embedded_service(data_dir, QUICK_SERVICE_ENV) as service:
        yield service


@contextmanager
def bridge(
    data_dir: Path, xmodel_url: str, admin_token: str, project: dict[str, Any], *extra: str
) -> Iterator[str]:
    """``python -m label_studio_bridge`` on a free port; yields its URL."""
    port = free_port()
    log = data_dir / "bridge.log"
    with log.open("wb") as out:
        child = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "label_studio_bridge",
                "--port",
                str(port),
                "--xmodel-url",
                xmodel_url,
                f"--xmodel-token={admin_token}",  # "=": a token may start with "-"
                "--data-dir",
                str(data_dir / "bridge"),
                "--project",
                json.dumps(project),
                *extra,
            ],
            cwd=REPO,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, child, log, timeout=60)
        yield url
    finally:
        stop(child)


def wait_until(check: Any, timeout: float = 60, interval: float = 0.3, what: str = "") -> Any:
    """Poll ``check()`` until it returns something truthy; raise after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up waiting for {what or check} after {timeout:.0f} s")
        time.sleep(interval)
