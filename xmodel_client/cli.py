"""The ``xmodel`` command line. ``xmodel --help`` and ``xmodel COMMAND --help`` list options.

    xmodel login http://127.0.0.1:8000          # token from a prompt or $XMODEL_TOKEN
    xmodel project create --name pets --kind classification --classes cat,dog
    xmodel upload photos/ more.zip              # resumable; summary of created/duplicate/refused
    xmodel labels import labels.coco.json --dry-run
    xmodel train --wait                         # live bar; Ctrl-C offers to cancel the job
    xmodel suggest -k 20
    xmodel export --format coco -o labels.json
    xmodel model download -o model/ && xmodel predict --model-dir model/ a.jpg b.jpg

Exit status: 0 done, 1 error, 3 upload finished with refused files.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from xmodel_client import credentials
from xmodel_client.client import ExportFormat, FileOutcome, XModelClient
from xmodel_client.errors import ApiError, XModelError
from xmodel_client.models import Job
from xmodel_client.sources import UploadSource, collect
from xmodel_contracts.names import JobStatus

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)
EXIT_REFUSED = 3
_opened: list[XModelClient] = []  # closed when the command ends


class CliError(Exception):
    """A user-facing problem: printed as ``error: ...``, exit status 1."""


# ---- context --------------------------------------------------------------------------------
def _creds() -> credentials.Credentials:
    return credentials.load()


def _client(args: argparse.Namespace, *, project: int | None = None) -> XModelClient:
    """A client for the URL and token given, saved, or in the environment. With a project,
    the owner token saved when this machine created it is preferred over the login token."""
    creds = _creds()
    url = args.url or creds.url
    if not url:
        raise CliError("no service URL: run `xmodel login URL` or pass --url / set XMODEL_URL")
    token = (
        args.token
        or (creds.project_tokens.get(str(project)) if project is not None else None)
        or creds.token
    )
    if not token:
        raise CliError("no token: run `xmodel login URL` or pass --token / set XMODEL_TOKEN")
    client = XModelClient(url, token)
    _opened.append(client)
    return client


def _project(args: argparse.Namespace) -> int:
    chosen = getattr(args, "project", None) or os.environ.get("XMODEL_PROJECT") or _creds().project
    if chosen is None:
        raise CliError("which project? pass --project ID (or run `xmodel project use ID`)")
    return int(chosen)


def _print_json(value: Any) -> None:
    out.print_json(json.dumps(value, default=str))


# ---- login and projects ---------------------------------------------------------------------
def cmd_login(args: argparse.Namespace) -> int:
    token = os.environ.get("XMODEL_TOKEN") or (
        getpass.getpass("token: ") if sys.stdin.isatty() else sys.stdin.readline().strip()
    )
    if not token:
        raise CliError("no token given")
    with XModelClient(args.url_arg, token) as client:
        client.list_projects()  # proves the URL and the token
    creds = _creds()
    creds.url, creds.token = args.url_arg, token
    where = credentials.save(creds)
    out.print(f"logged in to {args.url_arg}; token saved in {where} (mode 0600)")
    return 0


def _task_from_flags(args: argparse.Namespace) -> dict[str, Any]:
    def names(text: str | None, what: str) -> list[str]:
        if not text:
            raise CliError(f"--kind {args.kind} needs {what}")
        return [n.strip() for n in text.split(",") if n.strip()]

    if args.kind == "classification":
        return {"kind": "classification", "classes": names(args.classes, "--classes a,b,...")}
    if args.kind == "regression":
        return {"kind": "regression", "targets": names(args.targets, "--targets name,...")}
    if args.kind == "keypoints":
        pairs = [p.split(":") for p in (args.flip_pairs or "").split(",") if p]
        return {
            "kind": "keypoints",
            "points": names(args.points, "--points a,b,..."),
            "flip_pairs": pairs,
        }
    raise CliError("give --kind classification|regression|keypoints, or --from FILE")


def _read_spec(path: Path) -> dict[str, Any]:
    text = path.read_text()
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        spec = yaml.safe_load(text)
    else:
        spec = json.loads(text)
    if not isinstance(spec, dict):
        raise CliError(f"{path}: expected a mapping with name, task, ...")
    return spec


def cmd_project_create(args: argparse.Namespace) -> int:
    spec: dict[str, Any] = _read_spec(args.from_file) if args.from_file else {}
    if args.name:
        spec["name"] = args.name
    if args.kind or "task" not in spec:
        spec["task"] = _task_from_flags(args)
    for key in ("image_size", "backbone", "retrain_every"):
        if getattr(args, key) is not None:
            spec[key] = getattr(args, key)
    if args.steps is not None:
        spec.setdefault("training", {})["steps"] = args.steps
    if "name" not in spec:
        raise CliError("a project needs --name (or a name in --from FILE)")
    name = spec.pop("name")
    task = spec.pop("task")
    created = _client(args).create_project(name, task, **spec)
    creds = _creds()
    creds.project_tokens[str(created.id)] = created.owner_token
    creds.project = created.id
    credentials.save(creds)
    out.print(
        f"created project {created.id} ({created.name}); it is now the default project. "
        f"Its owner token is saved in {credentials.path()}"
    )
    return 0


def cmd_project_list(args: argparse.Namespace) -> int:
    client = _client(args)
    default = _creds().project
    for project in client.list_projects():
        stats = client.project_stats(project.id)
        mark = "*" if project.id == default else " "
        out.print(
            f"{mark} {project.id:>5}  {project.name:<30} {project.task['kind']:<15} "
            f"{stats.labelled}/{stats.items} labelled"
        )
    return 0


def cmd_project_use(args: argparse.Namespace) -> int:
    _client(args, project=args.project_id).get_project(args.project_id)
    creds = _creds()
    creds.project = args.project_id
    credentials.save(creds)
    out.print(f"project {args.project_id} is now the default")
    return 0


def cmd_project_delete(args: argparse.Namespace) -> int:
    client = _client(args, project=args.project_id)
    project = client.get_project(args.project_id)
    stats = client.project_stats(project.id)
    if not args.yes:
        err.print(
            f"This deletes project {project.id} ({project.name!r}): {stats.items} items, "
            f"{stats.labelled} labels with their history, its jobs, models and files."
        )
        typed = (
            input("Type the project's name to confirm: ")
            if sys.stdin.isatty()
            else sys.stdin.readline()
        )
        if typed.strip() != project.name:
            raise CliError("the name did not match; nothing was deleted")
    gone = client.delete_project(project.id, confirm=project.name)
    creds = _creds()
    creds.project_tokens.pop(str(project.id), None)
    if creds.project == project.id:
        creds.project = None
    credentials.save(creds)
    out.print(
        f"deleted project {gone.project_id}: {gone.items} items, {gone.label_revisions} label "
        f"revisions, {gone.jobs} jobs, {gone.models} models, {gone.images_removed} stored images"
    )
    return 0


# ---- upload ---------------------------------------------------------------------------------
def _bar(console: Console, *, transfer: bool = False) -> Progress:
    columns: list[Any] = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn()]
    if transfer:
        columns += [DownloadColumn(), TransferSpeedColumn()]
    columns += [TimeElapsedColumn(), TimeRemainingColumn()]
    return Progress(*columns, console=console, transient=False)


def cmd_upload(args: argparse.Namespace) -> int:
    project = _project(args)
    client = _client(args, project=project)
    sources, skipped = collect(args.paths)
    refused: list[tuple[str, str]] = [(s.origin, s.reason) for s in skipped]
    duplicates: list[tuple[str, str]] = []
    created = 0
    with _bar(err) as bar:
        task = bar.add_task("checking", total=len(sources))
        by_sha: dict[str, UploadSource] = {}
        todo: list[UploadSource] = []
        existing = {item.sha256: item.original_name for item in client.iter_items(project)}
        for source in sources:
            try:
                sha = source.sha256()
            except OSError as exc:
                refused.append((source.origin, f"cannot be read ({exc})"))
                bar.advance(task)
                continue
            if sha in existing:
                duplicates.append((source.origin, f"already in the project as {existing[sha]!r}"))
            elif sha in by_sha:
                duplicates.append((source.origin, f"same image as {by_sha[sha].origin}"))
            else:
                by_sha[sha] = source
                todo.append(source)
            bar.advance(task)
        bar.update(task, description="uploading", completed=0, total=len(todo))

        def on_batch(done: list[FileOutcome]) -> None:
            bar.advance(task, len(done))

        for outcome in client.upload_sources(
            project, todo, batch_files=args.batch_size, on_batch=on_batch
        ):
            if outcome.status == "created":
                created += 1
            elif outcome.status == "duplicate":
                duplicates.append((outcome.source.origin, "already in the project"))
            else:
                refused.append((outcome.source.origin, outcome.reason))
    out.print(f"created: {created}  duplicate: {len(duplicates)}  refused: {len(refused)}")
    for origin, why in duplicates:
        out.print(f"  duplicate {origin}: {why}")
    for origin, why in refused:
        out.print(f"  refused   {origin}: {why}")
    return EXIT_REFUSED if refused else 0


# ---- labels ---------------------------------------------------------------------------------
def _guess_format(path: Path) -> ExportFormat:
    name = path.name.lower()
    if name.endswith(".csv"):
        return "csv"
    if name.endswith((".jsonl", ".ndjson")):
        return "jsonl"
    if name.endswith(".json"):
        return "coco"
    raise CliError(f"cannot tell the format of {path.name}; pass --format csv|jsonl|coco")


def cmd_labels_import(args: argparse.Namespace) -> int:
    project = _project(args)
    fmt: ExportFormat = args.format or _guess_format(args.file)
    report = _client(args, project=project).import_labels(
        project,
        fmt,
        args.file,
        match=args.match,
        dry_run=args.dry_run,
        allow_unmatched=args.allow_unmatched,
    )
    verb = "would" if report.dry_run else "did"
    out.print(
        f"{report.records} labels read, {report.matched} matched an item: {verb} add "
        f"{report.created}, {verb} change {report.changed}, {report.unchanged} unchanged"
    )
    for name in report.unmatched:
        out.print(f"  no item: {name}")
    if report.dry_run:
        out.print("dry run: nothing was stored")
    elif report.retrain_job_id:
        out.print(f"training job {report.retrain_job_id} started (retrain_every reached)")
    return 0


# ---- training -------------------------------------------------------------------------------
def _describe(job: Job) -> str:
    metrics = job.metrics or {}
    parts = [f"job {job.id} {job.status}", job.phase or ""]
    if "loss" in metrics:
        parts.append(f"loss {metrics['loss']:.4f}")
    if metrics.get("eta_seconds"):
        parts.append(f"eta {metrics['eta_seconds']:.0f}s")
    return "  ".join(p for p in parts if p)


@contextmanager
def _ctrl_c_deferred() -> Iterator[threading.Event]:
    """Ctrl-C sets the event instead of raising wherever the main thread happens to be.

    A ``KeyboardInterrupt`` raised while the live bar's lock is held leaves the bar's refresh
    thread waiting on it, and stopping the bar then hangs; the caller checks the event at a safe
    point instead; a second Ctrl-C before that raises at once (a poll stuck on the network).
    The handler is installed even where the process started with SIGINT ignored (launched in
    the background by a shell without job control), and the previous one is restored after.
    Outside the main thread signals cannot be caught, and nothing changes.
    """
    pressed = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield pressed
        return

    def on_sigint(*_: object) -> None:
        if pressed.is_set():
            raise KeyboardInterrupt
        pressed.set()

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield pressed
    finally:
        signal.signal(signal.SIGINT, previous)


def wait_with_bar(client: XModelClient, job: Job, console: Console, interval: float = 1.0) -> Job:
    """Follow a job with a live bar (phase, step, loss, ETA); Ctrl-C asks whether to cancel."""
    with _bar(console) as bar:
        task = bar.add_task(_describe(job), total=job.progress_total or None)

        while True:
            try:
                with _ctrl_c_deferred() as pressed:

                    def show(current: Job) -> None:
                        if pressed.is_set():  # between polls: no lock of the bar is held here
                            raise KeyboardInterrupt
                        bar.update(
                            task,
                            description=_describe(current),
                            completed=current.progress_step,
                            total=current.progress_total or None,
                        )

                    return client.wait_for_job(job.id, interval=interval, on_progress=show)
            except KeyboardInterrupt:
                bar.stop()
                answer = input(f"\ncancel job {job.id}? [y/N] ") if sys.stdin.isatty() else "n"
                if answer.strip().lower() in ("y", "yes"):
                    client.cancel_job(job.id)
                    console.print(f"cancel requested for job {job.id}; waiting for it to stop")
                    bar.start()
                    continue
                console.print(
                    f"job {job.id} keeps running; follow it again with `xmodel train --wait`"
                )
                raise


def cmd_train(args: argparse.Namespace) -> int:
    project = _project(args)
    client = _client(args, project=project)
    training = {"steps": args.steps} if args.steps else None
    job = client.create_job(project, training)
    out.print(f"training job {job.id} {job.status}")
    if not args.wait:
        return 0
    try:
        job = wait_with_bar(client, job, err, args.interval)
    except KeyboardInterrupt:
        return 130
    metrics = job.metrics or {}
    if job.status != JobStatus.SUCCEEDED:
        raise CliError(f"job {job.id} ended {job.status}: {job.error or ''}")
    out.print(
        f"job {job.id} succeeded: model {job.model_id}, validation error {metrics.get('val_error')}"
    )
    return 0


def cmd_suggest(args: argparse.Namespace) -> int:
    project = _project(args)
    answer = _client(args, project=project).suggest(
        project, args.k, strategy=args.strategy, annotator=args.annotator
    )
    if args.json:
        _print_json(answer.model_dump(mode="json"))
        return 0
    out.print(
        f"{len(answer.items)} items ({answer.strategy}"
        f"{f', model v{answer.model_version}' if answer.model_version else ''}), leased until "
        f"{answer.lease_expires_at}"
    )
    for item in answer.items:
        score = "" if item.score is None else f"{item.score:.4f}"
        out.print(
            f"  item {item.item_id:>8}  score {score:<8} cluster {item.cluster}  {item.image_url}"
        )
    return 0


# ---- data out -------------------------------------------------------------------------------
def cmd_export(args: argparse.Namespace) -> int:
    project = _project(args)
    client = _client(args, project=project)
    suffix = {"csv": "csv", "jsonl": "jsonl", "coco": "coco.json"}[args.format]
    target = args.output or Path(f"project-{project}-labels.{suffix}")
    if str(target) == "-":
        client.export_labels(
            project, args.format, sys.stdout.buffer, include_unlabelled=args.include_unlabelled
        )
        return 0
    with Progress(
        TextColumn("exporting"),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeElapsedColumn(),
        console=err,
    ) as bar:
        task = bar.add_task("export", total=None)
        size = client.export_labels(
            project,
            args.format,
            target,
            include_unlabelled=args.include_unlabelled,
            on_bytes=lambda n: bar.advance(task, n),
        )
    out.print(f"wrote {target} ({size} bytes)")
    return 0


def _active_model(client: XModelClient, project: int) -> int:
    stats = client.project_stats(project)
    if stats.active_model_id is None:
        raise CliError(f"project {project} has no trained model yet: run `xmodel train --wait`")
    return stats.active_model_id


def cmd_model_download(args: argparse.Namespace) -> int:
    project = _project(args)
    client = _client(args, project=project)
    model_id = args.model or _active_model(client, project)
    folder = args.output or Path(f"model-{model_id}")
    formats: list[Any] = ["onnx", "config"] + (["safetensors"] if args.weights else [])
    names = {"onnx": "model.onnx", "config": "config.json", "safetensors": "model.safetensors"}
    for fmt in formats:
        client.download_model(model_id, folder / names[fmt], fmt)
    out.print(
        f"model {model_id} saved in {folder} ({', '.join(names[f] for f in formats)}; sha256 checked)"
    )
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    if args.server:
        project = _project(args)
        client = _client(args, project=project)
        model_id = args.model or _active_model(client, project)
        for path in args.files:
            answer = client.predict(model_id, path)
            out.print(
                json.dumps(
                    {
                        "file": str(path),
                        "prediction": answer.prediction,
                        "disagreement": answer.disagreement,
                    }
                )
            )
        return 0
    from xmodel_client.local_predict import LocalModel

    if args.model_dir is None:
        raise CliError("pass --model-dir (a folder from `xmodel model download`) or --server")
    model = LocalModel(args.model_dir)
    for start in range(0, len(args.files), 64):
        chunk = args.files[start : start + 64]
        for path, result in zip(chunk, model.predict(chunk), strict=True):
            out.print(json.dumps({"file": str(path), **result}))
    return 0


# ---- parser ---------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xmodel", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", help="service URL (default: from `xmodel login` or $XMODEL_URL)")
    parser.add_argument("--token", help="API token (default: saved, or $XMODEL_TOKEN)")
    commands = parser.add_subparsers(dest="command", required=True)

    def command(
        name: str,
        handler: Callable[[argparse.Namespace], int],
        help_text: str,
        parent: Any = commands,
    ) -> argparse.ArgumentParser:
        sub = parent.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(handler=handler)
        return sub

    def with_project(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--project", "-p", type=int, help="project id (default: the current one)")

    login = command(
        "login", cmd_login, "save the service URL and a token (prompted, or $XMODEL_TOKEN)"
    )
    login.add_argument("url_arg", metavar="URL")

    projects = commands.add_parser("project", help="create, list, use or delete projects")
    project_commands = projects.add_subparsers(dest="project_command", required=True)
    create = command(
        "create", cmd_project_create, "create a project (admin token)", project_commands
    )
    create.add_argument(
        "--from", dest="from_file", type=Path, help="a JSON or YAML file with name, task, ..."
    )
    create.add_argument("--name")
    create.add_argument("--kind", choices=["classification", "regression", "keypoints"])
    create.add_argument("--classes", help="classification: comma-separated class names")
    create.add_argument("--targets", help="regression: comma-separated target names")
    create.add_argument("--points", help="keypoints: comma-separated point names")
    create.add_argument(
        "--flip-pairs", help="keypoints: left:right,... swapped by a horizontal flip"
    )
    create.add_argument("--image-size", type=int)
    create.add_argument("--backbone", choices=["mobilenet_v2", "resnet18", "small_cnn"])
    create.add_argument("--steps", type=int, help="training steps")
    create.add_argument("--retrain-every", type=int)
    command("list", cmd_project_list, "list the projects this token sees", project_commands)
    use = command("use", cmd_project_use, "make a project the default one", project_commands)
    use.add_argument("project_id", type=int)
    delete = command(
        "delete",
        cmd_project_delete,
        "delete a project and everything in it (asks first)",
        project_commands,
    )
    delete.add_argument("project_id", type=int)
    delete.add_argument("--yes", action="store_true", help="do not ask (scripts)")

    upload = command("upload", cmd_upload, "upload image files, folders (recursively) and zips")
    upload.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    upload.add_argument("--batch-size", type=int, default=64, help="files per request")
    with_project(upload)

    labels = commands.add_parser("labels", help="import labels")
    label_commands = labels.add_subparsers(dest="labels_command", required=True)
    importer = command(
        "import",
        cmd_labels_import,
        "import labels from CSV, JSON lines or COCO (categories, keypoints)",
        label_commands,
    )
    importer.add_argument("file", type=Path)
    importer.add_argument(
        "--format", choices=["csv", "jsonl", "coco"], help="default: from the file name"
    )
    importer.add_argument(
        "--match",
        choices=["auto", "name", "sha256"],
        default="auto",
        help="find items by sha256 (when the file has it) or by file name",
    )
    importer.add_argument(
        "--dry-run", action="store_true", help="report what would change; store nothing"
    )
    importer.add_argument(
        "--allow-unmatched", action="store_true", help="skip labels of unknown images"
    )
    with_project(importer)

    train = command("train", cmd_train, "start a training job (owner token)")
    train.add_argument(
        "--wait", action="store_true", help="follow it with a live bar until it ends"
    )
    train.add_argument("--steps", type=int, help="override the project's training steps")
    train.add_argument("--interval", type=float, default=1.0, help="seconds between polls")
    with_project(train)

    suggest = command("suggest", cmd_suggest, "which items to label next (leased to you)")
    suggest.add_argument("-k", type=int, default=10)
    suggest.add_argument("--strategy", default="xmodel")
    suggest.add_argument("--annotator")
    suggest.add_argument("--json", action="store_true", help="print the whole answer as JSON")
    with_project(suggest)

    export = command("export", cmd_export, "export the labels (streamed)")
    export.add_argument("--format", choices=["csv", "jsonl", "coco"], default="jsonl")
    export.add_argument("--output", "-o", type=Path, help="file to write ('-' for stdout)")
    export.add_argument("--include-unlabelled", action="store_true")
    with_project(export)

    models = commands.add_parser("model", help="trained models")
    model_commands = models.add_subparsers(dest="model_command", required=True)
    download = command(
        "download", cmd_model_download, "download a model (ONNX + config.json)", model_commands
    )
    download.add_argument(
        "--model", type=int, help="model id (default: the project's active model)"
    )
    download.add_argument("--output", "-o", type=Path, help="folder (default: model-<id>)")
    download.add_argument("--weights", action="store_true", help="also the safetensors weights")
    with_project(download)

    predict = command(
        "predict", cmd_predict, "predict images with a downloaded model (or --server)"
    )
    predict.add_argument("files", nargs="+", type=Path, metavar="FILE")
    predict.add_argument("--model-dir", type=Path, help="folder from `xmodel model download`")
    predict.add_argument("--server", action="store_true", help="predict on the service instead")
    predict.add_argument("--model", type=int, help="with --server: model id (default: active)")
    with_project(predict)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except CliError as exc:
        err.print(f"error: {exc}")
    except ApiError as exc:
        err.print(f"error: {exc.code}: {exc.detail}")
    except XModelError as exc:
        err.print(f"error: {exc}")
    except KeyboardInterrupt:
        err.print("interrupted")
        return 130
    finally:
        while _opened:
            _opened.pop().close()
    return 1


if __name__ == "__main__":
    sys.exit(main())
