"""``POST /projects/{id}/labels/import``: a label file (CSV, JSON lines, COCO) onto items."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool

from server.auth.dependencies import OwnerProjectDep, PrincipalDep, SessionDep
from server.errors import ERROR_RESPONSES
from server.ids import DbId
from server.imports import service
from server.imports.schemas import ImportFormat, ImportReport, MatchBy
from server.projects.service import get_project

router = APIRouter(tags=["labels"], responses=ERROR_RESPONSES)
IMPORT_BODY = {
    "requestBody": {
        "required": True,
        "description": "the label file itself, as the body",
        "content": {"application/json": {}, "application/x-ndjson": {}, "text/csv": {}},
    }
}


@router.post(
    "/projects/{project_id}/labels/import", response_model=ImportReport, openapi_extra=IMPORT_BODY
)
async def import_labels(
    project_id: DbId,
    project: OwnerProjectDep,
    principal: PrincipalDep,
    session: SessionDep,
    request: Request,
    format: ImportFormat,  # noqa: A002 - the public parameter name
    match: MatchBy = "auto",
    dry_run: Annotated[bool, Query(description="report what would change; store nothing")] = False,
    allow_unmatched: Annotated[
        bool, Query(description="skip labels of images not in the project")
    ] = False,
) -> ImportReport:
    """Label items from a file sent as the request body (owner): ``csv`` (columns ``file_name``
    or ``sha256``, and ``label``), ``jsonl`` (``{"file_name" | "sha256": ..., "label": {...}}``
    per line) or ``coco`` (categories for classification, keypoints with visibility for
    keypoint projects). Items are found by sha256 or by the name they were uploaded under.
    All-or-nothing: an error names the line or COCO id and nothing is stored."""
    await run_in_threadpool(session.commit)  # end the auth read before the body arrives
    data = await request.body()

    def work() -> ImportReport:
        project = get_project(session, project_id)
        return service.import_labels(
            session,
            request.app.state.job_queue,
            project,
            format,
            data,
            match=match,
            dry_run=dry_run,
            allow_unmatched=allow_unmatched,
            token_id=principal.token_id,
        )

    return await run_in_threadpool(work)
