"""Service settings, read from the environment with the ``XM_`` prefix.

``Settings.check_safe()`` refuses configurations that would run the service unsafely; the app
factory calls it before building anything.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

MIN_ADMIN_TOKEN_LENGTH = 24
WEAK_ADMIN_TOKENS = {"admin", "changeme", "change-me", "secret", "password", "token"}


# the most items one /suggest call may lease (declared in the API schema; the setting may lower it)
MAX_SUGGEST_K = 200


class UnsafeSettingsError(ValueError):
    """Raised at start-up when a setting would make the service unsafe to run."""


class Settings(BaseSettings):
    """All knobs of the API process. Every field can be set as ``XM_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="XM_", env_file=None, extra="ignore")

    database_url: str = "sqlite:///./var/xmodel.db"
    storage_dir: Path = Path("./var/storage")
    # "file": images and models under storage_dir (every process must see that folder);
    # "s3": in an S3-compatible bucket, storage_dir then only holds this process's caches
    storage_backend: Literal["file", "s3"] = "file"
    s3_endpoint_url: str | None = None  # None: AWS itself
    s3_bucket: str = "xmodel"
    s3_prefix: str = ""
    s3_region: str = "us-east-1"
    s3_access_key_id: str | None = Field(default=None, repr=False)
    s3_secret_access_key: str | None = Field(default=None, repr=False)
    # Embedded default: kombu's SQLAlchemy transport on a SQLite file, no broker server needed.
    # Distributed: redis://host:6379/0. API and workers must use the same URL and queue.
    broker_url: str = "sqla+sqlite:///./var/broker.sqlite"
    broker_queue: str = "xmodel"
    admin_token: str | None = Field(default=None, repr=False)
    auto_migrate: bool = True

    max_request_bytes: int = 64 * 1024 * 1024
    max_file_bytes: int = 16 * 1024 * 1024
    max_files_per_request: int = 256
    max_image_pixels: int = 40_000_000
    allowed_image_formats: tuple[str, ...] = ("JPEG", "PNG", "WEBP", "BMP")

    max_zip_entries: int = 10_000
    max_zip_total_bytes: int = 256 * 1024 * 1024
    max_zip_compression_ratio: float = 200.0
    # images stored per transaction: short write transactions let other requests run between
    upload_batch_size: int = 100

    lease_seconds: int = 600
    max_suggest_k: int = 200
    sqlite_busy_timeout_ms: int = 30_000
    predict_session_cache: int = 4
    # How long a thread may hold the GIL before another waiting thread gets it (CPython's
    # default is 5 ms). A request thread waits for the GIL after each database round trip;
    # while an import decodes images on another thread, 5 ms per wait made /suggest's tail
    # several times longer (docs/RESULTS.md, load test). 0 keeps the interpreter's default.
    gil_switch_interval_ms: float = 1.0

    def check_safe(self) -> None:
        """Raise :class:`UnsafeSettingsError` for settings the service must not run with."""
        problems: list[str] = []
        if self.admin_token is not None:
            token = self.admin_token.strip()
            if len(token) < MIN_ADMIN_TOKEN_LENGTH or token.lower() in WEAK_ADMIN_TOKENS:
                problems.append(
                    f"XM_ADMIN_TOKEN must be at least {MIN_ADMIN_TOKEN_LENGTH} characters of "
                    "random text (or leave it unset to have one generated on first start)"
                )
        url = self.database_url
        if url.startswith("sqlite") and (
            ":memory:" in url or url.rstrip("/") in {"sqlite:", "sqlite://"}
        ):
            problems.append("an in-memory SQLite database loses every label on restart; use a file")
        for name in (
            "max_request_bytes",
            "max_file_bytes",
            "max_files_per_request",
            "max_image_pixels",
            "max_zip_entries",
            "max_zip_total_bytes",
            "lease_seconds",
            "max_suggest_k",
            "upload_batch_size",
        ):
            if getattr(self, name) <= 0:
                problems.append(f"XM_{name.upper()} must be positive")
        if self.storage_backend == "s3" and not self.s3_bucket.strip():
            problems.append("XM_S3_BUCKET must name a bucket when XM_STORAGE_BACKEND=s3")
        if self.max_file_bytes > self.max_request_bytes:
            problems.append("XM_MAX_FILE_BYTES cannot exceed XM_MAX_REQUEST_BYTES")
        if self.max_suggest_k > MAX_SUGGEST_K:
            problems.append(f"XM_MAX_SUGGEST_K cannot exceed {MAX_SUGGEST_K}")
        if self.gil_switch_interval_ms < 0:
            problems.append("XM_GIL_SWITCH_INTERVAL_MS cannot be negative")
        if self.max_zip_compression_ratio < 1:
            problems.append("XM_MAX_ZIP_COMPRESSION_RATIO must be at least 1")
        unknown = set(self.allowed_image_formats) - {"JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF"}
        if unknown:
            problems.append(f"XM_ALLOWED_IMAGE_FORMATS has formats not allowed: {sorted(unknown)}")
        if problems:
            raise UnsafeSettingsError("; ".join(problems))
