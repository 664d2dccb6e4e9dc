"""``GET /projects/{id}/export``: every label of a project, streamed."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from server.auth.dependencies import ProjectDep, SessionDep
from server.errors import ERROR_RESPONSES
from server.exports import service
from server.exports.schemas import EXTENSIONS, MEDIA_TYPES, ExportFormat
from server.ids import DbId

router = APIRouter(tags=["export"], responses=ERROR_RESPONSES)


@router.get(
    "/projects/{project_id}/export",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "the labels, streamed",
            "content": {t.split(";")[0]: {} for t in MEDIA_TYPES.values()},
        }
    },
)
def export_labels(
    project_id: DbId,
    project: ProjectDep,
    session: SessionDep,
    request: Request,
    format: ExportFormat = "jsonl",  # noqa: A002 - the public parameter name
    include_unlabelled: Annotated[
        bool, Query(description="also list items without a label")
    ] = False,
) -> StreamingResponse:
    """Every labelled item with its file name, sha256, size, label and latest label revision
    id, in item id order: ``csv``, ``jsonl`` (one object per line) or ``coco`` (classification
    and keypoint projects). Streamed in constant memory, whatever the project's size."""
    service.check_format(project, format)
    body = service.stream(
        request.app.state.session_factory, project, format, include_unlabelled=include_unlabelled
    )
    filename = f"project-{project_id}-labels.{EXTENSIONS[format]}"
    return StreamingResponse(
        body,
        media_type=MEDIA_TYPES[format],
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
