"""The worker loads its training stack when its process starts (``worker/preload.py``), so
the first job does not pay for it and a job's own memory shows as the idle worker's RSS
difference; ``XM_WORKER_PRELOAD=false`` defers it to the first job."""

from __future__ import annotations

from pathlib import Path

import pytest
from worker_helpers import WorkerProcess, worker_env

pytestmark = pytest.mark.integration


def torch_mapped(pid: int) -> bool:
    """Whether the process has torch's native library mapped."""
    return "libtorch_cpu" in Path(f"/proc/{pid}/maps").read_text()


@pytest.mark.parametrize("preload", [True, False])
def test_training_stack_loaded_at_start_only_when_asked(
    pg_setup: dict,
    preload: bool,
) -> None:
    env = worker_env(
        pg_setup["database_url"], pg_setup["storage"], pg_setup["broker_url"], pg_setup["queue"]
    )
    env["XM_WORKER_PRELOAD"] = str(preload).lower()
    process = WorkerProcess(env, pg_setup["logs"]).start(timeout=120)
    try:
        assert process.proc is not None
        assert torch_mapped(process.proc.pid) is preload
        assert ("training stack loaded" in process.log_text()) is preload
    finally:
        process.stop()
