"""Item routes: multipart upload, zip import, listing with cursor, image bytes, delete."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse
from sqlalchemy.orm import Session
from starlette.datastructures import FormData, UploadFile

from server.auth.dependencies import PrincipalDep, ProjectDep, SessionDep
from server.auth.service import Principal, accessible
from server.db.base import utcnow
from server.db.models import Item, Project
from server.errors import (
    ERROR_RESPONSES,
    BadRequest,
    NotFound,
    PayloadTooLarge,
    UnsupportedMediaType,
)
from server.ids import DbId, parse_cursor
from server.items import repository, service
from server.items.schemas import (
    IMPORT_OPENAPI,
    UPLOAD_OPENAPI,
    ItemPage,
    ItemRead,
    ItemStatus,
    UploadedItem,
    UploadResult,
)
from server.projects.service import get_project
from server.settings import Settings
from server.uploads.archives import ArchiveLimits, read_archive

router = APIRouter(tags=["items"], responses=ERROR_RESPONSES)
MEDIA_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "BMP": "image/bmp"}
UPLOAD_ERRORS: dict[int | str, dict[str, object]] = {
    200: {
        "description": "every image was already in the project: those items",
        "model": UploadResult,
    },
    400: {"description": "not an image, corrupt, too many pixels, bad label, unsafe zip"},
    413: {"description": "request or file larger than the configured limit"},
    415: {"description": "the body is not multipart/form-data"},
}


def load_item(session: Session, principal: Principal, item_id: int, *, owner: bool = False) -> Item:
    """The item, if the caller's token belongs to its project; otherwise 404."""
    return accessible(principal, repository.get(session, item_id), "item", owner=owner)


async def _store_images(
    request: Request,
    response: Response,
    session: Session,
    principal: Principal,
    project_id: int,
    incoming_for: Callable[[Project], list[service.IncomingImage]],
) -> UploadResult:
    """Store validated uploads in short batched transactions (off the event loop); 200 when
    all were duplicates."""

    def work() -> UploadResult:
        project = get_project(session, project_id)
        incoming = incoming_for(project)
        session.commit()  # no transaction stays open while the images are decoded
        state = request.app.state
        outcome = service.add_images(
            state.session_factory,
            state.image_store,
            state.job_queue,
            project,
            incoming,
            state.settings,
            principal.token_id,
        )
        return _result(outcome)

    result = await run_in_threadpool(work)
    if result.created == 0:
        response.status_code = status.HTTP_200_OK
    return result


async def _read_form(request: Request, settings: Settings) -> FormData:
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise UnsupportedMediaType("send the images as multipart/form-data")
    return await request.form(max_files=settings.max_files_per_request, max_fields=16)


async def _file_bytes(upload: UploadFile, settings: Settings) -> bytes:
    name = upload.filename or "file"
    if upload.size is not None and upload.size > settings.max_file_bytes:
        raise PayloadTooLarge(
            f"{name}: {upload.size} bytes exceeds the per-file limit of {settings.max_file_bytes}"
        )
    data = await upload.read(settings.max_file_bytes + 1)
    if len(data) > settings.max_file_bytes:
        raise PayloadTooLarge(
            f"{name}: exceeds the per-file limit of {settings.max_file_bytes} bytes"
        )
    return data


def _result(outcome: service.UploadOutcome) -> UploadResult:
    items = [
        UploadedItem(item=ItemRead.model_validate(s.item), created=s.created, name=s.name)
        for s in outcome.items
    ]
    created = sum(1 for s in outcome.items if s.created)
    return UploadResult(
        created=created,
        duplicates=len(items) - created,
        labelled=sum(1 for s in outcome.items if s.item.labelled_at is not None),
        items=items,
        retrain_job_id=outcome.retrain_job.id if outcome.retrain_job else None,
    )


def _end_auth_transaction(session: Session) -> None:
    # Authentication ran a read; end that transaction before a slow body upload so SQLite's
    # write lock is not held while bytes arrive. Nothing has been written yet.
    session.commit()


@router.post(
    "/projects/{project_id}/items",
    response_model=UploadResult,
    status_code=201,
    openapi_extra=UPLOAD_OPENAPI,
    responses=UPLOAD_ERRORS,
)
async def upload_items(
    project_id: DbId,
    project: ProjectDep,
    request: Request,
    response: Response,
    principal: PrincipalDep,
    session: SessionDep,
) -> UploadResult:
    """Upload one or many images (field ``files``, repeated), each optionally labelled
    through the ``labels`` field (JSON list aligned with the files, ``null`` for none).
    An image already in the project comes back as that item (``created: false``).
    All-or-nothing: one bad file or label rejects the whole request."""
    settings: Settings = request.app.state.settings
    await run_in_threadpool(_end_auth_transaction, session)
    form = await _read_form(request, settings)
    try:
        uploads = [f for f in form.getlist("files") if isinstance(f, UploadFile)]
        if not uploads:
            raise BadRequest("no files: send images in the multipart field 'files'")
        labels_raw = form.get("labels")
        labels = service.parse_labels_field(
            labels_raw if isinstance(labels_raw, str) else None, len(uploads)
        )
        incoming = [
            service.IncomingImage(
                name=u.filename or f"file{i}", data=await _file_bytes(u, settings), label=label
            )
            for i, (u, label) in enumerate(zip(uploads, labels, strict=True))
        ]
    finally:
        await form.close()

    return await _store_images(
        request, response, session, principal, project_id, lambda _project: incoming
    )


