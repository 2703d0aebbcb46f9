"""Batch inference and batch segment jobs: JSON lines in, `<input file>.out` JSON lines out (docs/reference/personalize-api.md#batch-inference-jobs, #batch-segment-jobs).

Runs in a job process on the model as saved by its solution version (batch jobs use the data as of the
version, docs/reference/personalize-api.md#data-freshness). A bad input line becomes an output line with its `input` and
a non-null `error`; the other lines go through.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import orjson

from local_personalize.control.common import ACTIVE, CREATE_FAILED, CREATE_IN_PROGRESS
from local_personalize.filters import FilterContext, FilterError, ItemTable, UserInteraction, compile_filter
from local_personalize.ingest import group_dataset
from local_personalize.objects import ObjectStore, join
from local_personalize.item_attributes import MAX_QUERIES as MAX_ATTRIBUTE_QUERIES
from local_personalize.item_attributes import matching_items
from local_personalize.recipes import Exploration, Model, Recommendation, RecipeType, load_model
from local_personalize.recipes.item_attribute_affinity import ItemAttributeAffinity
from local_personalize.jobs import failure_reason
from local_personalize.settings import Settings
from local_personalize.store import Store

# Item-Affinity takes at most 500 queries per input file (docs/reference/personalize-api.md#quotas).
MAX_SEGMENT_QUERIES = 500
# Interactions filters look at the 100 most recent interactions per user and event type
# (docs/reference/personalize-api.md#quotas).
FILTER_HISTORY_PER_TYPE = 100
CHUNK_LINES = 2000


class JobFailed(ValueError):
    """The job cannot run; str(error) is its failureReason."""


def recent_interactions(rows: list[tuple]) -> list[UserInteraction]:
    """A user's interactions (newest first) as a filter sees them: the newest 100 per event type."""
    kept, per_type = [], {}
    for item_id, event_type, ts, _value in rows:
        seen = per_type.get(event_type, 0)
        if seen < FILTER_HISTORY_PER_TYPE:
            per_type[event_type] = seen + 1
            kept.append(UserInteraction(item_id, event_type, ts))
    return kept


class JobContext:
    """What a batch job needs from the store to evaluate its filter per input line."""

    def __init__(self, store: Store, model: Model, dataset_group_arn: str, filter_arn: str | None,
                 deleted_users: frozenset[str] = frozenset()) -> None:
        self.store, self.model = store, model
        # Users a data deletion job removed after the model was trained: answered as users it never saw,
        # and left out of segments.
        self.deleted_users = deleted_users
        filter_resource = store.get_resource(filter_arn) if filter_arn else None
        if filter_arn and filter_resource is None:
            raise JobFailed(f"Filter {filter_arn} no longer exists")
        self.filter = compile_filter(filter_resource.doc["filterExpression"]) if filter_resource else None
        datasets = {kind: group_dataset(store, dataset_group_arn, kind) for kind in ("INTERACTIONS", "ITEMS", "USERS")}
        self.datasets = {kind: dataset.arn for kind, dataset in datasets.items() if dataset is not None}
        self.items = store.records(self.datasets["ITEMS"]) if "ITEMS" in self.datasets else {}
        self.item_table = ItemTable.from_rows(model.item_ids, self.items) if self.filter else None

    def user(self, user_id: str) -> str:
        return f"deleted-user:{user_id}" if user_id in self.deleted_users else user_id

    def candidate_users(self, line: dict[str, Any]) -> np.ndarray | None:
        """Which of the model's users a segment may hold: the filter's choice, minus deleted users."""
        mask = None
        if self.filter is not None:
            users = self.store.records(self.datasets["USERS"]) if "USERS" in self.datasets else {}
            mask = self.filter.user_mask(self.model.user_ids, users, line.get("filterValues"))
        if self.deleted_users:
            kept = np.fromiter((user not in self.deleted_users for user in self.model.user_ids), dtype=bool,
                               count=len(self.model.user_ids))
            mask = kept if mask is None else mask & kept
        return mask

    def candidates(self, line: dict[str, Any]) -> np.ndarray | None:
        if self.filter is None:
            return None
        user_id, item_id = line.get("userId"), line.get("itemId")
        history = []
        if self.filter.uses_interactions and user_id and "INTERACTIONS" in self.datasets:
            history = recent_interactions(self.store.user_interactions(self.datasets["INTERACTIONS"], user_id))
        current_user = None
        if self.filter.uses_current_user and user_id and "USERS" in self.datasets:
            current_user = self.store.record(self.datasets["USERS"], user_id)
        context = FilterContext(self.item_table, history, current_user,
                                self.items.get(item_id) if item_id else None)
        return self.filter.item_mask(context, line.get("filterValues"))


