"""The ``xmodel`` command line against a live service (``scripts/run_embedded.py``: uvicorn,
one Celery worker, SQLite), as a user runs it: login, project, upload with a corrupt file and
a duplicate, an upload killed half-way and resumed, labels, training to completion, suggest,
export in every format, model download and local prediction, delete."""

from __future__ import annotations

import csv
import io
import json
import os
import pty
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image, ImageStat

from bench.live_api import QUICK_SERVICE_ENV, embedded_service
from xmodel_client import XModelClient
from xmodel_client.cli import main
from xmodel_client.sources import file_source

pytestmark = [pytest.mark.integration, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    with embedded_service(tmp_path_factory.mktemp("service"), QUICK_SERVICE_ENV) as running:
        yield running


@pytest.fixture
def xmodel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    """Run one command in-process; returns (exit status, stdout)."""
    monkeypatch.setenv("XMODEL_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.delenv("XMODEL_TOKEN", raising=False)
    monkeypatch.delenv("XMODEL_URL", raising=False)
    monkeypatch.delenv("XMODEL_PROJECT", raising=False)

    def run(*argv: str) -> tuple[int, str]:
        capsys.readouterr()
        status = main(list(argv))
        captured = capsys.readouterr()
        return status, captured.out + captured.err

    return run


def _images(
    folder: Path, count: int, start: int = 0, size: tuple[int, int] = (20, 16)
) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for n in range(start, start + count):
        colour = ((n * 37) % 256, (n * 91) % 256, (n * 53) % 256)
        image = Image.new("RGB", size, colour)
        image.putpixel((n % size[0], 0), (255 - colour[0], n % 256, 7))
        path = folder / f"img{n:03d}.png"
        image.save(path)
        paths.append(path)
    return paths


def test_cli_end_to_end(
    service: tuple[str, str],
    xmodel,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, admin_token = service
    monkeypatch.setenv("XMODEL_TOKEN", admin_token)
    status, output = xmodel("login", url)
    assert status == 0, output
    saved = tmp_path / "config" / "credentials.json"
    assert saved.stat().st_mode & 0o777 == 0o600 and admin_token in saved.read_text()
    monkeypatch.delenv("XMODEL_TOKEN")

    spec = tmp_path / "project.yaml"
    spec.write_text(
        "name: shapes\ntask:\n  kind: classification\n  classes: [dark, light]\n"
        "image_size: 16\nbackbone: small_cnn\n"
        "training: {steps: 12, batch_size: 8, unlabelled_batch_size: 8, eval_every: 6}\n"
    )
    status, output = xmodel("project", "create", "--from", str(spec))
    assert status == 0, output
    project_id = json.loads(saved.read_text())["project"]
    owner = XModelClient(url, json.loads(saved.read_text())["project_tokens"][str(project_id)])

    # a folder with a corrupt image and a duplicate: both named in the summary, the rest go in
    folder = tmp_path / "photos"
    paths = _images(folder, 10)
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    shutil.copy(paths[3], folder / "zz-copy-of-3.png")
    (folder / "notes.txt").write_text("not an image")
    status, output = xmodel("upload", str(folder), "--batch-size", "4")
    assert status == 3, output
    assert "created: 10  duplicate: 1  refused: 2" in output, output
    assert f"duplicate {folder / 'zz-copy-of-3.png'}: same image as {paths[3]}" in output
    assert "broken.png: invalid_image" in output and "notes.txt: not an image" in output
    assert owner.project_stats(project_id).items == 10

    # an upload killed half-way, then run again: nothing missing, nothing twice
    more = _images(tmp_path / "more", 80, start=100)
    command = [
        sys.executable,
        "-m",
        "xmodel_client",
        "upload",
        str(tmp_path / "more"),
        "--batch-size",
        "1",
    ]
    child = subprocess.Popen(
        command, env={**os.environ}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 120
    while owner.project_stats(project_id).items < 13 and time.monotonic() < deadline:
        time.sleep(0.01)
    child.send_signal(signal.SIGKILL)
    child.wait()
    # a request already sent when the client died may still commit: wait until the count settles
    interrupted_at = -1
    while (settled := owner.project_stats(project_id).items) != interrupted_at:
        interrupted_at = settled
        time.sleep(1)
    assert 10 < interrupted_at < 90, "the upload was not interrupted half-way"
    status, output = xmodel("upload", str(tmp_path / "more"))
    assert status == 0, output
    assert (
        f"created: {90 - interrupted_at}  duplicate: {interrupted_at - 10}  refused: 0" in output
    ), output
    items = list(owner.iter_items(project_id, page_size=7))  # several pages
    assert len(items) == 90 and len({i.sha256 for i in items}) == 90
    assert {i.original_name for i in items} >= {p.name for p in more}

    # labels: a dry run changes nothing, then the import
    labels = tmp_path / "labels.csv"
    with labels.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file_name", "label"])
        for path in paths + more[:30]:
            writer.writerow(
                [
                    path.name,
                    "dark"
                    if ImageStat.Stat(Image.open(path).convert("L")).mean[0] < 128
                    else "light",
                ]
            )
    status, output = xmodel("labels", "import", str(labels), "--dry-run")
    assert status == 0 and "would add 40" in output and "nothing was stored" in output, output
    assert owner.project_stats(project_id).labelled == 0
    status, output = xmodel("labels", "import", str(labels))
    assert status == 0 and "did add 40" in output, output

    status, output = xmodel("train", "--wait", "--interval", "0.3")
    assert status == 0 and "succeeded" in output, output
    stats = owner.project_stats(project_id)
    assert stats.labelled == 40 and stats.active_model_id is not None

    status, output = xmodel("suggest", "-k", "3", "--json")
    assert status == 0, output
    suggestion = json.loads(output[output.index("{") :])
    assert len(suggestion["items"]) == 3 and not suggestion["cold_start"]

    exports = {}
    for fmt in ("csv", "jsonl", "coco"):
        target = tmp_path / f"out.{fmt}"
        status, output = xmodel("export", "--format", fmt, "-o", str(target))
        assert status == 0, output
        exports[fmt] = target.read_bytes()
    assert len(list(csv.DictReader(io.StringIO(exports["csv"].decode())))) == 40
    assert len(exports["jsonl"].splitlines()) == 40
    coco = json.loads(exports["coco"])
    assert len(coco["images"]) == 40 and len(coco["annotations"]) == 40
    assert [c["name"] for c in coco["categories"]] == ["dark", "light"]

    model_dir = tmp_path / "model"
    status, output = xmodel("model", "download", "-o", str(model_dir))
    assert (
        status == 0 and (model_dir / "model.onnx").exists() and (model_dir / "config.json").exists()
    ), output
    status, output = xmodel("predict", "--model-dir", str(model_dir), str(paths[0]), str(paths[1]))
    assert status == 0, output
    local = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    assert [p["file"] for p in local] == [str(paths[0]), str(paths[1])]
    status, output = xmodel("predict", "--server", str(paths[0]))
    served = json.loads(output[output.index("{") :])
    probabilities = served["prediction"]["probabilities"]
    assert probabilities == pytest.approx(local[0]["prediction"]["probabilities"], abs=1e-4)

    status, output = xmodel("project", "list")
    assert status == 0 and "shapes" in output and "40/90 labelled" in output, output
    monkeypatch.setattr("sys.stdin", io.StringIO("wrong name\n"))
    status, output = xmodel("project", "delete", str(project_id))
    assert status == 1 and "nothing was deleted" in output
    monkeypatch.setattr("sys.stdin", io.StringIO("shapes\n"))
    status, output = xmodel("project", "delete", str(project_id))
    assert status == 0 and "deleted project" in output, output
    admin = XModelClient(url, admin_token)
    assert project_id not in [p.id for p in admin.list_projects()]


def _read_until(fd: int, marker: bytes, timeout: float) -> bytes:
    """Read a pseudo-terminal until ``marker`` shows up (or the other side closes)."""
    seen = b""
    deadline = time.monotonic() + timeout
    while marker not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            seen += chunk
    return seen


def test_ctrl_c_during_train_wait_offers_to_cancel(
    service: tuple[str, str], tmp_path: Path
) -> None:
    """On a terminal, Ctrl-C asks whether to cancel; answering y cancels the job."""
    url, admin_token = service
    admin = XModelClient(url, admin_token)
    project = admin.create_project(
        "long",
        {"kind": "classification", "classes": ["a", "b"]},
        image_size=16,
        backbone="small_cnn",
        training={
            "steps": 1_000_000,
            "batch_size": 4,
            "unlabelled_batch_size": 4,
            "eval_every": 1_000_000,
        },
    )
    owner = admin.with_token(project.owner_token)
    paths = _images(tmp_path / "few", 12)
    outcomes = owner.upload_sources(project.id, [file_source(p, p.name) for p in paths])
    for n, outcome in enumerate(outcomes[:8]):
        assert outcome.item_id is not None
        owner.set_label(outcome.item_id, {"class": "ab"[n % 2]})
    env = {
        **os.environ,
        "XMODEL_URL": url,
        "XMODEL_TOKEN": project.owner_token,
        "XMODEL_PROJECT": str(project.id),
        "XMODEL_CONFIG_DIR": str(tmp_path / "config"),
    }
    terminal, child_side = pty.openpty()
    child = subprocess.Popen(
        [sys.executable, "-m", "xmodel_client", "train", "--wait", "--interval", "0.3"],
        stdin=child_side,
        stdout=child_side,
        stderr=child_side,
        env=env,
    )
    os.close(child_side)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            jobs = owner.list_jobs(project.id)
            if jobs and jobs[-1].status == "running" and jobs[-1].progress_step > 0:
                break
            _read_until(terminal, b"\0", 0.3)  # keep the terminal drained
        else:
            raise AssertionError("the training job never started")
        child.send_signal(signal.SIGINT)
        assert b"cancel job" in _read_until(terminal, b"[y/N]", 30)
        os.write(terminal, b"y\n")
        rest = _read_until(terminal, b"ended cancelled", 120)
        assert child.wait(60) == 1, rest
        assert b"cancel requested" in rest and b"ended cancelled" in rest, rest
    finally:
        if child.poll() is None:
            child.kill()
        os.close(terminal)
    assert owner.list_jobs(project.id)[-1].status == "cancelled"
