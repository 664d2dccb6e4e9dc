"""The client's transport rules against a real (tiny, stdlib) HTTP server: what is retried,
how errors are typed, how pages are followed; and how upload sources are found on disk."""

from __future__ import annotations

import json
import os
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from xmodel_client import XModelClient, collect, credentials
from xmodel_client.errors import (
    ApiError,
    InvalidLabel,
    NotFound,
    ServiceUnavailable,
    TransportError,
)

Script = dict[tuple[str, str], list[tuple[int, Any]]]


class _Server:
    """Answers each (method, path) with the next scripted (status, body); records requests."""

    def __init__(self) -> None:
        self.script: Script = {}
        self.seen: list[tuple[str, str]] = []
        self.clients: list[XModelClient] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                outer.seen.append((self.command, self.path))
                key = (self.command, self.path.split("?")[0])
                status, body = (
                    outer.script[key].pop(0)
                    if outer.script.get(key)
                    else (404, {"error": "not_found", "detail": f"nothing scripted for {key}"})
                )
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = _answer

            def log_message(self, *args: Any) -> None:
                return None

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture
def server() -> Iterator[_Server]:
    running = _Server()
    yield running
    for client in running.clients:
        client.close()
    running.httpd.shutdown()
    running.httpd.server_close()


def _client(server: _Server) -> XModelClient:
    client = XModelClient(server.url, "t", backoff=0.01)
    server.clients.append(client)
    return client


def test_safe_calls_are_retried_and_unsafe_ones_are_not(server: _Server) -> None:
    unavailable = (503, {"error": "service_unavailable", "detail": "busy"})
    server.script[("GET", "/projects")] = [unavailable, unavailable, (200, [])]
    assert _client(server).list_projects() == []
    assert server.seen.count(("GET", "/projects")) == 3

    server.script[("POST", "/projects")] = [unavailable, (201, {})]
    with pytest.raises(ServiceUnavailable):
        _client(server).create_project("p", {"kind": "classification", "classes": ["a", "b"]})
    assert server.seen.count(("POST", "/projects")) == 1  # creating twice would make two projects


def test_error_bodies_become_typed_exceptions(server: _Server) -> None:
    server.script[("PUT", "/items/5/label")] = [
        (400, {"error": "invalid_label", "detail": "unknown class 'x'"})
    ]
    with pytest.raises(InvalidLabel) as caught:
        _client(server).set_label(5, {"class": "x"})
    assert (caught.value.status_code, caught.value.code, caught.value.detail) == (
        400,
        "invalid_label",
        "unknown class 'x'",
    )
    with pytest.raises(NotFound):
        _client(server).get_item(6)
    assert server.seen.count(("GET", "/items/6")) == 1  # a 404 is an answer, not a failure
    server.script[("GET", "/jobs/1")] = [(418, {"error": "teapot", "detail": "no"})]
    with pytest.raises(ApiError) as other:
        _client(server).get_job(1)
    assert type(other.value) is ApiError and other.value.code == "teapot"


def test_unreachable_service_raises_transport_error() -> None:
    with XModelClient("http://127.0.0.1:9", "t", retries=1, backoff=0.01) as client:
        with pytest.raises(TransportError):
            client.list_projects()


def _item(item_id: int) -> dict[str, Any]:
    return {
        "id": item_id,
        "project_id": 1,
        "sha256": f"{item_id:064x}",
        "width": 1,
        "height": 1,
        "image_format": "PNG",
        "byte_size": 1,
        "original_name": f"{item_id}.png",
    }


def test_iter_items_follows_the_cursor(server: _Server) -> None:
    server.script[("GET", "/projects/1/items")] = [
        (200, {"items": [_item(1), _item(2)], "next_cursor": "2"}),
        (200, {"items": [_item(3), _item(4)], "next_cursor": "4"}),
        (200, {"items": [_item(5)], "next_cursor": None}),
    ]
    assert [i.id for i in _client(server).iter_items(1, page_size=2)] == [1, 2, 3, 4, 5]
    assert [p for m, p in server.seen][1:] == [
        "/projects/1/items?status=all&limit=2&cursor=2",
        "/projects/1/items?status=all&limit=2&cursor=4",
    ]


def test_collect_walks_folders_and_zips(tmp_path: Path) -> None:
    (tmp_path / "set" / "sub").mkdir(parents=True)
    (tmp_path / "set" / "a.png").write_bytes(b"a")
    (tmp_path / "set" / "sub" / "b.JPG").write_bytes(b"b")
    (tmp_path / "set" / ".hidden.png").write_bytes(b"h")
    (tmp_path / "set" / "notes.txt").write_text("n")
    with zipfile.ZipFile(tmp_path / "set" / "pack.zip", "w") as archive:
        archive.writestr("inner/c.webp", b"c")
        archive.writestr("__MACOSX/._c.webp", b"x")
        archive.writestr("readme.md", b"r")
    (tmp_path / "loose.dat").write_bytes(b"d")
    sources, skipped = collect([tmp_path / "set", tmp_path / "loose.dat", tmp_path / "missing"])
    assert [s.name for s in sources] == ["a.png", "inner/c.webp", "sub/b.JPG", "loose.dat"]
    assert sources[1].open().read() == b"c" and sources[1].size == 1
    assert sources[0].sha256() == "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb"
    reasons = {Path(s.origin).name: s.reason for s in skipped}
    assert set(reasons) == {"notes.txt", "pack.zip:readme.md", "missing"}


def test_credentials_are_saved_for_the_owner_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XMODEL_CONFIG_DIR", str(tmp_path / "cfg"))
    monkeypatch.delenv("XMODEL_TOKEN", raising=False)
    monkeypatch.delenv("XMODEL_URL", raising=False)
    path = credentials.save(credentials.Credentials(url="http://x", token="secret", project=3))
    assert os.stat(path).st_mode & 0o777 == 0o600
    loaded = credentials.load()
    assert (loaded.url, loaded.token, loaded.project) == ("http://x", "secret", 3)
    monkeypatch.setenv("XMODEL_TOKEN", "from-env")
    assert credentials.load().token == "from-env"


def test_ctrl_c_while_following_a_job_is_held_for_a_safe_point_and_a_second_one_raises() -> None:
    """The first Ctrl-C only sets the event (the bar checks it between polls); a second one,
    for a poll stuck on the network, interrupts at once; afterwards the handler in place before
    is back. Also when the process started with SIGINT ignored (a background launcher)."""
    import signal
    import time

    from xmodel_client.cli import _ctrl_c_deferred

    def wait_for_signal() -> None:
        time.sleep(0.05)  # the handler runs in the main thread between bytecodes

    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with _ctrl_c_deferred() as pressed:
            os.kill(os.getpid(), signal.SIGINT)
            wait_for_signal()
            assert pressed.is_set()
            with pytest.raises(KeyboardInterrupt):
                os.kill(os.getpid(), signal.SIGINT)
                wait_for_signal()
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, before)
