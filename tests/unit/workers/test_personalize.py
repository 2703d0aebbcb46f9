"""Batch jobs on the control plane: deterministic names, "already exists" means "find it and poll"."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from personalize_hub.config import parse_config
from workers import personalize

VERSION = "arn:aws:personalize:us-east-1:000000000000:solution/s/1"


def job(**changes):
    return parse_config({"workers": {"redis_url": "redis://x", "work_uri": "file:///w"}, "jobs": [{
        "name": "weekly", "recipe": "user_recommendations", "solution_version_arn": VERSION, "num_results": 10,
        "input": "file:///u.jsonl", "destinations": [{"type": "file", "path": "/o"}], **changes}]}).jobs[0]


def client_error(code: str, status: int = 400) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}},
                       "Op")


class FakeControlPlane:
    """CreateBatchInferenceJob / ListBatchInferenceJobs over a dict of existing jobs, two per page."""

    def __init__(self, existing: dict[str, str] | None = None):
        self.jobs = dict(existing or {})
        self.created: list[dict] = []

    def create_batch_inference_job(self, **request):
        if request["jobName"] in self.jobs:
            raise client_error("ResourceAlreadyExistsException")
        self.created.append(request)
        self.jobs[request["jobName"]] = f"arn:job/{request['jobName']}"
        return {"batchInferenceJobArn": self.jobs[request["jobName"]]}

    def list_batch_inference_jobs(self, solutionVersionArn, maxResults, nextToken=None):
        names = sorted(self.jobs)
        start = int(nextToken or 0)
        page = [{"jobName": n, "batchInferenceJobArn": self.jobs[n]} for n in names[start:start + 2]]
        return {"batchInferenceJobs": page, **({"nextToken": str(start + 2)} if start + 2 < len(names) else {})}


def create(client, name="weekly-20260105T0600", **changes):
    return personalize.create_or_find(client, personalize.INFERENCE, name=name, job=job(**changes),
                                      solution_version_arn=VERSION, input_uri="s3://b/in.jsonl",
                                      output_folder="s3://b/out/", role_arn="arn:aws:iam::000000000000:role/r")


def test_the_job_is_created_with_the_documented_request():
    client = FakeControlPlane()
    arn = create(client, filter_arn="arn:aws:personalize:us-east-1:0:filter/f")
    (request,) = client.created
    assert arn == "arn:job/weekly-20260105T0600"
    assert request["jobInput"] == {"s3DataSource": {"path": "s3://b/in.jsonl"}}
    assert request["jobOutput"] == {"s3DataDestination": {"path": "s3://b/out/"}}
    assert request["numResults"] == 10 and request["filterArn"].endswith("filter/f")


def test_an_existing_job_of_that_name_is_found_on_a_later_page_not_duplicated():
    client = FakeControlPlane({f"other-{i}": f"arn:job/other-{i}" for i in range(5)}
                              | {"weekly-20260105T0600": "arn:job/original"})
    assert create(client) == "arn:job/original" and client.created == []


def test_other_refusals_are_raised():
    class Refusing(FakeControlPlane):
        def create_batch_inference_job(self, **request):
            raise client_error("InvalidInputException")

    with pytest.raises(ClientError):
        create(Refusing())


def test_job_names_are_valid_personalize_names():
    assert personalize.job_name_for("weekly_email-20260105T0600") == "weekly_email-20260105T0600"
    name = personalize.job_name_for("-x:y/" + "z" * 80)
    assert len(name) == 63 and name.startswith("x-y-")


def test_transient_errors():
    assert personalize.transient(client_error("ThrottlingException"))
    assert personalize.transient(client_error("LimitExceededException"))  # 5 jobs in progress: wait
    assert personalize.transient(client_error("InternalError", 500))
    assert personalize.transient(EndpointConnectionError(endpoint_url="http://x"))
    assert not personalize.transient(client_error("InvalidInputException"))
    assert not personalize.transient(ValueError("bug"))


def test_latest_active_version_is_the_newest_active_across_pages():
    from datetime import datetime, timezone

    from workers.personalize import NoActiveVersion, latest_active_version

    def at(day: int) -> datetime:
        return datetime(2026, 1, day, tzinfo=timezone.utc)

    pages = {None: {"solutionVersions": [{"solutionVersionArn": "v1", "status": "ACTIVE", "creationDateTime": at(1)},
                                         {"solutionVersionArn": "v4", "status": "CREATE IN_PROGRESS",
                                          "creationDateTime": at(4)}], "nextToken": "t"},
             "t": {"solutionVersions": [{"solutionVersionArn": "v3", "status": "ACTIVE", "creationDateTime": at(3)},
                                        {"solutionVersionArn": "v2", "status": "CREATE FAILED",
                                         "creationDateTime": at(5)}]}}

    class Control:
        def list_solution_versions(self, solutionArn, maxResults, nextToken=None):
            return pages[nextToken]

    assert latest_active_version(Control(), "s") == "v3"
    pages[None]["solutionVersions"], pages["t"]["solutionVersions"] = [], []
    with pytest.raises(NoActiveVersion, match="solution s has no ACTIVE version"):
        latest_active_version(Control(), "s")
