"""Give a finished job's memory back to the operating system."""

from __future__ import annotations

import ctypes
import gc
import sys


def release_memory() -> None:
    """Collect garbage, then ask glibc to return freed heap pages (``malloc_trim``): without
    it, the pool images and activations of a finished job stay in the idle worker's RSS."""
    gc.collect()
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):  # not glibc: nothing to trim
            pass
