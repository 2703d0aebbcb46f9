"""Data locations, streamed line offsets, shard bounds and the chain of export slices."""

from __future__ import annotations

import pytest

from workers import objects
from workers.objects import BadLocation, Location
from workers.slices import shard_bounds, walk


def test_locations():
    assert Location.parse("s3://bucket/a/b.jsonl") == Location("s3", "bucket", "a/b.jsonl")
    assert Location.parse("file:///tmp/x%20y.jsonl").key == "/tmp/x y.jsonl"
    for bad in ("/tmp/x", "s3:///key", "http://host/x", "file://"):
        with pytest.raises(BadLocation):
            Location.parse(bad)
    assert objects.join("s3://b/work/", "job", "run") == "s3://b/work/job/run"


async def chunks(data: bytes, size: int):
    for start in range(0, len(data), size):
        yield data[start:start + size]


@pytest.mark.parametrize("chunk_size", [1, 3, 7, 1000])
async def test_line_batches_report_the_offset_after_each_line(chunk_size):
    data = b"ab\n\ncdef\nghi"  # an empty line, and no newline at the end
    lines = [pair async for batch in objects.line_batches(chunks(data, chunk_size), 100) for pair in batch]
    assert lines == [(103, b"ab"), (104, b""), (109, b"cdef"), (112, b"ghi")]


async def test_read_range_of_a_file(tmp_path):
    path = tmp_path / "out.jsonl"
    path.write_bytes(b"0123456789")
    assert b"".join([c async for c in objects.read_range(f"file://{path}", 4)]) == b"456789"
    assert objects.size_of(f"file://{path}") == 10 and objects.size_of(f"file://{tmp_path}/none") is None
    assert list(objects.read_lines(f"file://{path}")) == [b"0123456789"]


def test_shards_cover_the_file_once():
    bounds = [shard_bounds(10, 3, s) for s in range(3)]
    assert bounds == [(0, 3), (3, 6), (6, None)]
    assert shard_bounds(10, 1, 0) == (0, None)


def test_walk_follows_next_offsets_from_each_shard_start():
    slices = {"0:0": {"lines": 1, "next_offset": 40, "finished": False},
              "0:40": {"lines": 2, "next_offset": 50, "finished": True},
              "0:45": {"lines": 100, "next_offset": 50, "finished": True},  # not on the chain
              "1:50": {"lines": 3, "next_offset": 80, "finished": False}}  # shard 1 is still running
    assert [s["lines"] for s in walk(slices, 100, 2)] == [1, 2, 3]
