"""One `hub import`: schema from Personalize, a streamed validating pass, readiness, upload, the import job.

Nothing reaches S3 before the whole file was read, every row checked and the readiness report passed:
a refused or failed import leaves the dataset as it was, and says so.
"""

from __future__ import annotations

import csv
import ctypes
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.csv as pa_csv
from botocore.exceptions import ClientError

from connectors.destinations.personalize.mapping import Mapper
from connectors.destinations.personalize.records import DATASET_ARN_PATTERN
from connectors.destinations.personalize.schema import INTERACTIONS, ITEMS, USERS, DatasetSchema, SchemaError, parse_schema
from connectors.destinations.personalize.validation import RecordRules
from hub.errors import HubError, RejectedError
from personalize_hub.imports import rows as input_rows
from personalize_hub.imports.columnar import BATCH_ROWS as PARQUET_BATCH_ROWS
from personalize_hub.imports.columnar import BLOCK_BYTES, Chunk, ColumnarRows, result_chunks
from personalize_hub.imports.source import (SourceError, Utf8Lines, format_of, line_blocks, location_of, raw_chunks,
                                            size_or_fail, split_lines)
from personalize_hub.imports.tally import ImportReadiness, Tally
from workers.notifications import notify
from workers.objects import Location, join
from workers.personalize import error_code, retrying

IMPORTED, FAILED, REFUSED = 0, 1, 3
# Import jobs end ACTIVE or CREATE FAILED (docs/reference/personalize-api.md#statuses).
ACTIVE, CREATE_FAILED = "ACTIVE", "CREATE FAILED"
MULTIPART_BYTES = 16 * 1024 * 1024  # S3 parts: above this the upload is multipart, in parts of this size
_DATASET_RESOURCE = ":dataset/"


class ImportFailed(HubError):
    """The import cannot go on; the message is the reason the CLI prints."""


@dataclass(frozen=True)
class ImportRequest:
    dataset_arn: str
    source: str
    format: str | None = None
    mode: str = "FULL"
    dry_run: bool = False
    force: bool = False


@dataclass
class ImportResult:
    """The outcome `hub import` prints: exit code, readiness, where things went, the job."""

    exit_code: int
    readiness: ImportReadiness | None = None
    problems: list[str] | None = None
    rejects_path: Path | None = None
    data_location: str | None = None
    job_arn: str | None = None
    reason: str | None = None


@dataclass
class Progress:
    """Callbacks the CLI draws progress with; the defaults draw nothing."""

    reading: Callable[[int, int], None] = lambda done, total: None  # bytes read, bytes in all
    waiting: Callable[[str, float], None] = lambda status, secs: None  # import job status, seconds waited


