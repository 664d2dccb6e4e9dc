"""Start the API (or the embedded service) in a child process and wait until it answers.

Benchmarks and integration tests that need a live server on a free port with their own
environment share these functions (``embedded_service``: the API and one worker, as
``make run`` starts them); ``scripts/demo.py``'s ``start_local`` starts the whole
embedded service for the client-side benchmarks.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from xmodel_contracts.launch import api_command, embedded_command, free_port
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


def stop(child: subprocess.Popen[bytes], timeout: float = 20) -> None:
    """Ask ``child`` to stop as Ctrl-C would; kill it if it has not within ``timeout``."""
    if child.poll() is None:
        child.send_signal(signal.SIGINT)
        try:
            child.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


# fast progress and heartbeats, one thread: what a test or benchmark of the loop wants
QUICK_SERVICE_ENV = {
    "OMP_NUM_THREADS": "1",
    "XM_PROGRESS_SECONDS": "0.2",
    "XM_HEARTBEAT_SECONDS": "1",
}


@contextmanager
def embedded_service(
    data_dir: Path, env: dict[str, str] | None = None, timeout: float = 180
) -> Iterator[tuple[str, str]]:
    """``scripts/run_embedded.py`` (API + one worker, SQLite) on a free port over ``data_dir``
    with ``env`` added to this process's environment; yields (URL, admin token), then stops it."""
    port = free_port()
    log = data_dir / "service.log"
    with log.open("wb") as out:
        child = subprocess.Popen(
            embedded_command(port, data_dir),
            cwd=REPO,
            env={**os.environ, **(env or {})},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, child, log, timeout=timeout)
        yield url, (data_dir / "admin_token").read_text().strip()
    finally:
        stop(child, timeout=60)
