"""S3 exports: recommendations as JSON Lines or CSV part files under a per-run prefix, written once each."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import time
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

import orjson
from pydantic import Field, model_validator

from connectors.aws import AwsClients
from connectors.destinations.aws_service import ServiceClient
from connectors.destinations.http_delivery import MemberFailures, lane_of, reject_all
from connectors.formats.recommendations import (
    SEGMENT_AUDIENCE,
    USER_RECOMMENDATIONS,
    is_segment_audience,
    segment_audience,
    user_recommendations,
)
from hub.connector import BatchPolicy, Context, ExportDestination, ExportDestinationConfig
from hub.errors import RejectedError, RetryableError
from hub.rows import ExportRow

MiB = 1024 * 1024
# Multipart: every part but the last is 5 MiB..5 GiB, at most 10,000 parts (Amazon S3 User Guide,
# "Amazon S3 multipart upload limits"). A single PutObject takes up to 5 GiB.
MIN_PART_BYTES = 5 * MiB
MAX_PARTS = 10_000
THROTTLED = {"SlowDown", "ThrottlingException", "RequestLimitExceeded"}
TRANSIENT = {"InternalError", "ServiceUnavailable", "RequestTimeout", "ConditionalRequestConflict"}
CONFIGURATION = {"AccessDenied", "NoSuchBucket", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AllAccessDisabled"}


class S3ExportConfig(ExportDestinationConfig):
    """Writes exports to S3 for other tools: `<prefix>/<job>/<run>/part-<digest>.jsonl[.gz]` or `.csv`.

    A part's name is a digest of the exports in it, and it is written with `If-None-Match: *`
    (docs/reference/s3.md), so resending a batch finds its part already there instead of writing a
    second copy. Every row carries its run and user ids. `write_manifest` lists a finished run's parts.
    """

    type: Literal["s3"]
    example: ClassVar[dict[str, Any]] = {"type": "s3", "bucket": "${EXPORT_BUCKET}"}
    # S3 has no batch limit; up to 10,000 exports (64 MiB) per part file keeps files few and each
    # upload's memory bounded. Large parts go up in multipart_part_bytes pieces.
    api_limits: ClassVar[BatchPolicy] = BatchPolicy(
        max_events=10_000, max_bytes=64 * MiB, max_wait_secs=1.0, max_in_flight=4
    )

    bucket: str = Field(..., description="Bucket, e.g. ${EXPORT_BUCKET}.")
    prefix: str = Field("exports", description="Key prefix; parts go under <prefix>/<job>/<run id>/.")
    format: Literal["jsonl", "csv"] = Field(
        "jsonl", description="jsonl: the export records as they are; csv: one row per (user, rank) or (item, user)."
    )
    csv_columns: list[str] = Field(
        default_factory=list, description="csv: item metadata columns after user_id,rank,item_id,score."
    )
    gzip: bool = Field(False, description="Compress each part (.gz).")
    conditional_writes: bool = Field(
        True, description="Write parts with If-None-Match: * so a resend cannot overwrite (docs/reference/s3.md)."
    )
    multipart_threshold_bytes: int = Field(
        16 * MiB, ge=MIN_PART_BYTES, description="Parts larger than this are uploaded in multipart pieces."
    )
    multipart_part_bytes: int = Field(8 * MiB, ge=MIN_PART_BYTES, description="Size of each multipart piece.")
    region: str | None = Field(None, description="Bucket region; default: the hub's aws.region.")
    endpoint_url: str | None = Field(None, description="S3 endpoint override; default: the hub's aws.endpoint_url.")

    @model_validator(mode="after")
    def _parts_fit(self) -> S3ExportConfig:
        largest = self.batch_policy().max_bytes or 0
        if largest > self.multipart_part_bytes * MAX_PARTS:
            raise ValueError("multipart_part_bytes too small for the largest part (10,000 pieces at most)")
        return self


class S3Export(ExportDestination):
    """S3 part-file exporter."""

    Config = S3ExportConfig
    config: S3ExportConfig
    idempotent = True  # a resent batch maps to the same key, which If-None-Match keeps as first written

    def __init__(self, config: S3ExportConfig, context: Context):
        super().__init__(config, context)
        self._s3 = ServiceClient("s3", context.resources.get(AwsClients), region=config.region, endpoint_url=config.endpoint_url)
        self._lanes = config.batch_policy().max_in_flight

    export_rows = frozenset({USER_RECOMMENDATIONS, SEGMENT_AUDIENCE})

    def partition_key(self, row: ExportRow) -> str:
        # A part holds one run's exports; lanes let a run's parts upload concurrently.
        job, run_id = _job_and_run(row)
        return f"{job}/{run_id}/{lane_of(row.message_id, self._lanes)}"

    def size_of(self, row: ExportRow) -> int:
        return len(orjson.dumps(row.record)) + 1 if row.record is not None else 0

    async def start(self) -> None:
        await self._s3.get()

    async def close(self) -> None:
        await self._s3.close()

    async def send(self, batch: Sequence[ExportRow]) -> None:
        failures = MemberFailures(len(batch))
        lines: list[bytes] = []
        csv_rows: list[list[Any]] = []
        positions = []
        for index, row in enumerate(batch):
            try:
                if self.config.format == "jsonl":
                    _check(row)
                    lines.append(orjson.dumps(row.record))
                else:
                    csv_rows.extend(self._rows(row))
                positions.append(index)
            except RejectedError as err:
                failures.reject(index, err)
        if positions:
            job, run_id = _job_and_run(batch[positions[0]])
            body = b"\n".join(lines) + b"\n" if self.config.format == "jsonl" else self._csv(csv_rows)
            key = self.part_key(job, run_id, [batch[i].message_id for i in positions])
            try:
                await self._put(key, gzip.compress(body, mtime=0) if self.config.gzip else body, len(positions))
            except Exception as err:  # noqa: BLE001 - folded onto batch positions, re-raised there
                failures.absorb(err, positions)
        failures.raise_if_any()

    def part_key(self, job: str, run_id: str, message_ids: list[str]) -> str:
        digest = hashlib.sha256("\n".join(message_ids).encode()).hexdigest()[:24]
        extension = self.config.format + (".gz" if self.config.gzip else "")
        return f"{self._run_prefix(job, run_id)}part-{digest}.{extension}"

    def _run_prefix(self, job: str, run_id: str) -> str:
        return f"{self.config.prefix.strip('/')}/{job}/{run_id}/".lstrip("/")

    def _rows(self, row: ExportRow) -> list[list[Any]]:
        if is_segment_audience(row):
            item_id, users = segment_audience(row)
            return [[user, rank, item_id, ""] + [""] * len(self.config.csv_columns)
                    for rank, user in enumerate(users, 1)]
        recs = user_recommendations(row)
        return [[recs.user_id, rank, item["itemId"], item.get("score", "")]
                + [_cell(item.get(column)) for column in self.config.csv_columns]
                for rank, item in enumerate(recs.items, 1)]

    def _csv(self, rows: list[list[Any]]) -> bytes:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["user_id", "rank", "item_id", "score", *self.config.csv_columns])
        writer.writerows(rows)
        return out.getvalue().encode()

    async def _put(self, key: str, body: bytes, count: int) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        s3 = await self._s3.get()
        condition = {"IfNoneMatch": "*"} if self.config.conditional_writes else {}
        metadata = {"rows": str(count)}
        try:
            if len(body) <= self.config.multipart_threshold_bytes:
                await s3.put_object(Bucket=self.config.bucket, Key=key, Body=body, Metadata=metadata, **condition)
            else:
                await self._multipart(s3, key, body, metadata, condition)
        except ClientError as err:
            code = err.response.get("Error", {}).get("Code", "")
            if code == "PreconditionFailed":
                return  # this exact part was written by an earlier attempt: delivered
            raise _classify(code, err, count) from err
        except BotoCoreError as err:  # connection errors and timeouts: the key makes a resend safe
            raise RetryableError(f"S3 {type(err).__name__}: {err}") from err

    async def _multipart(self, s3: Any, key: str, body: bytes, metadata: dict[str, str],
                         condition: dict[str, str]) -> None:
        bucket = self.config.bucket
        upload = await s3.create_multipart_upload(Bucket=bucket, Key=key, Metadata=metadata)
        upload_id = upload["UploadId"]
        try:
            parts = []
            step = self.config.multipart_part_bytes
            for number, offset in enumerate(range(0, len(body), step), 1):
                answer = await s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number,
                                              Body=body[offset:offset + step])
                parts.append({"ETag": answer["ETag"], "PartNumber": number})
            await s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id,
                                               MultipartUpload={"Parts": parts}, **condition)
        except BaseException:
            # An abandoned upload keeps its pieces (and their cost) until aborted.
            try:
                await s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
            except Exception:  # noqa: BLE001 - the original error is the one worth raising
                pass
            raise

    async def write_manifest(self, job: str, run_id: str) -> dict[str, Any]:
        """Write `<run prefix>_manifest.json` (parts, bytes, rows) once a run's exports all settled.

        Consumers poll for the manifest, written last (docs/reference/s3.md). Returns what it wrote.
        """
        s3 = await self._s3.get()
        prefix = self._run_prefix(job, run_id)
        parts = []
        paginator = s3.get_paginator("list_objects_v2")
        async for page in paginator.paginate(Bucket=self.config.bucket, Prefix=f"{prefix}part-"):
            for entry in page.get("Contents", []):
                head = await s3.head_object(Bucket=self.config.bucket, Key=entry["Key"])
                parts.append({"key": entry["Key"], "bytes": entry["Size"],
                              "rows": int(head.get("Metadata", {}).get("rows", 0))})
        manifest = {"job": job, "runId": run_id, "format": self.config.format, "gzip": self.config.gzip,
                    "writtenAt": time.time(), "parts": parts, "rows": sum(p["rows"] for p in parts)}
        await s3.put_object(Bucket=self.config.bucket, Key=f"{prefix}_manifest.json", Body=orjson.dumps(manifest),
                            ContentType="application/json")
        return manifest


def _job_and_run(row: ExportRow) -> tuple[str, str]:
    record = row.record if isinstance(row.record, dict) else {}
    job = str(record.get("job") or row.source.source_id)
    run_id = str(record.get("runId") or "no-run")
    return _key_safe(job), _key_safe(run_id)


def _key_safe(part: str) -> str:
    return part.replace("/", "_") or "_"


def _check(row: ExportRow) -> None:
    if is_segment_audience(row):
        segment_audience(row)
    else:
        user_recommendations(row)


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    return orjson.dumps(value).decode() if isinstance(value, (dict, list)) else value


def _classify(code: str, err: Exception, count: int) -> Exception:
    text = f"S3 {code}: {err}"
    if code in THROTTLED:
        return RetryableError(text, throttled=True)
    if code in TRANSIENT:
        return RetryableError(text)
    if code in CONFIGURATION:
        return reject_all(count, RejectedError("s3_" + code.lower(), text))
    return RejectedError("s3_" + (code.lower() or "error"), text)
