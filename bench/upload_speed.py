"""``xmodel upload`` against raw multipart uploads with httpx, in the same run, same service.

    python -m bench.upload_speed                 # 5,000 PNG files (64x64), batches of 64
    python -m bench.upload_speed --images 1000

Both upload the same files from disk into two fresh projects of one uvicorn process
(SQLite, the embedded default): the raw side reads each batch and posts it with
``httpx.Client.post(files=...)``; the command line runs ``xmodel upload FOLDER`` in-process
(hashing every file, listing the project for resumption, progress bar, summary). Each side
runs twice in alternation (raw, cli, cli, raw) so drift hits both alike, after a warm-up
upload that stores the files once; the figure is the ratio of the best rates. The bar: ``xmodel`` at 0.8x the raw rate or better.
Prints a table and writes bench/results/upload_speed.json.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from bench.common import save_result
from bench.live_api import start_uvicorn
from server.db.migrate import upgrade_to_head
from xmodel_client import XModelClient
from xmodel_client.cli import main as xmodel

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results" / "upload_speed.json"
ADMIN = "bench-admin-token-" + secrets.token_hex(12)


def _images(folder: Path, count: int, size: int) -> list[Path]:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for n in range(count):
        path = folder / f"img{n:05d}.png"
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def _serve(data: Path) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    data.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{data / 'xmodel.db'}"
    upgrade_to_head(url)
    env = {
        **os.environ,
        "XM_DATABASE_URL": url,
        "XM_ADMIN_TOKEN": ADMIN,
        "XM_STORAGE_DIR": str(data / "storage"),
        "XM_AUTO_MIGRATE": "false",
        "XM_BROKER_URL": f"sqla+sqlite:///{data / 'broker.sqlite'}",
    }
    return start_uvicorn(port, env)


def _raw(base: str, token: str, project_id: int, paths: list[Path], batch: int) -> float:
    started = time.perf_counter()
    with httpx.Client(
        base_url=base, timeout=300, headers={"Authorization": f"Bearer {token}"}
    ) as http:
        for start in range(0, len(paths), batch):
            files = [
                ("files", (p.name, p.read_bytes(), "application/octet-stream"))
                for p in paths[start : start + batch]
            ]
            response = http.post(f"/projects/{project_id}/items", files=files)
            response.raise_for_status()
    return time.perf_counter() - started


def _cli(base: str, token: str, project_id: int, folder: Path, batch: int) -> float:
    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        status = xmodel(
            [
                "--url",
                base,
                "--token",
                token,
                "upload",
                str(folder),
                "--project",
                str(project_id),
                "--batch-size",
                str(batch),
            ]
        )
    if status != 0:
        raise SystemExit(f"xmodel upload exited {status}")
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="xm-upload-") as scratch:
        root = Path(scratch)
        paths = _images(root / "images", args.images, args.size)
        child, base = _serve(root / "service")
        try:
            admin = XModelClient(base, ADMIN)
            # Stored images are content-addressed: only the first project to get an image writes
            # (and fsyncs) its file. A warm-up project takes that cost, so every measured run
            # below finds the same storage state.
            warm = admin.create_project(
                "warm-up", {"kind": "classification", "classes": ["a", "b"]}
            )
            _raw(base, warm.owner_token, warm.id, paths, args.batch)
            runs: dict[str, list[float]] = {"raw": [], "cli": []}
            for side in ("raw", "cli", "cli", "raw"):
                project = admin.create_project(
                    f"{side}-{len(runs[side])}", {"kind": "classification", "classes": ["a", "b"]}
                )
                if side == "raw":
                    seconds = _raw(base, project.owner_token, project.id, paths, args.batch)
                else:
                    seconds = _cli(
                        base, project.owner_token, project.id, root / "images", args.batch
                    )
                assert admin.project_stats(project.id).items == args.images
                runs[side].append(args.images / seconds)
                print(
                    f"{side:<4} {args.images:,} images in {seconds:6.1f} s = {args.images / seconds:7.1f} images/s",
                    flush=True,
                )
        finally:
            child.send_signal(signal.SIGTERM)
            child.wait(30)
    ratio = max(runs["cli"]) / max(runs["raw"])
    print(f"xmodel upload / raw httpx: {ratio:.2f} (bar: 0.8)")
    document = {
        "benchmark": "upload_speed",
        "images": args.images,
        "image_size": args.size,
        "batch": args.batch,
        "images_per_s": {k: [round(v, 1) for v in vs] for k, vs in runs.items()},
        "ratio_best": round(ratio, 3),
        "bar": 0.8,
        "meets_bar": ratio >= 0.8,
    }
    save_result(args.out, document)
    return 0


if __name__ == "__main__":
    sys.exit(main())
