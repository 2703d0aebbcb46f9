"""S3 export destination: part keys, JSONL/CSV bodies, conditional writes, multipart, error classes (fake S3)."""

from __future__ import annotations

import csv
import gzip
import io

import orjson
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from connectors.aws import AwsClients
from connectors.destinations.s3 import S3Export, S3ExportConfig
from hub.connector import Context, Outcome
from hub.errors import PartialFailure, RejectedError, RetryableError
from tests.fixtures.exports import audience_event, deliver, export_event


def client_error(code: str, status: int = 400) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}},
                       "PutObject")


class FakeS3:
    """put_object / multipart with If-None-Match as S3 enforces it; `fail` is raised on the next put."""

    def __init__(self):
        self.objects: dict[str, bytes] = {}
        self.metadata: dict[str, dict[str, str]] = {}
        self.uploads: dict[str, list[bytes]] = {}
        self.puts = 0
        self.fail: Exception | None = None

    def _store(self, key, body, metadata, condition):
        if condition == "*" and key in self.objects:
            raise client_error("PreconditionFailed", 412)
        self.objects[key], self.metadata[key] = body, metadata

    async def put_object(self, Bucket, Key, Body, Metadata=None, IfNoneMatch=None, **_):  # noqa: N803
        self.puts += 1
        if self.fail is not None:
            error, self.fail = self.fail, None
            raise error
        self._store(Key, Body, Metadata or {}, IfNoneMatch)

    async def create_multipart_upload(self, Bucket, Key, Metadata):  # noqa: N803
        self.uploads[Key] = []
        self.metadata[f"pending:{Key}"] = Metadata
        return {"UploadId": f"up-{Key}"}

    async def upload_part(self, Bucket, Key, UploadId, PartNumber, Body):  # noqa: N803
        assert PartNumber == len(self.uploads[Key]) + 1
        self.uploads[Key].append(Body)
        return {"ETag": f"etag-{PartNumber}"}

    async def complete_multipart_upload(self, Bucket, Key, UploadId, MultipartUpload, IfNoneMatch=None):  # noqa: N803
        assert [p["PartNumber"] for p in MultipartUpload["Parts"]] == list(range(1, len(self.uploads[Key]) + 1))
        self._store(Key, b"".join(self.uploads.pop(Key)), self.metadata.pop(f"pending:{Key}"), IfNoneMatch)


class FakeAws:
    def __init__(self, s3):
        self.s3 = s3

    async def client(self, service):
        return self.s3


def exporter(s3: FakeS3, **config) -> S3Export:
    return S3Export(S3ExportConfig(type="s3", bucket="exports", **config), Context(resources={AwsClients: FakeAws(s3)}))


async def test_jsonl_parts_hold_the_records_under_the_run_prefix():
    s3 = FakeS3()
    events = [export_event(f"u{n}") for n in range(30)]
    settlements = await deliver(exporter(s3, prefix="recs/"), events)
    assert {s.outcome for s in settlements} == {Outcome.DELIVERED}
    assert all(key.startswith("recs/weekly_email/weekly_email-20260105T060000/part-") and key.endswith(".jsonl")
               for key in s3.objects)
    lines = [orjson.loads(line) for body in s3.objects.values() for line in body.splitlines()]
    assert sorted(r["userId"] for r in lines) == sorted(f"u{n}" for n in range(30))
    assert sum(int(m["rows"]) for m in s3.metadata.values()) == 30


async def test_a_resent_batch_finds_its_part_and_writes_nothing_new():
    s3 = FakeS3()
    destination = exporter(s3)
    batch = [export_event("u1"), export_event("u2")]
    await destination.send(batch)
    snapshot = dict(s3.objects)
    await destination.send(batch)  # same exports, same key: If-None-Match refuses, counted as delivered
    assert s3.objects == snapshot and s3.puts == 2
    await destination.send([export_event("u3")])
    assert len(s3.objects) == 2


async def test_csv_rows_per_rank_with_metadata_columns_and_gzip():
    s3 = FakeS3()
    await exporter(s3, format="csv", csv_columns=["name", "price"], gzip=True).send(
        [export_event("u1", ("i2", "i1")), audience_event("i3", ["u7", "u8"])])
    ((key, body),) = s3.objects.items()
    assert key.endswith(".csv.gz")
    rows = list(csv.reader(io.StringIO(gzip.decompress(body).decode())))
    assert rows[0] == ["user_id", "rank", "item_id", "score", "name", "price"]
    assert rows[1:3] == [["u1", "1", "i2", "0.9", "Wool Socks <3-pack>", "12.5"],
                         ["u1", "2", "i1", "0.8", "Trail Runner 2", "89.9"]]
    assert rows[3:] == [["u7", "1", "i3", "", "", ""], ["u8", "2", "i3", "", "", ""]]


async def test_large_parts_go_up_in_multipart_pieces():
    s3 = FakeS3()
    mib = 1024 * 1024
    destination = exporter(s3, multipart_threshold_bytes=5 * mib, multipart_part_bytes=5 * mib)
    events = [export_event(f"u{n}", [f"item-{k}-{'z' * 200}" for k in range(40)]) for n in range(1200)]
    await destination.send(events)  # ≈ 11 MB: three pieces
    ((key, body),) = s3.objects.items()
    assert len(body) > 10 * mib and body.count(b"\n") == 1200
    assert s3.metadata[key] == {"rows": "1200"}


async def test_bad_records_fail_alone_and_errors_are_classified():
    s3 = FakeS3()
    with pytest.raises(PartialFailure) as failure:
        await exporter(s3).send([export_event("u1", record={"userId": "u1", "items": "nope"}), export_event("u2")])
    assert failure.value.rejected[0].reason == "invalid_export_record" and len(s3.objects) == 1
    for error, expected in [(client_error("SlowDown", 503), RetryableError),
                            (client_error("InternalError", 500), RetryableError),
                            (EndpointConnectionError(endpoint_url="http://s3"), RetryableError),
                            (client_error("InvalidRequest"), RejectedError)]:
        s3.fail = error
        with pytest.raises(expected):
            await exporter(s3).send([export_event("u9")])
    s3.fail = client_error("NoSuchBucket", 404)
    with pytest.raises(PartialFailure) as missing:
        await exporter(s3).send([export_event("u9"), export_event("u10")])
    assert {e.reason for e in missing.value.rejected.values()} == {"s3_nosuchbucket"}  # all at once, no bisect
