"""Pure units of the server: settings refusal, image and zip checks, label rules, round robin."""

from __future__ import annotations

import io
import zipfile

import pytest
from PIL import Image

from server.errors import InvalidArchive, InvalidImage, InvalidLabel, PayloadTooLarge
from server.labels.validation import parse_label_text, validate_label
from server.settings import Settings, UnsafeSettingsError
from server.suggest.ranking import diversity_ranks, ranked_rows
from server.uploads.archives import ArchiveLimits, check_entry_name, read_archive
from server.uploads.images import check_image

FORMATS = ("JPEG", "PNG", "WEBP", "BMP")


@pytest.mark.parametrize(
    "overrides, phrase",
    [
        ({"admin_token": "changeme"}, "XM_ADMIN_TOKEN"),
        ({"database_url": "sqlite:///:memory:"}, "in-memory"),
        ({"max_file_bytes": 10, "max_request_bytes": 5}, "cannot exceed"),
        ({"lease_seconds": 0}, "XM_LEASE_SECONDS"),
        ({"allowed_image_formats": ("PNG", "SVG")}, "SVG"),
    ],
)
def test_unsafe_settings_are_refused(overrides, phrase) -> None:
    with pytest.raises(UnsafeSettingsError, match=phrase):
        Settings(**overrides).check_safe()


def test_settings_read_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("XM_LEASE_SECONDS", "42")
    monkeypatch.setenv("XM_DATABASE_URL", "postgresql://u@h/db")
    settings = Settings()
    assert settings.lease_seconds == 42 and settings.database_url == "postgresql://u@h/db"
    settings.check_safe()


def _png(size=(10, 10)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size).save(buffer, "PNG")
    return buffer.getvalue()


def test_image_pixel_limit_raises_before_decoding() -> None:
    with pytest.raises(InvalidImage, match="exceeds the limit"):
        check_image(_png((100, 100)), allowed_formats=FORMATS, max_pixels=9_999, max_bytes=10**6)
    assert (
        check_image(
            _png((100, 100)), allowed_formats=FORMATS, max_pixels=10_000, max_bytes=10**6
        ).width
        == 100
    )


def test_image_format_allow_list() -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buffer, "GIF")
    with pytest.raises(InvalidImage, match="not a supported image"):
        check_image(buffer.getvalue(), allowed_formats=FORMATS, max_pixels=10**6, max_bytes=10**6)
    with pytest.raises(PayloadTooLarge):
        check_image(_png(), allowed_formats=FORMATS, max_pixels=10**6, max_bytes=10)


@pytest.mark.parametrize(
    "name", ["../x.png", "a/../../x.png", "/abs.png", "C:/x.png", "\\\\server\\x.png", "a\x00b"]
)
def test_unsafe_entry_names(name: str) -> None:
    with pytest.raises(InvalidArchive):
        check_entry_name(name)


def test_archive_caps_entries_and_bytes() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for i in range(5):
            archive.writestr(f"{i}.png", _png())
    limits = ArchiveLimits(
        max_entries=4, max_total_bytes=10**6, max_entry_bytes=10**6, max_ratio=100
    )
    with pytest.raises(InvalidArchive, match="5 entries"):
        read_archive(io.BytesIO(buffer.getvalue()), limits)
    limits = ArchiveLimits(
        max_entries=10, max_total_bytes=len(_png()) * 3, max_entry_bytes=10**6, max_ratio=100
    )
    with pytest.raises(InvalidArchive, match="zip bomb"):
        read_archive(io.BytesIO(buffer.getvalue()), limits)


