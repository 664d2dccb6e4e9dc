"""``python -m label_studio_bridge``: serve the bridge (uvicorn) on ``--host``:``--port``.

Every option also reads an environment variable (shown in ``--help``)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import uvicorn

from label_studio_bridge.app import create_app
from label_studio_bridge.bridge import Bridge, BridgeSettings
from label_studio_bridge.state import State
from xmodel_client import XModelClient


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(name, default)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m label_studio_bridge",
        description="A Label Studio ML backend serving the annotation service's predictions, "
        "suggestion order and retraining.",
    )
    add = parser.add_argument
    add("--host", default=_env("BRIDGE_HOST", "127.0.0.1"), help="$BRIDGE_HOST")
    add("--port", type=int, default=int(_env("BRIDGE_PORT", "9090") or 9090), help="$BRIDGE_PORT")
    add(
        "--xmodel-url",
        default=_env("XMODEL_URL", "http://127.0.0.1:8000"),
        help="the annotation service ($XMODEL_URL)",
    )
    add(
        "--xmodel-token",
        default=_env("XMODEL_TOKEN"),
        help="its admin token, to create a project per Label Studio project ($XMODEL_TOKEN)",
    )
    add(
        "--label-studio-url",
        default=_env("LABEL_STUDIO_URL"),
        help="Label Studio's address; default: the hostname it sends in /setup ($LABEL_STUDIO_URL)",
    )
    add(
        "--label-studio-token",
        default=_env("LABEL_STUDIO_API_KEY"),
        help="a Label Studio API token (legacy or personal access token); default: the one it "
        "sends in /setup ($LABEL_STUDIO_API_KEY)",
    )
    add(
        "--data-dir",
        type=Path,
        default=Path(_env("BRIDGE_DATA_DIR", "var/label_studio_bridge") or "."),
        help="where the bridge keeps its task → item records ($BRIDGE_DATA_DIR)",
    )
    add(
        "--project",
        default=_env("BRIDGE_PROJECT_DEFAULTS", "{}"),
        help="JSON settings for projects the bridge creates, e.g. "
        '\'{"image_size": 96, "backbone": "mobilenet_v2", "retrain_every": 50, '
        '"training": {"steps": 500}}\' ($BRIDGE_PROJECT_DEFAULTS)',
    )
    add(
        "--retrain-every",
        type=int,
        default=None,
        help="retrain after this many new labels (default 20; overrides --project's)",
    )
    add(
        "--window",
        type=int,
        default=int(_env("BRIDGE_WINDOW", "200") or 200),
        help="how many items one /suggest call ranks (the service's max_suggest_k)",
    )
    add("--log-level", default=_env("BRIDGE_LOG_LEVEL", "info"))
    return parser.parse_args(argv)


def project_defaults(args: argparse.Namespace) -> dict[str, Any]:
    try:
        defaults = json.loads(args.project)
    except json.JSONDecodeError as exc:
        raise SystemExit(f"--project must be a JSON object: {exc}") from exc
    if not isinstance(defaults, dict):
        raise SystemExit("--project must be a JSON object")
    allowed = {"image_size", "backbone", "training", "retrain_every"}
    unknown = set(defaults) - allowed
    if unknown:
        raise SystemExit(
            f"--project: unknown settings {sorted(unknown)}; allowed {sorted(allowed)}"
        )
    defaults.setdefault("retrain_every", 20)
    if args.retrain_every is not None:
        defaults["retrain_every"] = args.retrain_every
    return defaults


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.xmodel_token:
        print(
            "the bridge needs the annotation service's admin token: --xmodel-token or $XMODEL_TOKEN",
            file=sys.stderr,
        )
        return 2
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = BridgeSettings(
        project_defaults=project_defaults(args),
        label_studio_url=args.label_studio_url,
        label_studio_token=args.label_studio_token,
        window=args.window,
    )
    xmodel = XModelClient(args.xmodel_url, args.xmodel_token)
    state = State(args.data_dir / "bridge.sqlite")
    bridge = Bridge(xmodel, state, settings)
    app = create_app(bridge)
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level.lower())
    finally:
        xmodel.close()
        state.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
