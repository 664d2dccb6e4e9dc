"""Fill the frozen-trunk cache of a project's images ahead of its next training job.

After an upload that added images, the API sends ``views.prefill`` with the project's id. The
worker computes, with the settings a job of the project would run with now, the plain and
strong views of every image and the weak views of the labelled ones, skipping what is cached
already. The next job then finds its views ready: the first training after a large upload
costs what a retrain costs, and its pool scoring runs on stored activations.

Best effort, with no job row: a lost message, a failure or a prefill that computed views for
other settings only means that the job computes the views itself, as it always could. The
worker runs one task at a time, so a prefill never runs beside a training job; it keeps no
views in memory (each chunk is written to disk and dropped) and gives its memory back."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from server.projects import repository as projects
from worker.db import session_factory
from worker.errors import JobDataError
from worker.settings import server_settings, worker_settings
from worker.storage import stores
from worker.training import data
from worker.training.config import worker_job_config
from worker.training.memory import release_memory
from worker.training.views import builder_for
from xmodel_contracts.training_defaults import effective_params
from xmodel_core.model import XModel
from xmodel_core.trainer import pick_device
from xmodel_core.trunk_cache import ViewKind

log = logging.getLogger(__name__)


@dataclass
class PrefillReport:
    """Images computed per view kind (the others were cached already), and the time taken."""

    project_id: int
    computed: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


# project id -> when this process's last prefill of it began (epoch seconds). A request sent
# before that was committed before it too, so that prefill saw its images: uploads in many
# requests cost one or two prefills, not one each.
_STARTED: dict[int, float] = {}


def prefill_project(project_id: int, requested_at: float | None = None) -> PrefillReport | None:
    """Compute the project's missing views; None when there is nothing to do (no such
    project, no frozen stages, the cache off, settings a job would refuse, a request that
    an earlier prefill already covered)."""
    ws = worker_settings()
    if not ws.prefill_views or ws.trunk_cache_mb <= 0:
        return None
    if requested_at is not None and requested_at < _STARTED.get(project_id, -math.inf):
        return None
    _STARTED[project_id] = time.time()
    factory = session_factory()
    with factory() as session:
        project = projects.get(session, project_id)
        if project is None:
            return None
        task_json, backbone, size = dict(project.task), project.backbone, project.image_size
        training = dict(project.training or {})
    started = time.monotonic()
    try:
        task = data.core_task(task_json)
        params = effective_params(task_json["kind"], backbone, training)
        cfg = worker_job_config(params, backbone, size, task, ws)
    except (JobDataError, ValueError, KeyError) as exc:  # the job will report it
        log.info("project %s: no prefill (%s)", project_id, exc)
        return None
    if not cfg.uses_trunk_cache:
        return None
    try:
        torch.manual_seed(cfg.train.seed)
        model = XModel(cfg.model).eval()
        builder = builder_for(
            cfg,
            task,
            model,
            pick_device(cfg.train.device),
            stores().images,
            size,
            Path(server_settings().storage_dir),
            ws,
        )
        labelled = [
            r.sha256 for page in data.iter_items(factory, project_id, "labelled") for r in page
        ]
        unlabelled = [
            r.sha256 for page in data.iter_items(factory, project_id, "unlabelled") for r in page
        ]
        every = labelled + unlabelled
        plan: list[tuple[ViewKind, list[str]]] = [
            ("plain", every),
            ("strong", every),
            ("weak", labelled),
        ]
        report = PrefillReport(project_id)
        for kind, shas in plan:
            report.computed[kind] = builder.fill(shas, kind)
        if builder.cache is not None:
            builder.cache.trim()
        report.seconds = round(time.monotonic() - started, 2)
        log.info(
            "project %s: views prefilled %s in %.1f s", project_id, report.computed, report.seconds
        )
        return report
    finally:
        release_memory()
