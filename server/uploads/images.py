"""Decode untrusted image bytes with Pillow: allow-listed formats only, a pixel limit that
raises before decoding, and a full decode so truncated files are caught."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from server.errors import InvalidImage, PayloadTooLarge


@dataclass(frozen=True)
class CheckedImage:
    data: bytes
    image_format: str
    width: int
    height: int


def check_image(data: bytes, *, allowed_formats: tuple[str, ...], max_pixels: int,
                max_bytes: int, name: str = "file") -> CheckedImage:
    """Return the image's format and size, or raise a 4xx error a person can act on."""
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"{name}: {len(data)} bytes exceeds the per-file limit of {max_bytes}")
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
    return CheckedImage(data=data, image_format=image_format, width=width, height=height)
