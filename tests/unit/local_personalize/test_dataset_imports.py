"""Dataset import jobs from file:// CSV into the store (docs/reference/personalize-api.md#dataset-schemas, #quotas)."""

from __future__ import annotations

import orjson
import pytest

from local_personalize.control import OPERATIONS, ControlContext
from local_personalize.imports import run_import_job
from local_personalize.settings import Settings
from local_personalize.store import Store
from synthetic_shop import INTERACTIONS_SCHEMA, ITEMS_SCHEMA, generate


@pytest.fixture
def setup(tmp_path):
    settings = Settings(data_dir=tmp_path / "data", file_roots=(str(tmp_path),))
    store = Store(settings.db_path)

    def call(operation, **body):
        return OPERATIONS[operation](ControlContext(store, settings), body)

    group = call("CreateDatasetGroup", name="shop")["datasetGroupArn"]
    datasets = {}
    for kind, schema in (("Interactions", INTERACTIONS_SCHEMA), ("Items", ITEMS_SCHEMA)):
        schema_arn = call("CreateSchema", name=kind, schema=orjson.dumps(schema).decode())["schemaArn"]
        datasets[kind] = call("CreateDataset", name=kind, schemaArn=schema_arn, datasetGroupArn=group,
                              datasetType=kind)["datasetArn"]

    def load(kind, content: bytes, name="data.csv", mode="FULL"):
        path = tmp_path / name
        path.write_bytes(content)
        job = call("CreateDatasetImportJob", jobName=f"job{len(store.list_resources('dataset-import-job'))}",
                   datasetArn=datasets[kind], dataSource={"dataLocation": f"file://{path}"},
                   importMode=mode)["datasetImportJobArn"]
        run_import_job(settings, job)
        return store.get_resource(job)

    yield store, datasets, load
    store.close()


def test_full_then_incremental_interactions(setup):
    store, datasets, load = setup
    shop = generate(50, 40, 1500)
    job = load("Interactions", shop.interactions_csv())
    assert job.status == "ACTIVE", job.doc.get("failureReason")
    assert store.count_interactions(datasets["Interactions"]) == len(shop.users)
    load("Interactions", shop.interactions_csv(), mode="INCREMENTAL")
    assert store.count_interactions(datasets["Interactions"]) == 2 * len(shop.users)
    load("Interactions", shop.interactions_csv(), mode="FULL")
    assert store.count_interactions(datasets["Interactions"]) == len(shop.users)


def test_items_are_typed_records(setup):
    store, datasets, load = setup
    shop = generate(50, 40, 1500)
    assert load("Items", shop.items_csv()).status == "ACTIVE"
    record = store.record(datasets["Items"], "i3")
    assert record == {"ITEM_ID": "i3", "GENRE": shop.genre_name(int(shop.item_genre[3])),
                      "CREATION_TIMESTAMP": int(shop.item_created[3])}


@pytest.mark.parametrize("content, fragment", [
    (b"USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE\n" + b"u1,i1,1700000000,click\n" * 10, "at least 1000"),
    (b"USER_ID,ITEM_ID,EVENT_TYPE\nu1,i1,click\n", "missing the following columns"),
    (b"USER_ID,ITEM_ID,TIMESTAMP,COLOUR\nu1,i1,1,red\n", "not a field"),
    (b"USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE\nu1,i1,soon,click\n", "line 2"),
])
def test_bad_files_fail_the_job_with_a_reason_and_write_nothing(setup, content, fragment):
    store, datasets, load = setup
    job = load("Interactions", content)
    assert job.status == "CREATE FAILED"
    assert fragment in job.doc["failureReason"]
    assert store.count_interactions(datasets["Interactions"]) == 0


def test_missing_file_fails_the_job(setup, tmp_path):
    store, datasets, load = setup
    job = load("Interactions", b"", name="empty.csv")
    assert job.status == "CREATE FAILED"
