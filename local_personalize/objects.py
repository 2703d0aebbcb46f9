"""Reading and writing job data: `s3://bucket/key` through boto3 (configurable endpoint) or `file://` paths."""

from __future__ import annotations

import functools
from pathlib import Path
from urllib.parse import urlparse

import boto3

from local_personalize.errors import InvalidInput


@functools.cache
def _s3(endpoint_url: str | None, region: str):
    # Credentials come from boto3's usual chain (env, profile); any value works against an emulator.
    return boto3.client("s3", endpoint_url=endpoint_url, region_name=region)


class ObjectStore:
    """The object locations one job reads and writes."""

    def __init__(self, endpoint_url: str | None, region: str) -> None:
        self.endpoint_url, self.region = endpoint_url, region

    def list(self, url: str) -> list[str]:
        """The objects at `url`: itself, or every object under it when it ends with "/" (§6.1 notes)."""
        scheme, bucket, key = _split(url)
        if not url.endswith("/"):
            return [url]
        if scheme == "file":
            return sorted(f"file://{path}" for path in Path(key).iterdir() if path.is_file())
        pages = _s3(self.endpoint_url, self.region).get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key)
        return sorted(f"s3://{bucket}/{item['Key']}" for page in pages for item in page.get("Contents", [])
                      if not item["Key"].endswith("/"))

    def read(self, url: str) -> bytes:
        scheme, bucket, key = _split(url)
        if scheme == "file":
            return Path(key).read_bytes()
        return _s3(self.endpoint_url, self.region).get_object(Bucket=bucket, Key=key)["Body"].read()

    def write(self, url: str, data: bytes) -> None:
        scheme, bucket, key = _split(url)
        if scheme == "file":
            path = Path(key)
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
