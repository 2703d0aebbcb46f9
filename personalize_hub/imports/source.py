"""The input of an import: a path, file:// or s3:// object streamed in blocks of whole lines (or as numbered UTF-8
lines), never read whole."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from hub.errors import HubError
from workers.objects import CHUNK_BYTES, BadLocation, Location, size_of

FORMATS = ("csv", "jsonl", "parquet")
_SUFFIXES = {".csv": "csv", ".tsv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl",
             ".parquet": "parquet"}


class SourceError(HubError):
    """An input that cannot be read at all: missing, unsupported location or format."""


def location_of(source: str) -> Location:
    """A path, file:// or s3:// URI as a Location; a relative path is taken from the working directory."""
    if "://" not in source:
        return Location("file", "", os.path.abspath(source))
    try:
        return Location.parse(source)
    except BadLocation as err:
        raise SourceError(str(err)) from None


def format_of(location: Location, given: str | None) -> str:
    """The input format: as given, else from the name's suffix."""
    if given:
        return given
    name = location.key.lower().removesuffix(".gz")
    for suffix, fmt in _SUFFIXES.items():
        if name.endswith(suffix):
            return fmt
    raise SourceError(f"cannot tell the format of {location}: give --format csv, jsonl or parquet")


def size_or_fail(location: Location, s3: Any) -> int:
    """The input's size in bytes; SourceError when nothing is there (checked before any work)."""
    size = size_of(str(location), s3)
    if size is None:
        raise SourceError(f"{location}: no such {'object' if location.scheme == 's3' else 'file'}")
    return size


def raw_chunks(location: Location, s3: Any) -> Iterator[bytes]:
    """The input's bytes in reads of CHUNK_BYTES, never the whole object."""
    if location.scheme == "file":
        with open(location.key, "rb") as handle:
            while chunk := handle.read(CHUNK_BYTES):
                yield chunk
        return
    body = s3.get_object(Bucket=location.bucket, Key=location.key)["Body"]
    yield from body.iter_chunks(CHUNK_BYTES)


def line_blocks(chunks: Iterator[bytes], block_bytes: int) -> Iterator[bytes]:
    """Runs of whole lines of at least `block_bytes` (the last one whatever is left), each ending with a line
    break: a block can be parsed on its own, and its lines counted, without reading the rest."""
    pending: list[bytes] = []
    size = 0
    for chunk in chunks:
        pending.append(chunk)
        size += len(chunk)
        if size < block_bytes or b"\n" not in chunk:
            continue
        data = b"".join(pending)
        cut = data.rindex(b"\n") + 1
        yield data[:cut]
        pending, size = [data[cut:]], len(data) - cut
    tail = b"".join(pending)
    if tail:
        yield tail if tail.endswith(b"\n") else tail + b"\n"


def split_lines(block: bytes) -> list[bytes]:
    """A block's lines, each with its line break."""
    lines = block.split(b"\n")
    last = lines.pop()
    return [line + b"\n" for line in lines] + ([last] if last else [])


class Utf8Lines:
    """Decodes lines one by one: a line that is not UTF-8 goes to `on_bad(line_number, error)`, not the reader.

    `line` is the number of the last line read (1-based), which is where the current record ends.
    """

    def __init__(self, lines: Iterable[bytes], on_bad: Callable[[int, str], None], first_line: int = 1):
        self._lines = lines
        self._on_bad = on_bad
        self.line = first_line - 1

    def __iter__(self) -> Iterator[str]:
        on_bad = self._on_bad
        for raw in self._lines:
            self.line += 1
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                on_bad(self.line, f"not UTF-8: byte 0x{raw[err.start]:02x} at column {err.start + 1}")
                continue
            if self.line == 1 and text.startswith("\ufeff"):  # a byte-order mark, as spreadsheet exports write
                text = text[1:]
            yield text
