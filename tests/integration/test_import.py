"""`hub import` as a user runs it: the CLI, real boto3 to local_personalize over HTTP, files on moto S3.

Each test creates its own dataset group, so the datasets' import jobs do not meet. What the import job
loaded is read back from what the hub uploaded and from DescribeDatasetImportJob.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys

import pytest

from tests.integration.workers_support import REPO, ROLE, s3_client, wait_active, write_config
from tests.fixtures.local_personalize import personalize_clients

pytestmark = pytest.mark.integration

SCHEMA = {"type": "record", "name": "Interactions", "namespace": "com.amazonaws.personalize.schema", "version": "1.0",
          "fields": [{"name": "USER_ID", "type": "string"}, {"name": "ITEM_ID", "type": "string"},
                     {"name": "TIMESTAMP", "type": "long"}, {"name": "EVENT_TYPE", "type": "string"},
                     {"name": "EVENT_VALUE", "type": ["null", "float"]}]}
START = 1_700_000_000


@pytest.fixture
def setup(local_personalize_url, aws_endpoint_url, aws_region, unique_name, tmp_path):
    """A fresh dataset group with an Interactions dataset, a bucket, and a hub config pointing at both."""
    control, _, _ = personalize_clients(local_personalize_url)
    name = unique_name("imp")
    group = control.create_dataset_group(name=name)["datasetGroupArn"]
    wait_active(lambda: control.describe_dataset_group(datasetGroupArn=group), "datasetGroup")
    schema = control.create_schema(name=name, schema=json.dumps(SCHEMA))["schemaArn"]
    dataset = control.create_dataset(name=name, schemaArn=schema, datasetGroupArn=group,
                                     datasetType="Interactions")["datasetArn"]
    wait_active(lambda: control.describe_dataset(datasetArn=dataset), "dataset")
    s3 = s3_client(aws_endpoint_url, aws_region)
    s3.create_bucket(Bucket=name)
    config = write_config(tmp_path / "hub.yaml", {
        "aws": {"endpoint_url": aws_endpoint_url, "personalize_endpoint_url": local_personalize_url},
        "retry": {"base_delay_secs": 0.05, "max_delay_secs": 0.5, "max_elapsed_secs": 10.0},
        "workers": {"work_uri": f"s3://{name}/work", "role_arn": ROLE, "poll_interval_secs": 0.2},
        "imports": {"folder": str(tmp_path / "imports")},
    })
    return {"control": control, "s3": s3, "bucket": name, "group": group, "dataset": dataset, "config": config,
            "folder": tmp_path / "imports"}


def interactions_csv(users: int, per_user: int, header: str = "user_id,Item_Id,timestamp,EVENT_TYPE,event_value") -> str:
    lines = [header]
    for u in range(users):
        for n in range(per_user):
            lines.append(f"u{u},i{(u * 7 + n) % 90},{START + u * 100 + n},{'view' if n % 3 else 'purchase'},{n}.5")
    return "\n".join(lines) + "\n"


def hub_import(setup: dict, source: str, *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "personalize_hub.cli", "import", "--config", str(setup["config"]),
               "--dataset-arn", setup["dataset"], "--source", source, *args]
    return subprocess.run(command, cwd=REPO, env={**os.environ, "COLUMNS": "200"}, capture_output=True, text=True,
                          timeout=300)


def uploaded(setup: dict) -> list[str]:
    listing = setup["s3"].list_objects_v2(Bucket=setup["bucket"], Prefix="work/imports/")
    return [entry["Key"] for entry in listing.get("Contents", [])]


def test_bad_rows_are_rejected_with_line_and_reason_and_the_good_ones_imported(setup):
    good = interactions_csv(60, 25)  # 1500 rows, 60 users with 25 interactions each
    bad = ["u1,,1700000001,view,1",  # no item
           "u2,i1,yesterday,view,1",  # not a timestamp
           "null,i1,1700000001,view,1",  # a placeholder user id
           "u3,i2,1700000001,view,lots",  # not a number
           "u4,i2"]  # too few values
    body = good.encode() + "\n".join(bad).encode() + b"\nu5,caf\xe9,1700000001,view,1\n"  # Latin-1, not UTF-8
    setup["s3"].put_object(Bucket=setup["bucket"], Key="in/history.csv", Body=body)

    result = hub_import(setup, f"s3://{setup['bucket']}/in/history.csv")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "imported 1500 rows" in result.stdout
    rejects_file = next(setup["folder"].glob("*.rejects.jsonl"))
    rejects = [json.loads(line) for line in rejects_file.read_text().splitlines()]
    first_bad = 1502  # header + 1500 good rows
    assert [(r["line"], r["reason"]) for r in rejects] == [
        (first_bad, "missing_item_id"), (first_bad + 1, "invalid_timestamp"), (first_bad + 2, "invalid_user_id"),
        (first_bad + 3, "invalid_event_value"), (first_bad + 4, "wrong_column_count"),
        (first_bad + 5, "invalid_utf8")]
    job_arn = result.stdout.split("import job: ")[1].split()[0]
    job = setup["control"].describe_dataset_import_job(datasetImportJobArn=job_arn)["datasetImportJob"]
    assert job["status"] == "ACTIVE" and job["importMode"] == "FULL"
    data = setup["s3"].get_object(Bucket=setup["bucket"], Key=uploaded(setup)[0])["Body"].read().decode()
    rows = list(csv.reader(io.StringIO(data)))
    assert rows[0] == ["USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE", "EVENT_VALUE"]
    assert len(rows) == 1501 and rows[1] == ["u0", "i0", str(START), "purchase", "0.5"]
    assert job["dataSource"]["dataLocation"].endswith(uploaded(setup)[0])


def test_columns_that_do_not_fit_fail_before_any_upload_naming_expected_and_found(setup):
    setup["s3"].put_object(Bucket=setup["bucket"], Key="in/odd.csv",
                           Body=interactions_csv(60, 25, header="customer,sku,when,EVENT_TYPE,event_value"))

    result = hub_import(setup, f"s3://{setup['bucket']}/in/odd.csv")

    assert result.returncode == 1
    assert "expected USER_ID, ITEM_ID, TIMESTAMP, EVENT_TYPE, EVENT_VALUE?" in result.stderr
    assert "found customer, sku, when, EVENT_TYPE, event_value" in result.stderr
    assert "missing USER_ID, ITEM_ID, TIMESTAMP" in result.stderr
    assert uploaded(setup) == []
    assert list(setup["folder"].iterdir()) == []  # no empty rejects file, no half-written CSV


def test_config_columns_map_the_same_file(setup, tmp_path):
    config = json.loads(json.dumps(__import__("yaml").safe_load(setup["config"].read_text())))
    config["imports"]["columns"] = {"USER_ID": "customer", "ITEM_ID": "sku", "TIMESTAMP": "when"}
    write_config(setup["config"], config)
    path = tmp_path / "odd.csv"
    path.write_text(interactions_csv(60, 25, header="customer,sku,when,EVENT_TYPE,event_value"))

    result = hub_import(setup, str(path), "--dry-run")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "dry run: 1500 rows would be imported" in result.stdout
    assert uploaded(setup) == []


def test_readiness_refuses_thin_data_and_force_reports_personalizes_own_failure(setup, tmp_path):
    path = tmp_path / "thin.csv"
    path.write_text(interactions_csv(40, 5))  # 200 rows: below the 1000 an import job needs

    refused = hub_import(setup, f"file://{path}")
    forced = hub_import(setup, f"file://{path}", "--force")

    assert refused.returncode == 3
    assert "200 valid interactions; an import needs at least 1000" in refused.stdout
    assert "users with >= 2 interactions" in refused.stdout and "40" in refused.stdout
    assert forced.returncode == 1
    assert "import job CREATE FAILED" in forced.stderr and "1000" in forced.stderr
    assert "nothing was imported" in forced.stderr


def test_wrong_arn_and_missing_object_fail_with_a_reason(setup):
    setup["s3"].put_object(Bucket=setup["bucket"], Key="in/ok.csv", Body=interactions_csv(60, 25))
    wrong = dict(setup, dataset=setup["group"])

    not_a_dataset = hub_import(wrong, f"s3://{setup['bucket']}/in/ok.csv")
    missing = hub_import(setup, f"s3://{setup['bucket']}/in/nothing-here.csv")
    unknown = hub_import(dict(setup, dataset=setup["dataset"].replace("/INTERACTIONS", "/ITEMS")),
                         f"s3://{setup['bucket']}/in/ok.csv")

    assert not_a_dataset.returncode == 1 and "is not a dataset ARN" in not_a_dataset.stderr
    assert "dataset-group" in not_a_dataset.stderr
    assert missing.returncode == 1 and "nothing-here.csv: no such object" in missing.stderr
    assert unknown.returncode == 1 and "ResourceNotFoundException" in unknown.stderr
    assert uploaded(setup) == []


def test_a_segment_export_is_mapped_like_live_traffic(setup, tmp_path):
    messages = []
    for n in range(1200):
        messages.append({"type": "track", "messageId": f"m{n}", "userId": f"u{n % 50}", "event": "Product Viewed",
                         "timestamp": f"2024-01-01T00:{n // 60 % 60:02d}:{n % 60:02d}Z",
                         "properties": {"product_id": f"p{n % 40}", "price": 10}})
    messages.append({"type": "track", "messageId": "anon", "anonymousId": "a1", "event": "Product Viewed",
                     "timestamp": "2024-01-01T00:00:00Z", "properties": {"product_id": "p1"}})
    messages.append({"type": "track", "messageId": "skip", "userId": "u1", "event": "Newsletter Opened",
                     "timestamp": "2024-01-01T00:00:00Z"})
    path = tmp_path / "segment.jsonl"
    path.write_text("\n".join(json.dumps(m) for m in messages) + "\n")

    result = hub_import(setup, str(path))

    assert result.returncode == 0, result.stdout + result.stderr
    assert "imported 1200 rows" in result.stdout
    rejects = [json.loads(line) for line in next(setup["folder"].glob("*.rejects.jsonl")).read_text().splitlines()]
    assert [(r["line"], r["reason"]) for r in rejects] == [(1201, "missing_user_id")]
    data = setup["s3"].get_object(Bucket=setup["bucket"], Key=uploaded(setup)[0])["Body"].read().decode()
    rows = list(csv.reader(io.StringIO(data)))
    assert rows[1] == ["u0", "p0", "1704067200", "Product Viewed", "10.0"]


def test_a_parquet_file_on_s3_is_read_in_columns_and_its_bad_rows_rejected_by_row_number(setup):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [(f"u{u}", f"i{(u * 7 + n) % 90}", START + u * 100 + n, "view" if n % 3 else "purchase", n + 0.5)
            for u in range(60) for n in range(25)]
    bad = [("u1", None, START, "view", 1.0), (None, "i1", START, "view", 1.0), ("u2", "i1", 5, "view", 1.0),
           ("u3", "i2", START, "null", None)]
    users, items, times, types, values = zip(*(rows[:700] + bad + rows[700:]))
    table = pa.table({"user_id": users, "item_id": items, "timestamp": pa.array(times, pa.int64()),
                      "event_type": types, "event_value": pa.array(values, pa.float64())})
    body = pa.BufferOutputStream()
    pq.write_table(table, body, row_group_size=500)
    setup["s3"].put_object(Bucket=setup["bucket"], Key="in/history.parquet", Body=body.getvalue().to_pybytes())

    result = hub_import(setup, f"s3://{setup['bucket']}/in/history.parquet")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "imported 1500 rows" in result.stdout
    rejects = [json.loads(line) for line in next(setup["folder"].glob("*.rejects.jsonl")).read_text().splitlines()]
    assert [(r["line"], r["reason"]) for r in rejects] == [
        (701, "missing_item_id"), (702, "missing_user_id"), (703, "invalid_timestamp"), (704, "missing_event_type")]
    data = setup["s3"].get_object(Bucket=setup["bucket"], Key=uploaded(setup)[0])["Body"].read().decode()
    clean = list(csv.reader(io.StringIO(data)))
    assert clean[0] == ["USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE", "EVENT_VALUE"]
    assert len(clean) == 1501 and clean[1] == ["u0", "i0", str(START), "purchase", "0.5"]
    assert not list(setup["folder"].glob("*.parquet"))  # the local copy of the S3 object is gone
