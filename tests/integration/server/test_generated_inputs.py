"""Generated hostile input (Hypothesis): labels of every shape and uploads of mangled bytes.
Each answer is a 2xx or a clear 4xx; a refused request changes no row and no file, and an
accepted label is stored in its canonical, finite form."""

from __future__ import annotations

import io
import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from server_test_helpers import row_counts, unique_png

pytestmark = pytest.mark.integration

RUN = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

numbers = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30),
    st.integers(min_value=-4, max_value=40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([10**400, -(10**400), 1e308, -0.0, True]),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, st.text(max_size=12))
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)
points = st.lists(st.one_of(st.lists(numbers, min_size=0, max_size=4), json_values), max_size=4)
LABELS = {
    "classification": st.one_of(
        json_values,
        st.fixed_dictionaries(
            {"class": st.one_of(st.sampled_from(["cat", "dog", "Cat", ""]), json_values)}
        ),
    ),
    "regression": st.one_of(
        json_values,
        st.fixed_dictionaries(
            {
                "values": st.one_of(
                    st.dictionaries(
                        st.sampled_from(["age", "size", "x"]),
                        st.one_of(numbers, json_values),
                        max_size=3,
                    ),
                    st.lists(numbers, max_size=3),
                )
            }
        ),
    ),
    "keypoints": st.one_of(json_values, st.fixed_dictionaries({"points": points})),
}
TASKS = {
    "classification": {"kind": "classification", "classes": ["cat", "dog"]},
    "regression": {"kind": "regression", "targets": ["age", "size"], "ranges": {"age": [0, 120]}},
    "keypoints": {"kind": "keypoints", "points": ["left", "right"]},
}


def _finite(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value) and abs(value) <= 1e12
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    if isinstance(value, list):
        return all(_finite(v) for v in value)
    return True


@pytest.mark.parametrize("kind", list(TASKS))
def test_generated_labels_are_stored_canonical_or_refused_cleanly(api, kind: str) -> None:
    project_id, owner = api.create_project(task=TASKS[kind])
    item = api.upload(project_id, owner, [("a.png", unique_png(size=(32, 24)))]).json()["items"][0][
        "item"
    ]
    headers = {**owner, "Content-Type": "application/json"}

    @RUN
    @given(label=LABELS[kind])
    def check(label: Any) -> None:
        body = json.dumps(label)  # NaN and Infinity too, as a careless client sends them
        before = (row_counts(api.engine), api.store.count())
        response = api.client.put(f"/items/{item['id']}/label", headers=headers, content=body)
        assert response.status_code in (200, 400, 422), (body, response.status_code, response.text)
        if response.status_code == 200:
            stored = response.json()["item"]["label"]
            assert stored is not None and _finite(stored), (body, stored)
        else:
            assert response.json()["error"] in ("invalid_label", "validation_error", "bad_request")
            assert (row_counts(api.engine), api.store.count()) == before
        # the same label in an upload's labels field is refused or accepted the same way
        upload = api.client.post(
            f"/projects/{project_id}/items",
            headers=owner,
            data={"labels": "[" + body + "]"},
            files=[("files", ("b.png", unique_png(size=(32, 24)), "image/png"))],
        )
        assert upload.status_code < 500, upload.text
        if response.status_code == 200:
            assert upload.status_code == 201, (body, upload.text)
        elif response.status_code == 400:
            assert upload.status_code == 400, (body, upload.text)

    check()


def _png(size: tuple[int, int] = (12, 10), mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size).save(buffer, format="PNG")
    return buffer.getvalue()


@st.composite
def mangled_images(draw: st.DrawFn) -> bytes:
    base = draw(
        st.sampled_from([_png(), _png(mode="L"), _png(mode="I;16"), _png((1, 1)), _png(mode="P")])
    )
    edit = draw(st.sampled_from(["truncate", "flip", "garbage", "keep", "append"]))
    if edit == "truncate":
        return base[: draw(st.integers(min_value=0, max_value=len(base)))]
    if edit == "flip":
        data = bytearray(base)
        for _ in range(draw(st.integers(min_value=1, max_value=8))):
            at = draw(st.integers(min_value=0, max_value=len(data) - 1))
            data[at] = draw(st.integers(min_value=0, max_value=255))
        return bytes(data)
    if edit == "garbage":
        return draw(st.binary(max_size=300))
    if edit == "append":
        return base + draw(st.binary(max_size=64))
    return base


def test_generated_uploads_store_everything_or_nothing(api) -> None:
    project_id, owner = api.create_project()

    @RUN
    @given(
        files=st.lists(mangled_images(), min_size=1, max_size=3),
        labels=st.one_of(st.none(), st.text(max_size=30), json_values.map(json.dumps)),
    )
    def check(files: list[bytes], labels: str | None) -> None:
        before_rows, before_files = row_counts(api.engine), api.store.count()
        response = api.client.post(
            f"/projects/{project_id}/items",
            headers=owner,
            data={"labels": labels} if labels is not None else None,
            files=[("files", (f"f{i}.png", data, "image/png")) for i, data in enumerate(files)],
        )
        assert response.status_code in (200, 201, 400, 413, 422), (
            response.status_code,
            response.text,
        )
        after_rows, after_files = row_counts(api.engine), api.store.count()
        if response.status_code >= 400:
            assert len(response.json()["detail"]) > 5
            assert (after_rows, after_files) == (before_rows, before_files)
        else:
            created = response.json()["created"]
            assert after_rows["items"] == before_rows["items"] + created
            assert after_files == before_files + created

    check()
