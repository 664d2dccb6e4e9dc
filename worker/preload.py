"""Load the training stack when a worker process starts, not inside its first job.

Importing torch, torchvision and onnxruntime maps about 0.8 GB of libraries into the process
(the CUDA build of torch counts most of it). Done in ``worker_process_init`` (the pool's child
process, after any fork, so a forking parent still never touches CUDA), the first job starts
as fast as later ones, and a job's own memory shows as the difference between the idle
worker's resident memory before and after it (``XM_WORKER_PRELOAD=false`` defers the imports
to the first job)."""

from __future__ import annotations

import logging
from typing import Any

from celery import signals

from worker.settings import worker_settings

log = logging.getLogger(__name__)


@signals.worker_process_init.connect
def preload_training_stack(**_: Any) -> None:
    if not worker_settings().worker_preload:
        return
    import onnxruntime  # noqa: F401  (scoring and the frozen-trunk views)

    import worker.training.runner  # noqa: F401  (torch, torchvision, xmodel_core)

    log.info("training stack loaded")
