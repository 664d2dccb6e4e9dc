"""Content-addressed storage for image bytes."""

from server.storage.image_store import FileImageStore, ImageStore

__all__ = ["FileImageStore", "ImageStore"]