def _output(recommendations: list[Recommendation], key: str, with_scores: bool) -> dict[str, Any]:
    output: dict[str, Any] = {key: [r.item_id for r in recommendations]}
    if with_scores:
        output["scores"] = [r.score for r in recommendations]
    return output


def _inference_line(job: JobContext, line: dict[str, Any], num_results: int, exploration: Exploration) -> dict:
    model = job.model
    candidates = job.candidates(line)
    kind = model.recipe_type
    if kind == RecipeType.RELATED_ITEMS:
        if not line.get("itemId"):
            raise JobFailed("itemId is required for a RELATED_ITEMS solution version")
        found = model.recommend(None, line["itemId"], num_results, candidates=candidates)
    elif kind == RecipeType.PERSONALIZED_RANKING:
        if not line.get("userId") or not isinstance(line.get("itemList"), list):
            raise JobFailed("userId and itemList are required for a PERSONALIZED_RANKING solution version")
        found = model.rank(job.user(line["userId"]), line["itemList"], candidates=candidates)
    else:
        if not line.get("userId"):
            raise JobFailed(f"userId is required for a {kind} solution version")
        found = model.recommend(job.user(line["userId"]), None, num_results, candidates=candidates,
                                exploration=exploration)
    return _output(found, "recommendedItems", model.with_scores)


def _segment_line(job: JobContext, line: dict[str, Any], num_results: int, exploration: Exploration) -> dict:
    if job.model.recipe_name == ItemAttributeAffinity.name:
        query = line.get("itemAttributes")
        if not isinstance(query, str) or not query:
            raise JobFailed("itemAttributes is required for an aws-item-attribute-affinity solution version")
        if "ITEMS" not in job.datasets:
            raise JobFailed("itemAttributes queries need an Items dataset")
        items = matching_items(query, job.model.item_ids, job.items)
        found = job.model.users_for_items(items, num_results, candidate_users=job.candidate_users(line))
        return {"recommendedUsers": [r.item_id for r in found]}
    if "itemAttributes" in line:
        raise JobFailed("itemAttributes queries need an aws-item-attribute-affinity solution version")
    if not line.get("itemId"):
        raise JobFailed("itemId is required")
    found = job.model.users_for_item(line["itemId"], num_results, candidate_users=job.candidate_users(line))
    return {"recommendedUsers": [r.item_id for r in found]}


def _user_lines_batch(job: JobContext, lines: list[dict], num_results: int, exploration: Exploration) -> list:
    """Plain userId lines without per-line filter context, answered with one vectorised call."""
    candidates = job.candidates({}) if job.filter is not None else None
    found = job.model.recommend_batch([job.user(line["userId"]) for line in lines], num_results, candidates=candidates,
                                      exploration=exploration)
    return [_output(recs, "recommendedItems", job.model.with_scores) for recs in found]


def _needs_line_context(job: JobContext, line: Any) -> bool:
    return not (isinstance(line, dict) and isinstance(line.get("userId"), str) and line["userId"]
                and set(line) == {"userId"} and (job.filter is None or not (
                    job.filter.uses_interactions or job.filter.uses_current_user or job.filter.parameters)))


def _good_record(line: dict[str, Any], output: dict[str, Any]) -> dict[str, Any]:
    # Item-Attribute-Affinity lines echo their query, not an "input" object (batch-segment-job-output-examples).
    if isinstance(line.get("itemAttributes"), str):
        return {"itemAttributes": line["itemAttributes"], "output": output, "error": None}
    return {"input": line, "output": output, "error": None}


