"""Model registry routes: list, get, download artefacts, predict with the ONNX export."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse
from starlette.datastructures import UploadFile

from server.auth.dependencies import PrincipalDep, ProjectDep, SessionDep
from server.auth.service import Principal, accessible
from server.db.models import ModelVersion
from server.errors import (
    ERROR_RESPONSES,
    BadRequest,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
    UnsupportedMediaType,
)
from server.ids import DbId
from server.models import predict as onnx_predict
from server.models import repository, service
from server.models.schemas import ArtefactFormat, ModelRead, PredictRead
from server.uploads.images import check_image
from server.uploads.openapi import multipart_body

router = APIRouter(tags=["models"], responses=ERROR_RESPONSES)
PREDICT_OPENAPI = multipart_body(
    {"file": {"type": "string", "format": "binary", "description": "one image"}},
    required=["file"],
)


def _load_model(session: SessionDep, principal: Principal, model_id: int) -> ModelVersion:
    return accessible(principal, repository.get(session, model_id), "model")


@router.get("/projects/{project_id}/models", response_model=list[ModelRead])
def list_models(project_id: DbId, project: ProjectDep, session: SessionDep) -> list[ModelRead]:
    return [service.to_read(m) for m in repository.list_for_project(session, project_id)]


@router.get("/models/{model_id}", response_model=ModelRead)
def get_model(model_id: DbId, principal: PrincipalDep, session: SessionDep) -> ModelRead:
    return service.to_read(_load_model(session, principal, model_id))


@router.get(
    "/models/{model_id}/download",
    response_class=FileResponse,
    responses={
        200: {
            "description": "the artefact, with its sha256 in X-Content-SHA256: "
            "binary for weights and exports, JSON for format=config",
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                "application/json": {"schema": {"type": "object"}},
            },
        }
    },
)
def download_model(
    model_id: DbId,
    principal: PrincipalDep,
    session: SessionDep,
    request: Request,
    format: ArtefactFormat = Query("onnx"),
) -> FileResponse:  # noqa: A002
    """Stream one artefact: safetensors weights + config, ONNX, or TorchScript."""
    model = _load_model(session, principal, model_id)
    path_col, sha_col, media, filename = service.FORMAT_COLUMNS[format]
    relative = getattr(model, path_col)
    if not relative:
        raise NotFound(f"this model has no {format} artefact")
    sha = getattr(model, sha_col)
    path = service.artefact_path(request.app.state.artefacts, relative, sha)
    return FileResponse(
        path,
        media_type=media,
        filename=f"model-{model.id}-v{model.version}-{filename}",
        headers={"X-Content-SHA256": sha, "ETag": f'"{sha}"'},
    )


@router.post(
    "/models/{model_id}/predict",
    response_model=PredictRead,
    openapi_extra=PREDICT_OPENAPI,
    responses={
        413: {"description": "image larger than the per-file limit"},
        415: {"description": "the body is not multipart/form-data"},
    },
)
async def predict(
    model_id: DbId, principal: PrincipalDep, session: SessionDep, request: Request
) -> PredictRead:
    """Predict on one uploaded image (field ``file``) with the model's ONNX export on CPU.
    Returns the mean over heads (named), each head's output and their disagreement."""
    settings = request.app.state.settings
    model = await run_in_threadpool(_load_model, session, principal, model_id)
    artefacts = request.app.state.artefacts
    onnx_path, config_path = await run_in_threadpool(
        lambda: (
            service.artefact_path(
                artefacts, model.onnx_path, model.onnx_sha256, ServiceUnavailable
            ),
            service.artefact_path(
                artefacts, model.config_path, model.config_sha256, ServiceUnavailable
            ),
        )
    )
    key, version = f"{model.id}:{model.onnx_sha256}", model.version
    await run_in_threadpool(session.commit)  # end the read before the body arrives
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise UnsupportedMediaType("send the image as multipart/form-data field 'file'")
    form = await request.form(max_files=1, max_fields=4)
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise BadRequest("no image: send it in the multipart field 'file'")
        data = await upload.read(settings.max_file_bytes + 1)
    finally:
        await form.close()
    if len(data) > settings.max_file_bytes:
        raise PayloadTooLarge(
            f"image exceeds the per-file limit of {settings.max_file_bytes} bytes"
        )

    def run() -> dict:
        # the upright 8-bit pixels, exactly as an uploaded item would be stored and trained on
        checked = check_image(
            data,
            allowed_formats=settings.allowed_image_formats,
            max_pixels=settings.max_image_pixels,
            max_bytes=settings.max_file_bytes,
            name=upload.filename or "file",
        )
        ort_session, config = request.app.state.onnx_sessions.get(onnx_path, config_path, key)
        return onnx_predict.predict(ort_session, config, checked.data)

    result = await run_in_threadpool(run)
    return PredictRead(model_id=model_id, model_version=version, **result)
