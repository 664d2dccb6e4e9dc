"""This worker process's image and artefact stores (built once, from the same settings as
the API's, so both read and write the same place)."""

from __future__ import annotations

from functools import lru_cache

from server.storage.factory import Stores, build_stores
from worker.settings import server_settings


@lru_cache(maxsize=1)
def stores() -> Stores:
    return build_stores(server_settings())