def test_archive_does_not_trust_header_sizes() -> None:
    """An entry whose header claims a small size but expands further is still cut off."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("a.bmp", b"\1" * 50_000)
    data = bytearray(buffer.getvalue())
    # Patch the uncompressed size in both headers to 10 bytes.
    local = data.find(b"PK\x03\x04")
    central = data.find(b"PK\x01\x02")
    data[local + 22 : local + 26] = (10).to_bytes(4, "little")
    data[central + 24 : central + 28] = (10).to_bytes(4, "little")
    limits = ArchiveLimits(
        max_entries=10, max_total_bytes=10**6, max_entry_bytes=20_000, max_ratio=10**6
    )
    with pytest.raises(InvalidArchive):
        read_archive(io.BytesIO(bytes(data)), limits)


def test_label_rules() -> None:
    task = {"kind": "regression", "targets": ["a", "b"], "ranges": {"a": [0, 1]}}
    assert validate_label(task, {"values": {"a": 0.5, "b": 9}}, width=1, height=1) == {
        "values": {"a": 0.5, "b": 9.0}
    }
    with pytest.raises(InvalidLabel, match="range"):
        validate_label(task, {"values": [2, 0]}, width=1, height=1)
    with pytest.raises(InvalidLabel, match="number"):
        validate_label(task, {"values": [True, 0]}, width=1, height=1)
    with pytest.raises(InvalidLabel):
        validate_label(task, "cat", width=1, height=1)
    assert parse_label_text({"kind": "classification", "classes": ["x"]}, " x ") == {"class": "x"}
    assert parse_label_text({"kind": "keypoints", "points": ["p"]}, "[[1, 2]]") == {
        "points": [[1, 2]]
    }


def _walk(rows: list[tuple[int, float, int]]) -> list[int]:
    """The round-robin walk done the slow, obvious way: each cluster's best, then each one's
    second best, ...; inside a layer by score, then id."""
    by_cluster: dict[int, list[tuple[int, float, int]]] = {}
    for row in sorted(rows, key=lambda r: (-r[1], r[0])):
        by_cluster.setdefault(row[2], []).append(row)
    order: list[int] = []
    for depth in range(max(len(v) for v in by_cluster.values())):
        layer = [v[depth] for v in by_cluster.values() if depth < len(v)]
        order += [r[0] for r in sorted(layer, key=lambda r: (-r[1], r[0]))]
    return order


def test_diversity_rank_interleaves_clusters_best_first() -> None:
    rows = [(1, 0.9, 0), (2, 0.8, 0), (3, 0.7, 0), (4, 0.5, 1), (5, 0.95, 2), (6, 0.1, 1)]
    assert [r.item_id for r in sorted(ranked_rows(rows), key=lambda r: r.rank)] == [
        5,
        1,
        4,
        2,
        6,
        3,
    ]


def test_diversity_rank_matches_the_walk_with_ties_and_uneven_clusters() -> None:
    import random

    rng = random.Random(3)
    for _ in range(300):
        n = rng.randint(1, 80)
        ids = rng.sample(range(1, 10_000), n)
        rows = [(i, float(rng.randint(0, 6)), rng.choice([0, 3, 3, 7, 11])) for i in ids]
        ranks = diversity_ranks(*zip(*rows, strict=True))
        assert sorted(ranks.tolist()) == list(range(n))
        assert [rows[j][0] for j in ranks.argsort()] == _walk(rows)


def test_diversity_rank_refuses_ragged_input() -> None:
    with pytest.raises(ValueError, match="same length"):
        diversity_ranks([1, 2], [0.5], [0, 0])


def test_the_api_sets_the_interpreters_switch_interval(tmp_path) -> None:
    """A request thread waits at most this long for the interpreter lock while an upload
    decodes images on another thread; a negative value is refused."""
    import sys

    from fastapi.testclient import TestClient

    from server.jobs.queue import RecordingJobQueue
    from server.main import create_app

    before = sys.getswitchinterval()
    settings = Settings(
        database_url=f"sqlite:///{tmp_path}/xmodel.db",
        storage_dir=tmp_path / "storage",
        gil_switch_interval_ms=2.0,
    )
    try:
        with TestClient(create_app(settings, job_queue=RecordingJobQueue())):
            assert sys.getswitchinterval() == pytest.approx(0.002)
    finally:
        sys.setswitchinterval(before)
    with pytest.raises(UnsafeSettingsError, match="GIL_SWITCH_INTERVAL"):
        Settings(gil_switch_interval_ms=-1).check_safe()