def process_file(job: JobContext, text: str, num_results: int, exploration: Exploration,
                 answer: Callable[[JobContext, dict, int, Exploration], dict], vectorise: bool) -> bytes:
    out = bytearray()
    raw_lines = [raw for raw in text.splitlines() if raw.strip()]
    for start in range(0, len(raw_lines), CHUNK_LINES):
        chunk = raw_lines[start:start + CHUNK_LINES]
        parsed: list[Any] = []
        for raw in chunk:
            try:
                parsed.append(orjson.loads(raw))
            except orjson.JSONDecodeError:
                parsed.append(None)
        results: list[Any] = [None] * len(chunk)
        simple = [i for i, line in enumerate(parsed) if vectorise and not _needs_line_context(job, line)]
        if simple:
            for i, output in zip(simple, _user_lines_batch(job, [parsed[i] for i in simple], num_results,
                                                             exploration)):
                results[i] = output
        for i, (raw, line) in enumerate(zip(chunk, parsed)):
            if results[i] is not None:
                record = {"input": line, "output": results[i], "error": None}
            elif not isinstance(line, dict):
                record = {"input": raw, "error": "Input line is not a JSON object"}
            else:
                try:
                    record = _good_record(line, answer(job, line, num_results, exploration))
                except (JobFailed, FilterError, NotImplementedError, ValueError) as error:
                    record = {"input": line, "error": str(error)}
            out += orjson.dumps(record) + b"\n"
    return bytes(out)


def run_job(store: Store, settings: Settings, job_arn: str, segment: bool) -> None:
    job_doc = store.get_resource(job_arn).doc
    version = store.get_resource(job_doc["solutionVersionArn"])
    if version is None:
        raise JobFailed(f"Solution version {job_doc['solutionVersionArn']} no longer exists")
    model = load_model(str(settings.models_dir / f"{version.doc['_modelId']}.npz"))
    group = version.doc["datasetGroupArn"]
    context = JobContext(store, model, group, job_doc.get("filterArn"),
                         frozenset(store.deleted_users(group, version.created)))
    exploration = Exploration.from_config((job_doc.get("batchInferenceJobConfig") or {}).get("itemExplorationConfig"))
    objects = ObjectStore.for_settings(settings)
    destination = job_doc["jobOutput"]["s3DataDestination"]["path"]
    files = objects.list(job_doc["jobInput"]["s3DataSource"]["path"])
    if not files:
        raise JobFailed(f"No input files at {job_doc['jobInput']['s3DataSource']['path']}")
    vectorise = not segment and model.recipe_type == RecipeType.USER_PERSONALIZATION
    for url in files:
        text = objects.read(url).decode("utf-8-sig")
        limit = MAX_ATTRIBUTE_QUERIES if model.recipe_name == ItemAttributeAffinity.name else MAX_SEGMENT_QUERIES
        if segment and sum(1 for raw in text.splitlines() if raw.strip()) > limit:
            raise JobFailed(f"{url} has more than {limit} queries")
        answer = _segment_line if segment else _inference_line
        output = process_file(context, text, job_doc["numResults"], exploration, answer, vectorise)
        # Output file name: <input file name>.out in the output folder
        # (docs/reference/personalize-api.md#batch-inference-jobs).
        objects.write(join(destination, url.rsplit("/", 1)[-1] + ".out"), output)


def run_batch_job(settings: Settings, job_arn: str, segment: bool) -> None:
    """Job-process entry point for both job kinds; records ACTIVE or CREATE FAILED."""
    store = Store(settings.db_path)
    try:
        store.update_resource(job_arn, status=CREATE_IN_PROGRESS)
        try:
            run_job(store, settings, job_arn, segment)
        except Exception as error:  # any failure (S3, model file, filter) becomes the failureReason
            store.update_resource(job_arn, status=CREATE_FAILED, failureReason=failure_reason(error))
            return
        store.update_resource(job_arn, status=ACTIVE)
    finally:
        store.close()
