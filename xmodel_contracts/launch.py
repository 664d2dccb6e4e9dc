"""How to start the service's processes: the API (uvicorn) and a worker (Celery), and how to
wait until the API answers. One definition for every launcher: ``scripts/run_embedded.py``
(``make run``), the benchmarks and the integration tests. Standard library only.
"""

from __future__ import annotations

import socket
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from subprocess import Popen, TimeoutExpired

API_APP = "server.main:app"
WORKER_APP = "worker.app"


def embedded_command(port: int, data_dir: Path) -> list[str]:
    """``scripts/run_embedded.py`` (what ``make run`` starts: the API and one worker on SQLite)
    on 127.0.0.1:``port`` over ``data_dir``; for a source checkout (demo, benchmarks, tests)."""
    script = Path(__file__).resolve().parents[1] / "scripts" / "run_embedded.py"
    return [sys.executable, str(script), "--port", str(port), "--data-dir", str(data_dir)]


def embedded_settings(data_dir: Path, database_url: str | None = None) -> dict[str, str]:
    """The ``XM_`` settings of a service kept in ``data_dir``: its database (a SQLite file
    there unless ``database_url``), its storage folder and its embedded SQLite-file broker."""
    return {
        "XM_DATABASE_URL": database_url or f"sqlite:///{data_dir / 'xmodel.db'}",
        "XM_STORAGE_DIR": str(data_dir / "storage"),
        "XM_BROKER_URL": f"sqla+sqlite:///{data_dir / 'broker.sqlite'}",
    }


def api_command(host: str, port: int, *, log_level: str | None = None) -> list[str]:
    """``python -m uvicorn server.main:app`` on ``host:port``."""
    command = [sys.executable, "-m", "uvicorn", API_APP, "--host", host, "--port", str(port)]
    return command + (["--log-level", log_level] if log_level else [])


def worker_command(node_name: str | None = None) -> list[str]:
    """One Celery worker running one task at a time (one training process per machine or GPU).

    Mingle, gossip and heartbeats are off: the job rows, not worker-to-worker messages, say
    who holds what, and the embedded SQLite broker has no fan-out. ``node_name`` (``-n``)
    keeps several workers on one host apart."""
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        WORKER_APP,
        "worker",
        "--pool=solo",
        "--concurrency=1",
        "--loglevel=INFO",
        "--without-mingle",
        "--without-gossip",
        "--without-heartbeat",
    ]
    return command + (["-n", node_name] if node_name else [])


def wait_healthy(
    url: str,
    children: Sequence[Popen[bytes]],
    *,
    log: Path | None = None,
    timeout: float = 60,
) -> None:
    """Poll ``url/health`` until it answers 200. ``RuntimeError`` (ending with the tail of
    ``log``) when one of ``children`` exits first or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(child.poll() is not None for child in children):
            break
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (OSError, urllib.error.URLError):
            pass
        time.sleep(0.2)
    exited = any(child.poll() is not None for child in children)
    tail = log.read_text(errors="replace")[-3000:] if log is not None and log.exists() else ""
    raise RuntimeError(
        f"the API {'process exited' if exited else f'did not answer on {url} within {timeout:.0f} s'}"
        + (f"\n{tail}" if tail else "")
    )


def free_port() -> int:
    """A TCP port nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop_process(process: Popen[bytes], timeout: float) -> None:
    """Terminate ``process`` and wait for it; kill it if it has not exited within ``timeout``
    seconds."""
    process.terminate()
    try:
        process.wait(timeout)
    except TimeoutExpired:
        process.kill()
        process.wait()
