"""Job data at `s3://bucket/key` or `file:///path`: streamed line reads, byte ranges, uploads; never whole files."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from itertools import accumulate, repeat
from operator import add
from pathlib import Path
from typing import IO, Any
from urllib.parse import unquote, urlparse

from hub.errors import HubError

CHUNK_BYTES = 1 << 20  # reads of 1 MiB: few round trips, little memory


class BadLocation(HubError):
    """A URI that is neither s3://bucket/key nor file:///path, or names nothing."""


@dataclass(frozen=True)
class Location:
    """A parsed data location."""

    scheme: str  # "s3" or "file"
    bucket: str
    key: str  # S3 key, or the absolute local path

    @classmethod
    def parse(cls, uri: str) -> Location:
        parsed = urlparse(uri)
        if parsed.scheme == "file" and parsed.path:
            return cls("file", "", unquote(parsed.path))
        if parsed.scheme == "s3" and parsed.netloc:
            return cls("s3", parsed.netloc, parsed.path.lstrip("/"))
        raise BadLocation(f"unsupported location {uri!r}: use s3://bucket/key or file:///absolute/path")

    def __str__(self) -> str:
        return f"file://{self.key}" if self.scheme == "file" else f"s3://{self.bucket}/{self.key}"


def join(folder: str, *names: str) -> str:
    """`folder/name/...` whether or not the folder ends with a slash."""
    return "/".join([folder.rstrip("/"), *names])


def read_lines(uri: str, s3: Any = None) -> Iterator[bytes]:
    """Every non-empty line of an object, streamed (a users list may hold millions)."""
    location = Location.parse(uri)
    if location.scheme == "file":
        try:
            handle = open(location.key, "rb")  # noqa: SIM115 - closed by the with below
        except OSError as err:
            raise BadLocation(f"{uri}: {err.strerror}") from None
        with handle:
            for line in handle:
                if line.strip():
                    yield line.rstrip(b"\r\n")
        return
    try:
        body = s3.get_object(Bucket=location.bucket, Key=location.key)["Body"]
    except s3.exceptions.NoSuchKey:
        raise BadLocation(f"{uri}: no such object") from None
    for line in body.iter_lines(chunk_size=CHUNK_BYTES):
        if line.strip():
            yield line


def upload(path: Path, uri: str, s3: Any = None) -> None:
    """Put a local file at `uri` (one PUT: batch input is at most 1 GB, docs/reference/personalize-api.md#quotas)."""
    location = Location.parse(uri)
    if location.scheme == "file":
        target = Path(location.key)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        return
    with open(path, "rb") as handle:
        s3.put_object(Bucket=location.bucket, Key=location.key, Body=handle)


def size_of(uri: str, s3: Any = None) -> int | None:
    """Bytes at `uri`, or None when nothing is there."""
    location = Location.parse(uri)
    if location.scheme == "file":
        try:
            return os.stat(location.key).st_size
        except FileNotFoundError:
            return None
    from botocore.exceptions import ClientError

    try:
        return s3.head_object(Bucket=location.bucket, Key=location.key)["ContentLength"]
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return None
        raise


async def read_range(uri: str, start: int, s3: Any = None) -> AsyncIterator[bytes]:
    """Bytes of `uri` from offset `start` to the end, in chunks, without blocking the event loop."""
    location = Location.parse(uri)
    if location.scheme == "file":
        handle: IO[bytes] = await asyncio.to_thread(open, location.key, "rb")
        try:
            await asyncio.to_thread(handle.seek, start)
            while chunk := await asyncio.to_thread(handle.read, CHUNK_BYTES):
                yield chunk
        finally:
            handle.close()
        return
    response = await s3.get_object(Bucket=location.bucket, Key=location.key, Range=f"bytes={start}-")
    async with response["Body"] as body:
        while chunk := await body.read(CHUNK_BYTES):
            yield chunk


async def line_batches(chunks: AsyncIterator[bytes], start: int) -> AsyncIterator[list[tuple[int, bytes]]]:
    """Per chunk, [(offset just past the line, line), …] of a chunk stream that begins at offset `start`.

    Batches rather than single lines: one await per megabyte instead of one per line.
    """
    base, tail = start, b""  # base: the offset of data[0]
    async for chunk in chunks:
        data = tail + chunk if tail else chunk
        lines = data.split(b"\n")
        tail = lines.pop()
        if lines:
            # Each line's end offset, +1 for its newline, summed in C: no Python step per line.
            ends = accumulate(map(add, map(len, lines), repeat(1)), initial=base)
            next(ends)
            yield list(zip(ends, lines))
            base += len(data) - len(tail)
    if tail:
        yield [(base + len(tail), tail)]
