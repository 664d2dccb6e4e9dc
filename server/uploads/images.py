"""Decode untrusted image bytes with Pillow: allow-listed formats only, a pixel limit that
raises before decoding, and a full decode so truncated files are caught.

Two kinds of image are rewritten once, here, so that every consumer (the page, the worker's
loader, ``predict``, exports) sees the same upright 8-bit pixels without knowing about them:

* an EXIF orientation other than "normal" is applied (``ImageOps.exif_transpose``): a phone
  photo stored sideways with a "rotate 90" tag becomes upright pixels with no tag, and its
  width and height are those an annotator sees;
* 16-bit and 32-bit greyscale (``I;16``, ``I``) are scaled to 8 bits (``v * 255 / 65535``)
  instead of being clipped at 255 by a later ``convert("RGB")``; floating-point pixels are
  refused, since their range is unknown.

The rewritten image is stored as PNG (JPEG at quality 95 when the upload was a JPEG photo),
and its content hash is that of the stored bytes, so a second upload of the same file is
still recognised as a duplicate."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from server.errors import InvalidImage, PayloadTooLarge


@dataclass(frozen=True)
class CheckedImage:
    """The bytes to store (``data``: the upload, or its normalised rewrite) and their facts."""

    data: bytes
    image_format: str
    width: int
    height: int


EXIF_ORIENTATION = 0x0112
SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")


def _orientation(image: Image.Image) -> int:
    try:
        value = image.getexif().get(EXIF_ORIENTATION, 1)
    except Exception:  # an unreadable EXIF block: treat as no orientation  # noqa: BLE001
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _to_eight_bits(image: Image.Image, name: str) -> Image.Image:
    """High-depth greyscale -> ``L`` with the full range scaled, not clipped."""
    if image.mode == "F":
        raise InvalidImage(
            f"{name}: floating-point pixels are not supported; save the image as 8- or 16-bit"
        )
    pixels = np.asarray(image, dtype=np.float64)
    if image.mode == "I" and pixels.size and (pixels.min() < 0 or pixels.max() > 65535):
        raise InvalidImage(f"{name}: 32-bit pixel values outside 0-65535 are not supported")
    scaled = np.rint(pixels * (255.0 / 65535.0)).clip(0, 255).astype(np.uint8)
    return Image.fromarray(scaled)


def _normalised(image: Image.Image, image_format: str, name: str) -> tuple[bytes, str] | None:
    """The rewritten bytes and format, or None when the upload can be stored as it is."""
    high_depth = image.mode in SIXTEEN_BIT_MODES or image.mode in ("I", "F")
    rotated = _orientation(image) != 1
    if not (high_depth or rotated):
        return None
    out = ImageOps.exif_transpose(image) if rotated else image
    if high_depth:
        out = _to_eight_bits(out, name)
    buffer = io.BytesIO()
    if image_format == "JPEG" and out.mode in ("RGB", "L", "CMYK"):
        out.save(buffer, format="JPEG", quality=95)
        return buffer.getvalue(), "JPEG"
    out.save(buffer, format="PNG", optimize=False)
    return buffer.getvalue(), "PNG"


def check_image(
    data: bytes,
    *,
    allowed_formats: tuple[str, ...],
    max_pixels: int,
    max_bytes: int,
    name: str = "file",
) -> CheckedImage:
    """Return the image's format and size, or raise a 4xx error a person can act on."""
    if len(data) > max_bytes:
        raise PayloadTooLarge(
            f"{name}: {len(data)} bytes exceeds the per-file limit of {max_bytes}"
        )
    if not data:
        raise InvalidImage(f"{name}: empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            # ``formats`` restricts which decoders may even look at the bytes.
            with Image.open(io.BytesIO(data), formats=list(allowed_formats)) as image:
                width, height = image.size
                if width <= 0 or height <= 0:
                    raise InvalidImage(f"{name}: image has no pixels")
                if width * height > max_pixels:
                    raise InvalidImage(
                        f"{name}: {width}x{height} pixels exceeds the limit of {max_pixels} pixels"
                    )
                image_format = str(image.format)
                image.load()
                rewritten = _normalised(image, image_format, name)
    except InvalidImage:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InvalidImage(f"{name}: image too large to decode safely ({exc})") from exc
    except UnidentifiedImageError as exc:
        raise InvalidImage(
            f"{name}: not a supported image; allowed formats: {', '.join(allowed_formats)}"
        ) from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise InvalidImage(f"{name}: image is corrupt or truncated ({exc})") from exc
    if image_format not in allowed_formats:  # defensive: ``formats`` already restricts
        raise InvalidImage(f"{name}: format {image_format} is not allowed")
    if rewritten is not None:
        data, image_format = rewritten
        with Image.open(io.BytesIO(data)) as stored:
            width, height = stored.size
    return CheckedImage(data=data, image_format=image_format, width=width, height=height)
