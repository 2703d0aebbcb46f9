"""Avro payloads: the Confluent wire format (magic 0, 4-byte schema id, schemaless Avro) and local .avsc."""

from __future__ import annotations

import io
import json
import struct
from pathlib import Path
from typing import Any

import fastavro
from fastavro.types import Schema

from hub.errors import RejectedError

# Confluent wire format (docs.confluent.io, "Schema Registry: Wire format"): byte 0 is the magic byte 0,
# bytes 1-4 the schema id as a big-endian 32-bit integer, then the schemaless Avro encoding.
MAGIC_BYTE = 0
_HEADER = struct.Struct(">bI")
HEADER_BYTES = _HEADER.size


def parse_schema(text: str | dict[str, Any]) -> Schema:
    """A fastavro schema from .avsc text or its parsed JSON; RejectedError when it is not valid Avro."""
    try:
        schema = json.loads(text) if isinstance(text, str) else text
        return fastavro.parse_schema(schema)
    except (ValueError, TypeError, KeyError, fastavro.schema.SchemaParseException) as err:
        raise RejectedError("invalid_schema", f"not a valid Avro schema: {err}") from None


def load_schema(path: str | Path) -> Schema:
    """Read and parse a local .avsc file (at start-up: this is the one function here doing I/O)."""
    return parse_schema(Path(path).read_text())


def split_confluent(data: bytes) -> tuple[int, memoryview]:
    """(schema id, Avro body) of a Confluent-framed message; RejectedError when it is not framed."""
    if len(data) < HEADER_BYTES:
        raise RejectedError("invalid_avro", f"{len(data)} bytes: too short for the Confluent wire format header")
    magic, schema_id = _HEADER.unpack_from(data)
    if magic != MAGIC_BYTE:
        raise RejectedError("invalid_avro", f"magic byte {magic}: not the Confluent wire format (expected 0)")
    return schema_id, memoryview(data)[HEADER_BYTES:]


def frame_confluent(schema_id: int, body: bytes) -> bytes:
    """Prefix an Avro body with the Confluent wire format header."""
    return _HEADER.pack(MAGIC_BYTE, schema_id) + body


def encode(schema: Schema, record: dict[str, Any]) -> bytes:
    """The schemaless Avro encoding of one record (ValueError when it does not fit the schema)."""
    out = io.BytesIO()
    fastavro.schemaless_writer(out, schema, record)
    return out.getvalue()


def encode_confluent(schema_id: int, schema: Schema, record: dict[str, Any]) -> bytes:
    return frame_confluent(schema_id, encode(schema, record))


def decode(body: bytes | memoryview, writer: Schema, reader: Schema | None = None) -> Any:
    """Decode a schemaless Avro body written with `writer`, resolved to `reader` when given.

    Raises RejectedError("invalid_avro") for bytes that do not decode, or leave bytes over (a wrong schema
    often "decodes" a prefix: the leftover is how that is caught).
    """
    stream = io.BytesIO(body)
    try:
        record = fastavro.schemaless_reader(stream, writer, reader)
    except (EOFError, ValueError, TypeError, IndexError, KeyError, UnicodeDecodeError, OverflowError) as err:
        raise RejectedError("invalid_avro", f"does not decode with the schema: {err!r}") from None
    except fastavro.read.SchemaResolutionError as err:
        raise RejectedError("schema_mismatch", f"writer and reader schemas do not resolve: {err}") from None
    leftover = len(body) - stream.tell()
    if leftover:
        raise RejectedError("invalid_avro", f"{leftover} bytes left after the record: wrong schema or corrupt data")
    return record
