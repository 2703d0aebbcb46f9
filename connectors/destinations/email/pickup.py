"""Pickup-directory transport for the email destination: each message written as an .eml file."""

from __future__ import annotations

import asyncio
import os
from email.message import EmailMessage
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class PickupSettings(BaseModel):
    """A directory that receives every message as an RFC 5322 file (previews, demos, a relay that polls it)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["pickup"] = Field(description="pickup")
    directory: Path = Field(..., description="Where `<Message-ID>.eml` files are written; created if absent.")


class PickupTransport:
    """Writes each message atomically (temporary name, then rename), so a reader never sees half a mail.

    The file name comes from the Message-ID, which the email destination derives from the run and the
    recipient: a resend overwrites the same file, so this transport is naturally idempotent.
    """

    def __init__(self, settings: PickupSettings):
        self.directory = settings.directory

    async def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)

    async def close(self) -> None:
        return None

    async def send(self, message: EmailMessage, sender: str, recipient: str, tags: dict[str, str]) -> None:
        await asyncio.to_thread(self._write, self._path(message, recipient), message.as_bytes())

    async def delivered(self, message: EmailMessage, recipient: str) -> bool:
        """Whether this message was written: the rename is atomic, so a file means a whole mail."""
        return await asyncio.to_thread(self._path(message, recipient).exists)

    def _path(self, message: EmailMessage, recipient: str) -> Path:
        name = (message["Message-ID"] or f"<{recipient}>").strip("<>").replace("/", "_")
        return self.directory / f"{name}.eml"

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        partial = path.with_suffix(".eml.partial")
        partial.write_bytes(data)
        os.replace(partial, path)
