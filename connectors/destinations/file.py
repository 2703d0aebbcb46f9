"""Appends events (as its `encoding:` says) or export rows to a JSON Lines file; also a dead letter."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any, Literal

import msgspec
from pydantic import Field

from connectors.destinations.encoding import Encoding, EventEncoding, encoding_field, line_of
from connectors.formats.recommendations import RELATED_ITEMS, SEGMENT_AUDIENCE, USER_RECOMMENDATIONS
from hub.connector import BatchPolicy, Context, Destination, DestinationConfig, EncodeResult
from hub.events import Event
from hub.rows import ExportRow
from hub.worker_thread import WorkerThread


class FileDestinationConfig(DestinationConfig):
    """Writes JSON Lines to a local file: for the embedded mode, demos, exports and the dead letter."""

    type: Literal["file"]
    example = {"type": "file", "id": "events", "path": "var/events.jsonl"}
    # A local file has no API limit; 500 lines per write amortises the syscall and the thread hop. A webhook
    # answers only once its events are written, so the wait is short: a write every 5 ms costs little.
    api_limits = BatchPolicy(max_events=500, max_wait_secs=0.005, max_in_flight=1)

    path: Path = Field(..., description="File to append to; parent folders are created.")
    fsync: bool = Field(False, description="fsync after every write (survives power loss, costs ~ms per write).")
    encoding: Encoding | None = encoding_field()


class FileDestination(Destination):
    """JSON Lines file destination: streamed events, and every shape of a batch job's rows."""

    Config = FileDestinationConfig
    config: FileDestinationConfig
    export_rows = frozenset({USER_RECOMMENDATIONS, SEGMENT_AUDIENCE, RELATED_ITEMS})

    def __init__(self, config: FileDestinationConfig, context: Context):
        super().__init__(config, context)
        self.encoding = EventEncoding(config.encoding, context)
        self._file: IO[bytes] | None = None
        self._lock = asyncio.Lock()
        self._writer = WorkerThread(f"file-{config.id}")
        self._encoder = msgspec.json.Encoder()

    async def start(self) -> None:
        if self._file is None:
            self.config.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.config.path, "ab")  # noqa: SIM115 - held open for the process's life

    def encode(self, events: Sequence[Event]) -> list[EncodeResult]:
        return self.encoding.encode(events)

    async def send(self, batch: Sequence[Any]) -> None:
        await self.write_records([member.record if isinstance(member, ExportRow) else line_of(member)
                                  for member in batch])

    async def write_records(self, records: Sequence[dict[str, Any]]) -> None:
        await self.start()
        data = self._encoder.encode_lines(records)  # one call for the batch: JSON Lines, each line ending in \n
        async with self._lock:  # one writer at a time keeps lines whole and in order
            await self._writer.call(self._write, data)

    def _write(self, data: bytes) -> None:
        assert self._file is not None
        self._file.write(data)
        self._file.flush()
        if self.config.fsync:
            os.fsync(self._file.fileno())

    async def close(self) -> None:
        async with self._lock:
            if self._file is not None:
                # On the writer's thread: after any write queued there, even one whose caller was cancelled.
                await self._writer.call(self._file.close)
                self._file = None
            self._writer.stop()
