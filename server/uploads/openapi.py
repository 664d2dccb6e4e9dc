"""OpenAPI text for routes that read a multipart form themselves (streamed, size-limited)
instead of declaring ``File`` parameters: the request body FastAPI cannot infer."""

from __future__ import annotations

from typing import Any


def multipart_body(properties: dict[str, dict[str, Any]], required: list[str]) -> dict[str, Any]:
    """``openapi_extra`` declaring a required ``multipart/form-data`` body with these fields."""
    return {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {"type": "object", "required": required, "properties": properties}
                }
            },
        }
    }
