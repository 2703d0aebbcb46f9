"""file:// data locations stay inside the configured roots, failure reasons never echo file contents, and
request bodies are capped (issue 15 item 2)."""

from __future__ import annotations

import httpx
import orjson
import pytest

from local_personalize.app import LocalPersonalize
from local_personalize.control import OPERATIONS, ControlContext
from local_personalize.errors import InvalidInput
from local_personalize.imports import run_import_job
from local_personalize.objects import ObjectStore
from synthetic_shop import ITEMS_SCHEMA
from local_personalize.settings import Settings
from local_personalize.store import Store

SECRET = "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY"


@pytest.fixture
def control(tmp_path):
    settings = Settings(data_dir=tmp_path / "data")
    store = Store(settings.db_path)

    def call(operation, **body):
        return OPERATIONS[operation](ControlContext(store, settings), body)

    group = call("CreateDatasetGroup", name="shop")["datasetGroupArn"]
    schema = call("CreateSchema", name="items", schema=orjson.dumps(ITEMS_SCHEMA).decode())["schemaArn"]
    dataset = call("CreateDataset", name="items", schemaArn=schema, datasetGroupArn=group,
                   datasetType="Items")["datasetArn"]
    yield settings, store, call, dataset
    store.close()


def test_imports_outside_the_roots_are_refused(control):
    _settings, _store, call, dataset = control
    for location in ("file:///etc/passwd", "file:///proc/self/environ", "file:///etc/"):
        with pytest.raises(InvalidInput, match="outside the directories"):
            call("CreateDatasetImportJob", jobName="j", datasetArn=dataset, dataSource={"dataLocation": location})


def test_a_symlink_out_of_the_root_is_refused_when_the_job_runs(control, tmp_path):
    settings, store, call, dataset = control
    outside = tmp_path / "secret.csv"
    outside.write_text(f"{SECRET}\n1\n")
    link = settings.data_dir / "items.csv"
    link.write_text("ITEM_ID\ni1\n")
    job = call("CreateDatasetImportJob", jobName="j", datasetArn=dataset,
               dataSource={"dataLocation": f"file://{link}"})["datasetImportJobArn"]
    link.unlink()
    link.symlink_to(outside)  # swapped after the create-time check
    run_import_job(settings, job)
    done = store.get_resource(job)
    assert done.status == "CREATE FAILED" and "outside the directories" in done.doc["failureReason"]
    assert "wJalr" not in done.doc["failureReason"]


@pytest.mark.parametrize("content", [f"{SECRET}\n1\n", f"ITEM_ID,GENRE,CREATION_TIMESTAMP\ni1,a,{SECRET}\n"])
def test_failure_reasons_do_not_echo_file_contents(control, content):
    settings, store, call, dataset = control
    path = settings.data_dir / "items.csv"
    path.write_text(content)
    job = call("CreateDatasetImportJob", jobName="j", datasetArn=dataset,
               dataSource={"dataLocation": f"file://{path}"})["datasetImportJobArn"]
    run_import_job(settings, job)
    reason = store.get_resource(job).doc["failureReason"]
    assert "items.csv" in reason and "wJalr" not in reason and "AWS_SECRET" not in reason


def test_batch_job_locations_outside_the_roots_are_refused(tmp_path):
    objects = ObjectStore(None, "us-east-1", (tmp_path / "data", tmp_path / "extra"))
    (tmp_path / "extra").mkdir()
    for url in ("file:///etc/passwd", f"file://{tmp_path}/elsewhere/out/", f"file://{tmp_path}/data/../x"):
        with pytest.raises(InvalidInput):
            objects.check(url)
        with pytest.raises(InvalidInput):
            objects.write(url + "f.out", b"x")
    objects.check(f"file://{tmp_path}/extra/in/")
    objects.write(f"file://{tmp_path}/data/out/f.out", b"x")
    assert objects.read(f"file://{tmp_path}/data/out/f.out") == b"x"
    objects.check("s3://bucket/key")


async def test_request_bodies_above_the_cap_are_refused(tmp_path):
    app = LocalPersonalize(Settings(data_dir=tmp_path, max_body_bytes=4096))
    headers = {"X-Amz-Target": "AmazonPersonalize.CreateDatasetGroup", "Content-Type": "application/x-amz-json-1.1"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://lp") as http:
        big = await http.post("/", content=b'{"name": "' + b"x" * 8192 + b'"}', headers=headers)
        assert big.status_code == 413 and big.headers["x-amzn-errortype"] == "RequestEntityTooLargeException"
        small = await http.post("/", json={"name": "shop"}, headers=headers)
        assert small.status_code == 200
    await app.service.shutdown()