class Importer:
    """Runs one import request against a hub config (aws, workers, mapping, imports sections)."""

    def __init__(self, config: Any, request: ImportRequest, progress: Progress | None = None):
        self.config = config
        self.request = request
        self.progress = progress or Progress()
        from connectors.aws import AwsClients

        aws = AwsClients(config.aws)
        self.personalize = aws.sync_client("personalize")
        self.s3 = aws.sync_client("s3")
        self.policy = config.retry.policy()
        self.folder = Path(config.imports.folder)

    def run(self) -> ImportResult:
        run_id = job_name(self.request.dataset_arn.rsplit("/", 1)[-1])
        try:
            result = self._run()
        except (ImportFailed, SourceError) as err:
            result = ImportResult(FAILED, reason=str(err))
        if not self.request.dry_run:
            readiness = result.readiness
            notify(self.config.notifications, "import.finished" if result.exit_code == IMPORTED else "import.failed",
                   "import", result.job_arn.rsplit("/", 1)[-1] if result.job_arn else run_id,
                   dataset_arn=self.request.dataset_arn, input_uri=self.request.source, mode=self.request.mode,
                   rows=readiness.rows if readiness else 0, rejected=readiness.rejected if readiness else 0,
                   import_job_arn=result.job_arn, reason=result.reason)
        return result

    def _run(self) -> ImportResult:
        request = self.request
        schema = self.dataset_schema()
        location = location_of(request.source)
        fmt = format_of(location, request.format)
        size = size_or_fail(location, self.s3)
        name = job_name(schema.dataset_type)
        self.folder.mkdir(parents=True, exist_ok=True)
        clean_path, rejects_path = self.folder / f"{name}.csv", self.folder / f"{name}.rejects.jsonl"
        readiness = self.prepare(schema, location, fmt, size, clean_path, rejects_path)
        problems = readiness.problems()
        result = ImportResult(IMPORTED, readiness, problems, rejects_path if readiness.rejected else None)
        if request.dry_run or (problems and not request.force):
            clean_path.unlink(missing_ok=True)  # nothing will read it: a 5M-row file is not left behind
            if request.dry_run:
                result.exit_code = REFUSED if problems or readiness.rejected else IMPORTED
            else:
                result.exit_code, result.reason = REFUSED, "refused by the readiness check (--force imports anyway)"
            return result
        result.data_location = self.upload(clean_path, name)
        result.job_arn = self.create_job(name, result.data_location)
        status, failure = self.wait(result.job_arn)
        if status != ACTIVE:
            result.exit_code = FAILED
            result.reason = (f"import job {status}: {failure or 'no reason given'}; nothing was imported "
                             f"(the clean file stays at {result.data_location})")
        clean_path.unlink(missing_ok=True)
        return result

    def dataset_schema(self) -> DatasetSchema:
        """DescribeDataset → DescribeSchema; ImportFailed for an ARN that is not an importable dataset."""
        arn = self.request.dataset_arn
        if not DATASET_ARN_PATTERN.fullmatch(arn) or _DATASET_RESOURCE not in arn:
            kind = arn.split(":", 5)[5].split("/", 1)[0] if arn.count(":") >= 5 else "not an ARN"
            raise ImportFailed(f"--dataset-arn {arn!r} is not a dataset ARN (arn:aws:personalize:REGION:ACCOUNT:"
                               f"dataset/GROUP/TYPE); it names a {kind}")
        try:
            dataset = retrying(self.personalize.describe_dataset, datasetArn=arn, policy=self.policy)["dataset"]
            dataset_type = str(dataset["datasetType"]).upper()
            if dataset_type not in (INTERACTIONS, ITEMS, USERS):
                raise ImportFailed(f"dataset {arn} is of type {dataset_type}; hub import fills INTERACTIONS, "
                                   "ITEMS or USERS datasets")
            document = retrying(self.personalize.describe_schema, schemaArn=dataset["schemaArn"],
                                policy=self.policy)["schema"]["schema"]
        except ClientError as err:
            raise ImportFailed(f"dataset {arn}: {error_code(err)}: {err.response['Error'].get('Message', '')}") from None
        try:
            return parse_schema(document, dataset_type)
        except SchemaError as err:
            raise ImportFailed(f"the schema of dataset {arn} cannot be used: {err}") from None

    def prepare(self, schema: DatasetSchema, location: Location, fmt: str, size: int, clean_path: Path,
                rejects_path: Path) -> ImportReadiness:
        """The one pass: read, validate, write clean rows and rejects, tally. Raises ImportFailed on a header
        that does not fit (before anything is written)."""
        rejected = 0
        # The system allocator returns freed blocks; mimalloc, pyarrow's default, keeps ~20 MB more for this pass.
        pool = pa.default_memory_pool()
        pa.set_memory_pool(pa.system_memory_pool())
        _fixed_mmap_threshold()
        try:
            with open(rejects_path, "wb") as rejects:

                def reject(line: int, err: RejectedError | str, raw: Any = None) -> None:
                    nonlocal rejected
                    rejected += 1
                    reason, message = ((err.reason, err.message) if isinstance(err, RejectedError)
                                       else ("invalid_utf8", err))
                    rejects.write(orjson.dumps({"line": line, "reason": reason, "message": message, "raw": raw},
                                               default=str) + b"\n")

                source = CountedChunks(raw_chunks(location, self.s3) if fmt != "parquet" else iter(()))
                columns, chunks = self._chunks(schema, fmt, location, source, clean_path)
                tally = Tally(self.folder / f"{clean_path.stem}.tally", schema.dataset_type, self.request.mode)
                try:
                    with open(clean_path, "wb") as out:
                        self._write(columns, chunks, out, tally, reject, source, size)
                    readiness = tally.readiness(rejected)
                finally:
                    tally.close()
        except BaseException:
            clean_path.unlink(missing_ok=True)  # half a file is nobody's data
            raise
        finally:
            pa.set_memory_pool(pool)
            if not rejected:
                rejects_path.unlink(missing_ok=True)
            clean_path.with_suffix(".parquet").unlink(missing_ok=True)
        return readiness

    def _chunks(self, schema: DatasetSchema, fmt: str, location: Location, source: Iterator[bytes],
                clean_path: Path) -> tuple[tuple[str, ...], Iterator[Chunk]]:
        """The clean CSV's columns, and the pass over the input in chunks (clean rows and rejects)."""
        imports = self.config.imports
        validation = RecordRules({schema.dataset_type: schema})

        def tabular(header: list[str]) -> input_rows.TabularRows:
            positions = input_rows.plan_columns(header, schema, imports.columns, imports.ignore_columns)
            return input_rows.TabularRows(schema, validation, positions)

        try:
            if fmt == "parquet":
                parquet = self._parquet(location, clean_path.with_suffix(".parquet"))
                reader = tabular(parquet.schema_arrow.names)
                return reader.writer.columns, _parquet_errors(
                    ColumnarRows(reader).parquet_chunks(parquet.iter_batches(PARQUET_BATCH_ROWS)))
            blocks = line_blocks(source, BLOCK_BYTES)
            pending: list[Any] = []
            if fmt == "csv":
                first = next(blocks, b"")
                if not first:
                    raise SourceError("the input is empty: a CSV needs a header row naming its columns")
                header = _csv_header(first[:first.index(b"\n") + 1])
                if header is not None:  # the usual case: the rows after it in columns
                    reader = tabular(header)
                    rest = first[first.index(b"\n") + 1:]
                    return reader.writer.columns, ColumnarRows(reader).csv_chunks(
                        chain([rest] if rest else [], blocks), len(header), 2)
                blocks = chain([first], blocks)  # a header that is not one UTF-8 line: the row path from line 1
            lines = Utf8Lines((line for block in blocks for line in split_lines(block)),
                              lambda number, why: pending.append((number, why, None)))
            if fmt == "csv":
                header, cells = input_rows.csv_rows(lines)
                reader = tabular(header)
                return reader.writer.columns, result_chunks(reader.read(cells), reader.writer.columns, pending, lines)
            objects = input_rows.json_objects(lines, lambda number, err, raw: pending.append((number, err, raw)))
            first_object = next(objects, None)
            if first_object is None:
                raise SourceError("the input has no JSON lines")
            dialect = input_rows.export_dialect(first_object[1])
            chained = _chain(first_object, objects)
            if dialect is not None:
                mapping = Mapper(self.config.mapping, {schema.dataset_type: schema})
                exports = input_rows.ExportRows(dialect, schema, mapping, validation)
                return exports.writer.columns, result_chunks(exports.read(chained), exports.writer.columns, pending)
            names = list(first_object[1]) if isinstance(first_object[1], dict) else []
            reader = tabular(names)
            flat = ((line, input_rows.flat_cells(value, names)) for line, value in chained)
            return reader.writer.columns, result_chunks(reader.read(flat), reader.writer.columns, pending)
        except input_rows.ColumnsMismatch as err:
            raise ImportFailed(str(err)) from None

    def _parquet(self, location: Location, local: Path) -> Any:
        """The Parquet file opened (an s3:// one downloaded to `local` first: Parquet is read from its end)."""
        import pyarrow.parquet as pq

        path = location.key
        if location.scheme == "s3":
            from boto3.s3.transfer import S3Transfer

            try:
                S3Transfer(self.s3).download_file(location.bucket, location.key, str(local))
            except Exception as err:  # s3transfer wraps ClientError
                raise ImportFailed(f"downloading {location} failed: {err}") from None
            path = str(local)
        try:
            return pq.ParquetFile(path)
        except (pa.ArrowException, OSError) as err:
            raise ImportFailed(f"{location} is not a Parquet file: {err}") from None

    def _write(self, columns: tuple[str, ...], chunks: Iterator[Chunk], out: Any, tally: Tally, reject: Any,
               source: CountedChunks, size: int) -> None:
        out.write((",".join(columns) + "\n").encode())  # schema field names: nothing to quote
        writer = pa_csv.CSVWriter(out, pa.schema([(name, pa.string()) for name in columns]),
                                  write_options=pa_csv.WriteOptions(include_header=False))
        for chunk in chunks:
            for line, err, raw in chunk.rejects:
                reject(line, err, raw)
            if chunk.clean.num_rows:
                writer.write_table(chunk.clean)
                tally.add(chunk.clean)
            self.progress.reading(source.bytes_read, size)
        writer.close()
        self.progress.reading(size, size)

    def upload(self, path: Path, name: str) -> str:
        """The clean CSV under workers.work_uri (multipart to S3 above MULTIPART_BYTES); its URI."""
        work_uri = self.config.workers.work_uri
        if not work_uri:
            raise ImportFailed("workers.work_uri is not set: the clean CSV needs an s3:// folder Personalize reads")
        uri = join(work_uri, "imports", name, path.name)
        target = Location.parse(uri)
        if target.scheme == "file":
            Path(target.key).parent.mkdir(parents=True, exist_ok=True)
            path.replace(target.key)
            return uri
        from boto3.s3.transfer import S3Transfer, TransferConfig

        transfer = S3Transfer(self.s3, TransferConfig(multipart_threshold=MULTIPART_BYTES,
                                                      multipart_chunksize=MULTIPART_BYTES, max_concurrency=4))
        try:
            transfer.upload_file(str(path), target.bucket, target.key)
        except Exception as err:  # s3transfer wraps ClientError in S3UploadFailedError
            raise ImportFailed(f"uploading the clean CSV to {uri} failed: {err}") from None
        return uri

    def create_job(self, name: str, data_location: str) -> str:
        try:
            return retrying(self.personalize.create_dataset_import_job, policy=self.policy, jobName=name,
                            datasetArn=self.request.dataset_arn, dataSource={"dataLocation": data_location},
                            roleArn=self.config.workers.role_arn, importMode=self.request.mode)["datasetImportJobArn"]
        except ClientError as err:
            raise ImportFailed(f"CreateDatasetImportJob: {error_code(err)}: "
                               f"{err.response['Error'].get('Message', '')}; nothing was imported") from None

    def wait(self, job_arn: str) -> tuple[str, str | None]:
        """Poll the import job until it is final; (status, failureReason)."""
        workers = self.config.workers
        started = time.monotonic()
        while True:
            job = retrying(self.personalize.describe_dataset_import_job, datasetImportJobArn=job_arn,
                           policy=self.policy)["datasetImportJob"]
            status, waited = job.get("status", ""), time.monotonic() - started
            self.progress.waiting(status, waited)
            if status in (ACTIVE, CREATE_FAILED):
                return status, job.get("failureReason")
            if waited > workers.max_wait_secs:
                return status, f"still {status} after {workers.max_wait_secs:.0f}s (the job goes on in Personalize)"
            time.sleep(min(workers.poll_interval_secs, 5.0))


