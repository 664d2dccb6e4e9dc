"""Serve the labelling page: ``GET /`` is its HTML, ``GET /page/<file>`` its CSS and ES modules.

The page is plain static files (no build step, nothing from another host) that call the same
public API as every other client. A strict Content-Security-Policy keeps it that way: scripts,
styles and requests only from this origin, images only from here or ``blob:`` URLs (the page
fetches images with the Bearer header and shows them as blobs, so no token is ever in a URL)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from server.errors import NotFound

STATIC_DIR = Path(__file__).parent / "static"
MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
}
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; "
        "img-src 'self' blob: data:; connect-src 'self'; "
        "form-action 'none'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    # A new release of the page must reach browsers that have it open: revalidate each load.
    "Cache-Control": "no-cache",
}

router = APIRouter(include_in_schema=False)


def _file(relative: str) -> FileResponse:
    root = STATIC_DIR.resolve()
    path = (root / relative).resolve()
    if not path.is_relative_to(root) or not path.is_file() or path.suffix not in MEDIA_TYPES:
        raise NotFound("no such page file")
    return FileResponse(path, media_type=MEDIA_TYPES[path.suffix], headers=SECURITY_HEADERS)


@router.get("/")
def labelling_page() -> FileResponse:
    """The labelling page."""
    return _file("index.html")


@router.get("/page/{relative:path}")
def page_file(relative: str) -> FileResponse:
    """A file of the page (CSS, ES modules); nothing outside its folder."""
    return _file(relative)
