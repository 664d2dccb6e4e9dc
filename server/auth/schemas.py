"""Token schemas."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

ProjectRole = Literal["owner", "annotator"]


class TokenCreate(BaseModel):
    role: ProjectRole = Field(examples=["annotator"])
    name: str = Field(default="", max_length=200, examples=["alice"])


class TokenRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    project_id: int | None
    role: str
    name: str
    prefix: str = Field(description="first characters of the token, to recognise it")
    created_at: datetime
    revoked_at: datetime | None


class TokenCreated(TokenRead):
    token: str = Field(description="the secret; shown only in this answer, stored only as a hash")
