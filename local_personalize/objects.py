"""Reading and writing job data: `s3://bucket/key` through boto3 (configurable endpoint) or `file://` paths.

`file://` is a local extension and a way into the host's file system, so it is confined to the
configured roots (the data directory plus `--file-root`s): a path that resolves, symlinks followed,
outside every root is refused before anything is read or written.
"""

from __future__ import annotations

import functools
from pathlib import Path
from urllib.parse import urlparse

import boto3

from local_personalize.errors import InvalidInput
from local_personalize.settings import Settings


@functools.cache
def _s3(endpoint_url: str | None, region: str):
    # Credentials come from boto3's usual chain (env, profile); any value works against an emulator.
    return boto3.client("s3", endpoint_url=endpoint_url, region_name=region)


class ObjectStore:
    """The object locations one job reads and writes."""

    def __init__(self, endpoint_url: str | None, region: str, file_roots: tuple[Path, ...]) -> None:
        self.endpoint_url, self.region = endpoint_url, region
        self.file_roots = tuple(Path(root).resolve() for root in file_roots)

    @classmethod
    def for_settings(cls, settings: Settings) -> ObjectStore:
        return cls(settings.s3_endpoint_url, settings.region, settings.allowed_file_roots)

    def check(self, url: str) -> None:
        """InvalidInput unless `url` is s3:// or a file:// path inside a configured root."""
        scheme, _bucket, key = _split(url)
        if scheme == "file":
            self._confined(key)

    def _confined(self, key: str) -> Path:
        path = Path(key).resolve()
        if not any(path == root or path.is_relative_to(root) for root in self.file_roots):
            raise InvalidInput(f"Data location file://{key} is outside the directories local_personalize may "
                               f"use (its --data directory and any --file-root)")
        return path

    def list(self, url: str) -> list[str]:
        """The objects at `url`: itself, or every object under it when it ends with "/" (docs/reference/personalize-api.md#operations notes)."""
        scheme, bucket, key = _split(url)
        if not url.endswith("/"):
            return [url]
        if scheme == "file":
            folder = self._confined(key)
            return sorted(f"file://{path}" for path in folder.iterdir() if path.is_file()) if folder.is_dir() else []
        pages = _s3(self.endpoint_url, self.region).get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key)
        return sorted(f"s3://{bucket}/{item['Key']}" for page in pages for item in page.get("Contents", [])
                      if not item["Key"].endswith("/"))

    def read(self, url: str) -> bytes:
        scheme, bucket, key = _split(url)
        if scheme == "file":
            return self._confined(key).read_bytes()
        return _s3(self.endpoint_url, self.region).get_object(Bucket=bucket, Key=key)["Body"].read()

    def write(self, url: str, data: bytes) -> None:
        scheme, bucket, key = _split(url)
        if scheme == "file":
            path = self._confined(key)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            return
        _s3(self.endpoint_url, self.region).put_object(Bucket=bucket, Key=key, Body=data)


def join(folder: str, name: str) -> str:
    return folder + name if folder.endswith("/") else f"{folder}/{name}"


def _split(url: str) -> tuple[str, str, str]:
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return "file", "", parsed.path
    if parsed.scheme == "s3" and parsed.netloc:
        return "s3", parsed.netloc, parsed.path.lstrip("/")
    raise InvalidInput(f"Unsupported data location {url}: use s3://bucket/key or file:///path")
