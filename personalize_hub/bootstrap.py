"""`hub bootstrap`: creates or finds the dataset group, schemas, datasets and event tracker, and hands their ids on.

It is what `docker compose up` runs once before the hub, the workers and beat: against local_personalize
(or any endpoint `aws.personalize_endpoint_url` names) it makes the hub's Personalize side exist, and
writes the ids, and the webhook secrets, to an env file those processes read (HUB_ENV_FILE, personalize_hub/config.py).
Run again, it finds what it made and writes the same file. Ids already set in the environment (real AWS,
where datasets are made once by hand or by infrastructure code) are written through without a call.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hub.secret import GENERATED_SECRET_MIN_CHARS

DATASET_TYPES = ("Interactions", "Items", "Users")
# The ids the hub's Personalize destinations read (examples/kafka-redis.yaml).
ID_VARIABLES = {
    "tracking_id": "PERSONALIZE_TRACKING_ID",
    "dataset_group": "PERSONALIZE_DATASET_GROUP_ARN",
    "interactions": "PERSONALIZE_INTERACTIONS_DATASET_ARN",
    "items": "PERSONALIZE_ITEMS_DATASET_ARN",
    "users": "PERSONALIZE_USERS_DATASET_ARN",
}
REQUIRED_IDS = ("PERSONALIZE_TRACKING_ID", "PERSONALIZE_ITEMS_DATASET_ARN", "PERSONALIZE_USERS_DATASET_ARN")
# Webhook secrets generated when the environment has none: a stack that comes up never accepts `-u :`.
GENERATED_SECRETS = ("SEGMENT_WRITE_KEY", "MPARTICLE_API_KEY", "MPARTICLE_API_SECRET")


@dataclass(frozen=True)
class Created:
    """What a bootstrap made or found: ids by ID_VARIABLES key."""

    ids: dict[str, str]


def ensure_stack(client: Any, name: str, schemas: dict[str, str], timeout_secs: float = 120) -> Created:
    """Create or find `name`'s dataset group, one schema and dataset per type in `schemas`, and its tracker.

    `client` is a boto3/botocore `personalize` client; `schemas` maps "Interactions" / "Items" / "Users"
    to Avro JSON. Every resource is looked up by name first, so a second run creates nothing.
    """
    groups = _by_name(client.list_dataset_groups(maxResults=100)["datasetGroups"])
    group = groups.get(name) or client.create_dataset_group(name=name)["datasetGroupArn"]
    wait_active(client, "describe_dataset_group", "datasetGroupArn", group, "datasetGroup", timeout_secs)
    ids = {"dataset_group": group}
    known_schemas = _by_name(client.list_schemas(maxResults=100)["schemas"], "schemaArn")
    datasets = {d["datasetType"].lower(): d["datasetArn"]
                for d in client.list_datasets(datasetGroupArn=group, maxResults=100)["datasets"]}
    for kind in DATASET_TYPES:
        if kind not in schemas:
            continue
        resource = f"{name}-{kind.lower()}"
        dataset = datasets.get(kind.lower())
        if dataset is None:
            schema = known_schemas.get(resource) or client.create_schema(name=resource, schema=schemas[kind])["schemaArn"]
            dataset = client.create_dataset(name=resource, schemaArn=schema, datasetGroupArn=group,
                                            datasetType=kind)["datasetArn"]
        wait_active(client, "describe_dataset", "datasetArn", dataset, "dataset", timeout_secs)
        ids[kind.lower()] = dataset
    trackers = client.list_event_trackers(datasetGroupArn=group, maxResults=100)["eventTrackers"]
    tracker = trackers[0]["eventTrackerArn"] if trackers else client.create_event_tracker(
        name=f"{name}-tracker", datasetGroupArn=group)["eventTrackerArn"]
    ids["tracking_id"] = wait_active(client, "describe_event_tracker", "eventTrackerArn", tracker, "eventTracker",
                                     timeout_secs)["trackingId"]
    return Created(ids)


def wait_active(client: Any, operation: str, key: str, arn: str, field: str, timeout_secs: float = 120) -> dict[str, Any]:
    """Describe `arn` until ACTIVE; raise on a FAILED status or after `timeout_secs`."""
    deadline = time.monotonic() + timeout_secs
    while True:
        described = getattr(client, operation)(**{key: arn})[field]
        status = described.get("status", "ACTIVE")
        if status == "ACTIVE":
            return described
        if "FAILED" in status:
            raise RuntimeError(f"{arn}: {status}: {described.get('failureReason', 'no reason given')}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{arn} still {status} after {timeout_secs:.0f}s")
        time.sleep(0.2)


def bootstrap_env(config_tree: dict[str, Any], environ: Mapping[str, str], *, name: str,
                  previous: Mapping[str, str] | None = None) -> dict[str, str]:
    """The variables to hand to the hub: Personalize ids (given or made) and webhook secrets.

    A secret comes from the environment, else from the previous run's file (the hub and the SDKs
    already use it: never rotated silently), else is generated.
    """
    from connectors.aws import AwsClients, AwsConfig
    from connectors.destinations.personalize.schema import SchemasConfig

    values: dict[str, str] = {}
    if all(environ.get(variable, "").strip() for variable in REQUIRED_IDS):
        values.update({v: environ[v] for v in ID_VARIABLES.values() if environ.get(v, "").strip()})
    else:
        aws = AwsClients(AwsConfig.model_validate(config_tree.get("aws") or {}))
        schemas = SchemasConfig.model_validate(config_tree.get("schemas") or {})
        avro = {kind: _schema_text(getattr(schemas, kind.lower())) for kind in DATASET_TYPES
                if getattr(schemas, kind.lower())}
        created = ensure_stack(aws.sync_client("personalize"), name, avro)
        values.update({ID_VARIABLES[key]: value for key, value in created.ids.items()})
    for variable in GENERATED_SECRETS:
        values[variable] = (environ.get(variable, "").strip() or (previous or {}).get(variable, "").strip()
                            or secrets.token_urlsafe(GENERATED_SECRET_MIN_CHARS))
    return values


def write_env_file(path: Path, values: Mapping[str, str]) -> None:
    """Write KEY=VALUE lines atomically, readable by the owner only (it holds secrets)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    with open(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as out:
        out.writelines(f"{key}={value}\n" for key, value in sorted(values.items()))
    temporary.replace(path)


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines (blank lines and # comments skipped), as write_env_file writes them."""
    values = {}
    for line in Path(path).read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def _by_name(resources: list[dict[str, Any]], arn_key: str = "datasetGroupArn") -> dict[str, str]:
    return {resource["name"]: resource[arn_key] for resource in resources}


def _schema_text(source: str) -> str:
    text = source.strip()
    return text if text.startswith("{") else Path(source).read_text()