def job_name(dataset_type: str) -> str:
    """A Personalize job name (1..63 of [a-zA-Z0-9-_], docs/reference/personalize-api.md) unique per run."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    return f"hub-import-{dataset_type.lower()}-{stamp}-{uuid.uuid4().hex[:6]}"


def _fixed_mmap_threshold() -> None:
    """glibc raises its mmap threshold each time a large block is freed, so the pass's ~1 MB arrays end up in
    the heap, which fragments and grows ~10 MB per 5M rows; a fixed threshold keeps them mapped and returned
    on free. Process-wide and harmless elsewhere; skipped where the C library is not glibc."""
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return
    mallopt(_M_MMAP_THRESHOLD, 256 * 1024)
    mallopt(_M_TRIM_THRESHOLD, 1024 * 1024)  # and the heap's free top goes back past 1 MB, not 2× the threshold


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's malloc.h


class CountedChunks:
    """The input's byte chunks, counting what was read (the progress bar's position)."""

    def __init__(self, chunks: Iterator[bytes]):
        self._chunks = chunks
        self.bytes_read = 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._chunks:
            self.bytes_read += len(chunk)
            yield chunk


def _csv_header(line: bytes) -> list[str] | None:
    """The header's names, or None when the first line is not UTF-8 or ends inside a quoted name (the row path
    then reads the file from its first line, as it reports such lines)."""
    if line.count(b'"') % 2:
        return None
    try:
        text = line.decode("utf-8").removeprefix("\ufeff")  # a byte-order mark, as spreadsheet exports write
    except UnicodeDecodeError:
        return None
    return next(csv.reader([text]), [])


def _parquet_errors(chunks: Iterator[Chunk]) -> Iterator[Chunk]:
    try:
        yield from chunks
    except pa.ArrowException as err:  # e.g. a string column that is not UTF-8: the file cannot be read on
        raise ImportFailed(f"the Parquet file cannot be read any further: {err}") from None


def _chain(first: Any, rest: Iterator[Any]) -> Iterator[Any]:
    yield first
    yield from rest
