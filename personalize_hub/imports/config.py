"""The `imports:` config section: how `hub import` maps input columns and where it keeps its files."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class ImportsConfig(BaseModel):
    """Column mapping and local folders of `hub import`."""

    model_config = ConfigDict(extra="forbid")

    columns: dict[str, str] = Field(
        default_factory=dict,
        description="Schema field → input column (e.g. {USER_ID: customer_id}); unlisted fields are matched by "
        "header name, ignoring case and `_`.")
    ignore_columns: list[str] = Field(
        default_factory=list, description="Input columns to leave out rather than refuse as unknown.")
    folder: Path = Field(Path("var/imports"), description="Where the clean CSV and the rejects file are written.")