@router.post(
    "/projects/{project_id}/items/import",
    response_model=UploadResult,
    status_code=201,
    openapi_extra=IMPORT_OPENAPI,
    responses=UPLOAD_ERRORS,
)
async def import_zip(
    project_id: DbId,
    project: ProjectDep,
    request: Request,
    response: Response,
    principal: PrincipalDep,
    session: SessionDep,
) -> UploadResult:
    """Import a zip (field ``archive``) of images with an optional ``labels.csv``
    (``filename,label``; label is a class name, a number, or JSON) or ``labels.jsonl``.
    Entry names are only matched against label rows, never used as paths. Caps on entries,
    expanded bytes and compression ratio reject zip bombs. All-or-nothing."""
    settings: Settings = request.app.state.settings
    await run_in_threadpool(_end_auth_transaction, session)
    form = await _read_form(request, settings)
    try:
        archive = form.get("archive")
        if not isinstance(archive, UploadFile):
            raise BadRequest("no archive: send the zip in the multipart field 'archive'")
        limits = ArchiveLimits(
            max_entries=settings.max_zip_entries,
            max_total_bytes=settings.max_zip_total_bytes,
            max_entry_bytes=settings.max_file_bytes,
            max_ratio=settings.max_zip_compression_ratio,
        )
        entries = await run_in_threadpool(read_archive, archive.file, limits)
    finally:
        await form.close()

    return await _store_images(
        request,
        response,
        session,
        principal,
        project_id,
        lambda project: service.incoming_from_archive(project, entries),
    )


@router.get("/projects/{project_id}/items", response_model=ItemPage)
def list_items(
    project_id: DbId,
    project: ProjectDep,
    session: SessionDep,
    status: ItemStatus = "all",
    cursor: Annotated[str | None, Query(max_length=20)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> ItemPage:
    """Items in id order; ``status`` filters labelled / unlabelled / leased (suggested and
    held by an annotator). Pass ``next_cursor`` back as ``cursor`` for the next page."""
    after_id = parse_cursor(cursor)
    if after_id is None:
        raise BadRequest("cursor must be a value returned as next_cursor")
    rows = repository.list_page(
        session, project_id, status=status, after_id=after_id, limit=limit, now=utcnow()
    )
    next_cursor = str(rows[-1].id) if len(rows) == limit else None
    return ItemPage(items=[ItemRead.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.get("/items/{item_id}", response_model=ItemRead)
def get_item(item_id: DbId, principal: PrincipalDep, session: SessionDep) -> ItemRead:
    return ItemRead.model_validate(load_item(session, principal, item_id))


@router.get(
    "/items/{item_id}/image",
    response_class=FileResponse,
    responses={200: {"content": {"image/*": {}}, "description": "the original image bytes"}},
)
def get_item_image(
    item_id: DbId, principal: PrincipalDep, session: SessionDep, request: Request
) -> Response:
    """The stored image: the upload as sent, or its upright 8-bit rewrite (EXIF orientation
    applied, 16-bit scaled) when it needed one."""
    item = load_item(session, principal, item_id)
    store = request.app.state.image_store
    media = MEDIA_TYPES.get(item.image_format, "application/octet-stream")
    headers = {
        "ETag": f'"{item.sha256}"',
        "X-Content-SHA256": item.sha256,
        "Cache-Control": "private, max-age=31536000, immutable",
    }
    path = store.path(item.sha256)
    if path is None:  # an object store: images are small, send the bytes
        try:
            return Response(store.get(item.sha256), media_type=media, headers=headers)
        except FileNotFoundError as exc:
            raise NotFound("image file is missing from storage") from exc
    if not path.exists():
        raise NotFound("image file is missing from storage")
    return FileResponse(path, media_type=media, headers=headers)


@router.delete("/items/{item_id}", status_code=204, response_class=Response)
def delete_item(
    item_id: DbId, principal: PrincipalDep, session: SessionDep, request: Request
) -> Response:
    """Delete an item and its label history (owner)."""
    item = load_item(session, principal, item_id, owner=True)
    service.delete_item(session, request.app.state.image_store, item)
    return Response(status_code=204)
