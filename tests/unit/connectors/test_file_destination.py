"""The JSON Lines file destination: close waits for a write still running in its thread."""

from __future__ import annotations

import asyncio
import threading

import orjson

from connectors.destinations.file import FileDestination, FileDestinationConfig
from hub.connector import Context


async def test_close_waits_for_a_write_in_flight(tmp_path):
    path = tmp_path / "dead.jsonl"
    sink = FileDestination(FileDestinationConfig(type="file", path=path), Context())
    await sink.start()
    in_thread, release = threading.Event(), threading.Event()
    write = sink._write

    def slow_write(data: bytes) -> None:
        in_thread.set()
        release.wait(5)
        write(data)

    sink._write = slow_write  # type: ignore[method-assign]
    writing = asyncio.create_task(sink.write_records([{"n": 1}]))
    await asyncio.to_thread(in_thread.wait, 5)
    closing = asyncio.create_task(sink.close())
    await asyncio.sleep(0.05)
    release.set()
    await asyncio.gather(writing, closing)
    assert [orjson.loads(line) for line in path.read_bytes().splitlines()] == [{"n": 1}]
