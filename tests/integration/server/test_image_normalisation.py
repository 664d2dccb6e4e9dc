"""Images that need rewriting once at upload: EXIF-rotated photos and 16-bit greyscale. Every
consumer reads the stored bytes, so checking them through ``GET /items/{id}/image`` checks
what the page, the worker and ``predict`` all see."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.integration


def sixteen_bit_gradient(width: int = 256, height: int = 8) -> bytes:
    """A 0-65535 grey ramp, left to right, saved as a 16-bit PNG."""
    ramp = np.tile(np.linspace(0, 65535, width).round().astype(np.uint16), (height, 1))
    buffer = io.BytesIO()
    Image.fromarray(ramp).save(buffer, format="PNG")
    return buffer.getvalue()


def sideways_photo(orientation: int = 6, fmt: str = "JPEG") -> bytes:
    """40x20 pixels stored, a blue strip on the left; the tag says "rotate 90° clockwise to
    view", so viewers show 20x40 with the blue strip on top."""
    image = Image.new("RGB", (40, 20), (230, 20, 20))
    image.paste((20, 20, 230), (0, 0, 10, 20))
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    image.save(
        buffer, format=fmt, exif=exif.tobytes(), **({"quality": 95} if fmt == "JPEG" else {})
    )
    return buffer.getvalue()


def stored_pixels(api, item_id: int, headers: dict[str, str]) -> Image.Image:
    response = api.client.get(f"/items/{item_id}/image", headers=headers)
    assert response.status_code == 200
    image = Image.open(io.BytesIO(response.content))
    image.load()
    return image


def test_sixteen_bit_png_is_scaled_not_clipped(api) -> None:
    project_id, owner = api.create_project()
    response = api.upload(project_id, owner, [("ramp.png", sixteen_bit_gradient())])
    assert response.status_code == 201, response.text
    item = response.json()["items"][0]["item"]
    assert (item["width"], item["height"], item["image_format"]) == (256, 8, "PNG")
    grey = np.asarray(stored_pixels(api, item["id"], owner).convert("RGB"))[..., 0].astype(int)
    row = grey[0]
    assert (grey == 255).mean() < 0.01  # clipping made 99.4 % of the ramp white
    assert row[0] == 0 and row[-1] == 255
    assert np.all(np.diff(row) >= 0) and abs(row[128] - 128) <= 1


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_exif_orientation_is_applied_once_at_upload(api, fmt: str) -> None:
    project_id, owner = api.create_project(task={"kind": "keypoints", "points": ["tip"]})
    data = sideways_photo(fmt=fmt)
    response = api.upload(project_id, owner, [("phone.jpg", data)])
    assert response.status_code == 201, response.text
    item = response.json()["items"][0]["item"]
    assert (item["width"], item["height"]) == (20, 40)  # as every browser shows it
    stored = stored_pixels(api, item["id"], owner)
    assert stored.size == (20, 40)
    assert stored.getexif().get(0x0112, 1) == 1  # applied, so nobody rotates it again
    rgb = np.asarray(stored.convert("RGB")).astype(int)
    assert rgb[2, 10, 2] > 150 and rgb[2, 10, 0] < 100  # the blue strip is now on top
    assert rgb[35, 10, 0] > 150  # red below it
    # a point where the annotator sees it: inside the upright 20x40 image
    label = api.client.put(f"/items/{item['id']}/label", headers=owner, json={"points": [[15, 35]]})
    assert label.status_code == 200, label.text
    # the same file again is recognised as the same item
    again = api.upload(project_id, owner, [("phone-again.jpg", data)])
    assert again.status_code == 200 and again.json()["items"][0]["item"]["id"] == item["id"]


def test_plain_images_are_stored_byte_for_byte(api) -> None:
    project_id, owner = api.create_project()
    image = Image.new("RGB", (30, 10), (1, 2, 3))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG")
    item = api.upload(project_id, owner, [("plain.jpg", buffer.getvalue())]).json()["items"][0][
        "item"
    ]
    assert api.client.get(f"/items/{item['id']}/image", headers=owner).content == buffer.getvalue()
