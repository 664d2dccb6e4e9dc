"""Start the API alone (uvicorn in a child process) for a benchmark and wait until it answers.

Benchmarks that measure the API itself (exports, uploads, the labelling page, load) need a
live server on a free port with their own environment; ``bench.active_learning`` and
``scripts/demo.py`` start the whole embedded service (API + worker) instead.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import httpx

REPO = Path(__file__).resolve().parents[1]


def start_uvicorn(
    port: int, env: dict[str, str], log: IO[bytes] | None = None, timeout: float = 60
) -> tuple[subprocess.Popen[bytes], str]:
    """``uvicorn server.main:app`` on ``port`` with ``env``; returns the child and its base URL
    once ``/health`` answers 200 (the child is killed and ``SystemExit`` raised otherwise)."""
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "server.main:app",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT if log is not None else None,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.poll() is not None:
            break
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                return child, base
        except httpx.HTTPError:
            time.sleep(0.2)
    child.kill()
    raise SystemExit("the API did not start")
