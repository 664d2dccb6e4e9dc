"""Start the API (or the embedded service) in a child process and wait until it answers.

Benchmarks and integration tests that need a live server on a free port with their own
environment share these two functions; ``scripts/demo.py``'s ``start_local`` starts the whole
embedded service for the client-side benchmarks.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from xmodel_contracts.launch import api_command
from xmodel_contracts.launch import wait_healthy as _wait_healthy

REPO = Path(__file__).resolve().parents[1]


def wait_healthy(
    url: str, child: subprocess.Popen[bytes], log: Path | None = None, timeout: float = 60
) -> None:
    """Poll ``url/health`` until it answers 200. Raises ``RuntimeError`` (with the end of
    ``log``) when the child exits first or ``timeout`` seconds pass; the child is then killed."""
    try:
        _wait_healthy(url, [child], log=log, timeout=timeout)
    except RuntimeError:
        child.kill()
        raise


def start_uvicorn(
    port: int, env: dict[str, str], log: Path | None = None, timeout: float = 60
) -> tuple[subprocess.Popen[bytes], str]:
    """``uvicorn server.main:app`` on 127.0.0.1:``port`` with ``env`` (output to ``log`` when
    given); returns the child and its base URL once ``/health`` answers."""
    out = log.open("wb") if log is not None else None
    try:
        child = subprocess.Popen(
            api_command("127.0.0.1", port, log_level="warning"),
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT if out is not None else None,
        )
    finally:
        if out is not None:
            out.close()  # the child keeps its own descriptor
    base = f"http://127.0.0.1:{port}"
    wait_healthy(base, child, log, timeout)
    return child, base
