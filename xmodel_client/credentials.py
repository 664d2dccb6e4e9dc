"""Where ``xmodel login`` keeps the URL and tokens: ``$XMODEL_CONFIG_DIR/credentials.json``
(default ``~/.config/xmodel``), readable by its owner only (mode 0600).

Environment variables win over the file: ``XMODEL_URL``, ``XMODEL_TOKEN``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path


def config_dir() -> Path:
    if "XMODEL_CONFIG_DIR" in os.environ:
        return Path(os.environ["XMODEL_CONFIG_DIR"])
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "xmodel"


@dataclass
class Credentials:
    url: str | None = None
    token: str | None = None
    # project id -> owner token, kept when this login created the project
    project_tokens: dict[str, str] = field(default_factory=dict)
    project: int | None = None  # the default project for commands that need one


def path() -> Path:
    return config_dir() / "credentials.json"


def load() -> Credentials:
    found = Credentials()
    if path().exists():
        raw = json.loads(path().read_text())
        found = Credentials(
            url=raw.get("url"),
            token=raw.get("token"),
            project_tokens=dict(raw.get("project_tokens", {})),
            project=raw.get("project"),
        )
    found.url = os.environ.get("XMODEL_URL") or found.url
    found.token = os.environ.get("XMODEL_TOKEN") or found.token
    return found


def save(credentials: Credentials) -> Path:
    """Write the file with mode 0600 from the start (never world-readable, even briefly)."""
    target = path()
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    partial = target.with_name(".credentials.json.partial")
    partial.unlink(missing_ok=True)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(
            {
                "url": credentials.url,
                "token": credentials.token,
                "project_tokens": credentials.project_tokens,
                "project": credentials.project,
            },
            handle,
            indent=2,
        )
    os.replace(partial, target)
    os.chmod(target, 0o600)
    return target
