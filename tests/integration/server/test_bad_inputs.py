"""A corpus of hostile or broken inputs: each gets a clear 4xx and changes no row and no file."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from collections.abc import Callable

import pytest
from server_test_helpers import image_bytes, row_counts, unique_png, zip_bytes

pytestmark = pytest.mark.integration


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims a huge size, with a tiny (invalid) body."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


SVG = b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>'


def zip_bomb() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        with archive.open("zeros.png", "w") as handle:
            block = b"\0" * (1024 * 1024)
            for _ in range(64):  # 64 MiB of zeros, a few tens of KiB compressed
                handle.write(block)
    return buffer.getvalue()


def zip_ratio_bomb() -> bytes:
    """Below the per-entry byte cap but far above the ratio cap."""
    return zip_bytes({"ok.png": unique_png(), "zeros.bmp": b"\0" * (4 * 1024 * 1024)})


def snapshot(api) -> tuple[dict[str, int], int]:
    return row_counts(api.engine), api.store.count()


def _assert_import_refused(
    api, project_id: int, owner: dict[str, str], archive: bytes, phrase: str
) -> None:
    """The import answers 4xx naming ``phrase`` and leaves every row and stored file as it was."""
    before = snapshot(api)
    response = api.import_zip(project_id, owner, archive)
    assert 400 <= response.status_code < 500, response.text
    assert phrase in response.json()["detail"], response.json()
    assert snapshot(api) == before


UPLOAD_CASES = {
    "not_an_image": ([("notes.png", b"hello, I am text")], None, 400, "invalid_image"),
    "truncated_jpeg": (
        [("cut.jpg", image_bytes(fmt="JPEG", size=(64, 64), seed=5)[:300])],
        None,
        400,
        "invalid_image",
    ),
    "png_claims_50000x50000": (
        [("huge.png", png_claiming(50_000, 50_000))],
        None,
        400,
        "invalid_image",
    ),
    "svg_renamed_png": ([("vector.png", SVG)], None, 400, "invalid_image"),
    "nan_label": ([("a.png", None)], "NAN", 400, "invalid_label"),
    "unknown_class": ([("a.png", None)], [{"class": "horse"}], 400, "invalid_label"),
    "good_then_bad_file": (
        [("ok.png", None), ("bad.png", b"GIF89a nope")],
        None,
        400,
        "invalid_image",
    ),
    "labels_not_aligned": (
        [("a.png", None), ("b.png", None)],
        [{"class": "cat"}],
        400,
        "bad_request",
    ),
}


@pytest.mark.parametrize("case", list(UPLOAD_CASES))
def test_bad_upload_changes_nothing(api, case: str) -> None:
    project_id, owner = api.create_project()
    api.upload(project_id, owner, [("seed.png", unique_png())])  # something already there
    files, labels, status, code = UPLOAD_CASES[case]
    files = [(name, data if data is not None else unique_png()) for name, data in files]
    before = snapshot(api)
    if labels == "NAN":
        response = api.client.post(
            f"/projects/{project_id}/items",
            headers=owner,
            data={"labels": '[{"class": NaN}]'},
            files=[("files", (n, d, "image/png")) for n, d in files],
        )
    else:
        response = api.upload(project_id, owner, files, labels=labels)
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == code and len(body["detail"]) > 10
    assert snapshot(api) == before


# (labels file name, its bytes) beside one image ``a.png``, and the phrase the refusal names
LABELS_FILE_CASES = {
    "csv_unknown_class": ("labels.csv", b"filename,label\na.png,horse\n", "unknown class"),
    "csv_columns_swapped_short_row": ("labels.csv", b"label,filename\ncat\n", "line 2"),
    "csv_no_header": ("labels.csv", b"a.png,cat\n", "header"),
    "csv_extra_cells": ("labels.csv", b"filename,label\na.png,cat,dog\n", "line 2"),
    "csv_huge_number": ("labels.csv", b'filename,label\na.png,{"class": 1}\n', "classification"),
    "csv_not_utf8": ("labels.csv", b"filename,label\na.png,\xff\xfe\n", "labels.csv"),
    "jsonl_not_objects": ("labels.jsonl", b"[1, 2]\n", "labels.jsonl line 1"),
}


def _one_image_with(labels_name: str, labels: bytes) -> Callable[[], bytes]:
    """A zip of one image ``a.png`` and a labels file, made when the case runs."""
    return lambda: zip_bytes({"a.png": unique_png(), labels_name: labels})


ZIP_CASES = {
    "dotdot_name": (
        lambda: zip_bytes({"ok.png": unique_png(), "../evil.png": unique_png()}),
        "'..'",
    ),
    "absolute_name": (lambda: zip_bytes({"/etc/evil.png": unique_png()}), "absolute"),
    "zip_bomb": (zip_bomb, "zip bomb"),
    "ratio_bomb": (zip_ratio_bomb, "compression ratio"),
    "not_a_zip": (lambda: b"PK\x03\x04 broken", "zip"),
    "bad_image_inside": (
        lambda: zip_bytes({"ok.png": unique_png(), "bad.png": b"nope"}),
        "not a supported image",
    ),
} | {
    case: (_one_image_with(name, labels), phrase)
    for case, (name, labels, phrase) in LABELS_FILE_CASES.items()
}
REGRESSION_CSV_CASES = {
    "broken_json_list": (b'filename,label\na.png,"[1,2"\n', "line 2"),
    "unquoted_list": (b"filename,label\na.png,[1,2\n", "line 2"),
    "digits_400": (b"filename,label\na.png," + b"9" * 400 + b"\n", "finite"),
    "json_digits_5000": (b'filename,label\na.png,"[' + b"9" * 5000 + b']"\n', "line 2"),
    "json_nested_deep": (b'filename,label\na.png,"' + b"[" * 100_000 + b'"\n', "line 2"),
    "json_1e308": (b'filename,label\na.png,"{""values"": {""age"": 1e308}}"\n', "finite"),
    "not_a_number": (b"filename,label\na.png,old\n", "not a number"),
}


@pytest.mark.parametrize("case", list(REGRESSION_CSV_CASES))
def test_bad_labels_csv_on_regression_is_a_400_naming_the_row(api, case: str) -> None:
    project_id, owner = api.create_project(task={"kind": "regression", "targets": ["age"]})
    table, phrase = REGRESSION_CSV_CASES[case]
    archive = zip_bytes(
        {"a.png": unique_png(), "labels.csv": table}, compression=zipfile.ZIP_STORED
    )
    _assert_import_refused(api, project_id, owner, archive, phrase)


@pytest.mark.parametrize("case", list(ZIP_CASES))
def test_bad_zip_changes_nothing(api, case: str) -> None:
    project_id, owner = api.create_project()
    make, phrase = ZIP_CASES[case]
    archive = make()
    _assert_import_refused(api, project_id, owner, archive, phrase)


@pytest.mark.parametrize(
    "settings_overrides", [{"max_request_bytes": 200_000, "max_file_bytes": 100_000}]
)
def test_oversized_body_is_413_and_changes_nothing(api, settings_overrides) -> None:
    project_id, owner = api.create_project()
    before = snapshot(api)
    big = image_bytes(size=(400, 400), fmt="BMP")  # ~480 kB
    response = api.upload(project_id, owner, [("big.bmp", big)])
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"
    one_file_too_big = image_bytes(
        size=(200, 200), fmt="BMP"
    )  # ~120 kB: under request, over file limit
    response = api.upload(project_id, owner, [("big.bmp", one_file_too_big)])
    assert response.status_code == 413 and "per-file limit" in response.json()["detail"]
    assert snapshot(api) == before


@pytest.mark.parametrize(
    "settings_overrides", [{"max_request_bytes": 2_000_000, "max_file_bytes": 1_000_000}]
)
def test_chunked_body_without_length_is_cut_at_limit(api, settings_overrides) -> None:
    """A streamed body with no Content-Length still stops at the limit."""
    project_id, owner = api.create_project()
    limit = api.settings.max_request_bytes

    def chunks():
        yield b'--x\r\nContent-Disposition: form-data; name="files"; filename="a.png"\r\n\r\n'
        block = b"\0" * (1024 * 1024)
        for _ in range(limit // len(block) + 2):
            yield block

    before = snapshot(api)
    response = api.client.post(
        f"/projects/{project_id}/items",
        headers={**owner, "Content-Type": "multipart/form-data; boundary=x"},
        content=chunks(),
    )
    assert response.status_code == 413
    assert snapshot(api) == before


LABEL_CASES = {
    "nan": ("classification", None, '{"class": NaN}', "classification"),
    "unknown_class": ("classification", None, '{"class": "horse"}', "unknown class"),
    "regression_nan": ("regression", None, '{"values": {"age": NaN}}', "finite"),
    "regression_out_of_range": (
        "regression",
        None,
        '{"values": {"age": 500}}',
        "outside its range",
    ),
    "regression_missing_target": ("regression", None, '{"values": {}}', "missing"),
    "wrong_number_of_keypoints": (
        "keypoints",
        None,
        '{"points": [[1, 2]]}',
        "expected 2 keypoints",
    ),
    "keypoint_outside_image": ("keypoints", None, '{"points": [[1, 2], [400, 2]]}', "outside"),
    "keypoint_bad_visibility": ("keypoints", None, '{"points": [[1, 2], [3, 4, 7]]}', "visibility"),
}
TASKS = {
    "classification": {"kind": "classification", "classes": ["cat", "dog"]},
    "regression": {"kind": "regression", "targets": ["age"], "ranges": {"age": [0, 120]}},
    "keypoints": {
        "kind": "keypoints",
        "points": ["left", "right"],
        "flip_pairs": [["left", "right"]],
    },
}


@pytest.mark.parametrize("case", list(LABEL_CASES))
def test_bad_label_changes_nothing(api, case: str) -> None:
    kind, _, raw, phrase = LABEL_CASES[case]
    project_id, owner = api.create_project(task=TASKS[kind])
    item_id = api.upload(project_id, owner, [("a.png", unique_png(size=(32, 24)))]).json()["items"][
        0
    ]["item"]["id"]
    before = snapshot(api)
    response = api.client.put(
        f"/items/{item_id}/label",
        headers={**owner, "Content-Type": "application/json"},
        content=raw,
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_label" and phrase in response.json()["detail"]
    assert snapshot(api) == before


def test_malformed_payloads_are_422_in_the_error_shape(api) -> None:
    project_id, owner = api.create_project()
    response = api.client.post(
        "/projects", headers=api.admin, json={"name": "x", "task": {"kind": "nope"}}
    )
    assert response.status_code == 422 and response.json()["error"] == "validation_error"
    response = api.client.get(f"/projects/{project_id}/suggest", headers=owner, params={"k": 0})
    assert response.status_code == 422 and "k" in response.json()["detail"]
    response = api.client.post(
        "/projects",
        headers=api.admin,
        json={
            "name": "x",
            "task": {"kind": "keypoints", "points": ["a"], "flip_pairs": [["a", "b"]]},
        },
    )
    assert response.status_code == 422 and "flip pair" in response.json()["detail"]
