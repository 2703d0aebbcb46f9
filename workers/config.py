"""The batch side's config sections: `workers:`, the batch and retraining jobs of `jobs:`, `notifications:` (its
webhooks and the Redis journal the console lists lifecycle events from).

The application (personalize_hub/config.py) composes them into the hub config; it narrows a batch job's
`destinations` to the connectors it registers (personalize_hub/jobs.py).
"""

from __future__ import annotations

import enum
import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from connectors.destinations.personalize.records import is_recommender_arn
from connectors.destinations.webhook import WebhookConfig
from connectors.formats.lifecycle import EVENTS
from hub.connector import BatchedConfig

# Personalize job names are 1..63 of [a-zA-Z0-9][a-zA-Z0-9\-_]* (docs/reference/personalize-api.md#resource-names);
# a run id appends "-YYYYmmddTHHMMSS" (16 characters) to the job name and becomes the Personalize job name.
JOB_NAME_PATTERN = r"^[a-zA-Z0-9][a-zA-Z0-9_-]{0,39}$"
# filterValues: at most 25 entries, keys [A-Za-z0-9_]{1,50}, values ≤ 1000 characters
# (docs/reference/personalize-api.md#getrecommendations).
MAX_FILTER_VALUES = 25
_FILTER_KEY = re.compile(r"^[A-Za-z0-9_]{1,50}$")
# numResults: ≤ 500 per list for batch inference
# (docs/reference/personalize-api.md#getrecommendations, #batch-inference-jobs); ≤ 5 million users per segment
# (docs/reference/personalize-api.md#quotas, #batch-segment-jobs).
MAX_INFERENCE_RESULTS = 500
MAX_SEGMENT_USERS = 5_000_000


class Recipe(str, enum.Enum):
    """What a job asks Personalize for; decides the job kind and the shape of its input and output lines."""

    USER_RECOMMENDATIONS = "user_recommendations"  # batch inference, input {"userId"} (User-Personalization)
    RELATED_ITEMS = "related_items"  # batch inference, input {"itemId"} (SIMS, Similar-Items)
    ITEM_AFFINITY = "item_affinity"  # batch segment job, input {"itemId"} → recommendedUsers

    @property
    def is_segment(self) -> bool:
        return self is Recipe.ITEM_AFFINITY

    @property
    def input_key(self) -> str:
        return "userId" if self is Recipe.USER_RECOMMENDATIONS else "itemId"


class ActiveUsers(BaseModel):
    """Input: the users the identity store saw in the last N days (its activity index, workers/active_users.py)."""

    model_config = ConfigDict(extra="forbid")

    active_in_last_days: int = Field(
        ..., ge=1, le=3650, description="Users with an interaction in this many days, as the identity store "
        "(sqlite or redis) recorded them; at most identity.record_ttl_secs. Their emails are not known.")

    def __str__(self) -> str:  # how run reports and errors name this input
        return f"users active in the last {self.active_in_last_days} days"


def parse_cron(expression: str) -> Any:
    """A five-field cron expression (minute hour day-of-month month day-of-week) as a Celery crontab."""
    from celery.schedules import crontab

    fields = expression.split()
    if len(fields) != 5:
        raise ValueError(f"schedule {expression!r}: a cron expression has 5 fields (minute hour dom month dow)")
    minute, hour, day_of_month, month_of_year, day_of_week = fields
    try:
        return crontab(minute=minute, hour=hour, day_of_month=day_of_month, month_of_year=month_of_year,
                       day_of_week=day_of_week)
    except ValueError as err:
        raise ValueError(f"schedule {expression!r}: {err}") from None


def _valid_cron(value: str | None) -> str | None:
    if value is not None:
        parse_cron(value)
    return value


Schedule = Annotated[str | None, AfterValidator(_valid_cron)]  # a job's cron expression, checked when read


def _filter_value(value: str | list[str]) -> str:
    # A list is quoted for the user: Personalize wants "\"a\",\"b\""
    # (docs/reference/personalize-api.md#getrecommendations).
    if isinstance(value, list):
        return ",".join('"' + item.replace('"', '\\"') + '"' for item in value)
    return value


class BatchJobConfig(BaseModel):
    """One batch job: what to ask Personalize for, for whom, how to decorate it, and where to push it.

    `destinations` are the export destinations' configs; the application narrows the field to the union of
    the connectors it registers (personalize_hub/jobs.py), which this layer does not know.
    """

    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., pattern=JOB_NAME_PATTERN, description="Job name: letters, digits, - and _, ≤ 40.")
    description: str = Field("", description="What the job is for (shown by `hub jobs list`).")
    schedule: Schedule = Field(
        None, description="Cron expression (minute hour day-of-month month day-of-week, UTC) for Celery beat; "
        "none: run only by `hub jobs run`.")
    recipe: Recipe = Field(..., description="user_recommendations, related_items or item_affinity (segments).")
    solution_version_arn: str | None = Field(None, description="Solution version the batch job runs.")
    campaign_arn: str | None = Field(None, description="Or: a campaign whose current solution version is used.")
    solution_arn: str | None = Field(
        None, description="Or: a solution whose newest ACTIVE version is used (with version: latest_active).")
    version: Literal["latest_active"] | None = Field(
        None, description="With solution_arn: latest_active, resolved when each run starts (follows retraining).")
    input: str | ActiveUsers = Field(
        ..., description="s3:// or file:// JSON lines ({\"userId\", \"email\"?, …} or {\"itemId\"}), or "
        "{active_in_last_days: N}. Fields besides userId/email are passed to destinations as attributes.")
    num_results: int = Field(25, ge=1, description="Items per user (users per item for segments); default 25.")
    filter_arn: str | None = Field(None, description="Personalize filter applied to every line.")
    filter_values: dict[str, str | list[str]] = Field(
        default_factory=dict, description="Filter placeholder values; a list is quoted as Personalize expects.")
    items_catalog: str | None = Field(
        None, description="Item metadata: a CSV with header ITEM_ID,… or JSON lines of PutItems records "
        "({\"itemId\", \"properties\"}), s3:// or file://.")
    item_metadata: list[str] = Field(
        default_factory=list, description="Catalog columns copied onto each item (case-insensitive); empty: all.")
    keep_items_without_metadata: bool = Field(
        False, description="Keep recommended items the catalog does not know (default: drop them, counted).")
    work_uri: str | None = Field(None, description="Folder for batch input/output; default workers.work_uri/<name>/.")
    export_shards: int = Field(1, ge=1, le=64, description="Export tasks run in parallel over the output.")
    destinations: list[BatchedConfig] = Field(
        ..., min_length=1, description="Where each user's (or audience's) recommendations are pushed.")

    @field_validator("filter_values")
    @classmethod
    def _valid_filter_values(cls, values: dict[str, str | list[str]]) -> dict[str, str]:
        if len(values) > MAX_FILTER_VALUES:
            raise ValueError(f"at most {MAX_FILTER_VALUES} filter values (docs/reference/personalize-api.md#getrecommendations)")
        quoted = {}
        for key, value in values.items():
            if not _FILTER_KEY.match(key):
                raise ValueError(f"filter value name {key!r}: [A-Za-z0-9_], 1..50 characters, without $")
            quoted[key] = _filter_value(value)
            if len(quoted[key]) > 1000:
                raise ValueError(f"filter value {key!r} is longer than 1000 characters")
        return quoted

    @model_validator(mode="after")
    def _consistent(self) -> BatchJobConfig:
        given = [self.solution_version_arn, self.campaign_arn, self.solution_arn]
        if sum(value is not None for value in given) != 1:
            raise ValueError("give exactly one of solution_version_arn, campaign_arn and solution_arn")
        for name, arn in (("solution_version_arn", self.solution_version_arn), ("campaign_arn", self.campaign_arn),
                          ("solution_arn", self.solution_arn)):
            if arn is not None and is_recommender_arn(arn):
                raise ValueError(
                    f"{name} {arn} is a recommender: batch inference and batch segment jobs run a solution version "
                    "(CreateBatchInferenceJob and CreateBatchSegmentJob take solutionVersionArn only, "
                    "docs/reference/personalize-api.md#batch-inference-jobs); serve a recommender live through "
                    "recommendations.campaign_arn, or train a custom solution in the group for batch jobs")
        if (self.solution_arn is None) != (self.version is None):
            raise ValueError("solution_arn and version: latest_active go together")
        limit = MAX_SEGMENT_USERS if self.recipe.is_segment else MAX_INFERENCE_RESULTS
        if self.num_results > limit:
            raise ValueError(f"num_results {self.num_results} exceeds {limit} for {self.recipe.value}")
        if isinstance(self.input, ActiveUsers) and self.recipe is not Recipe.USER_RECOMMENDATIONS:
            raise ValueError("active_in_last_days lists users: only for user_recommendations")
        misplaced = self._misplaced_destinations()
        if misplaced:
            raise ValueError("; ".join(misplaced))
        ids = [d.id for d in self.destinations]
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise ValueError(f"destination ids must be unique within a job (the ledger is keyed by them): {repeated}")
        return self

    def _misplaced_destinations(self) -> list[str]:
        """Destinations that cannot be listed in a job (the application's registry knows which)."""
        return []


class GateConfig(BaseModel):
    """When a new solution version may replace the one a campaign serves."""

    model_config = ConfigDict(extra="forbid")

    metric: str = Field("normalized_discounted_cumulative_gain_at_10",
                        description="A GetSolutionMetrics metric where higher is better.")
    max_drop: float = Field(0.0, ge=0, le=1, description="Largest drop allowed against the serving version, as a "
                            "share of its value (0.05: the new one may be up to 5 % worse).")


class TrainJobConfig(BaseModel):
    """A retraining job: a new solution version, its metrics against the serving one, the campaign moved if better."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., pattern=JOB_NAME_PATTERN, description="Job name: letters, digits, - and _, ≤ 40.")
    description: str = Field("", description="What the job is for (shown by `hub jobs list`).")
    schedule: Schedule = Field(None, description="Cron expression (UTC) for Celery beat; none: `hub jobs run` only.")
    recipe: Literal["train"] = Field(..., description="train: create a solution version.")
    solution_arn: str = Field(..., description="The solution to train a new version of.")
    training_mode: Literal["FULL", "UPDATE"] = Field(
        "FULL", description="FULL retrains on all data; UPDATE adds new items and interactions to the latest "
        "FULL version (aws-user-personalization only).")
    campaign_arn: str | None = Field(None, description="Campaign moved to the new version when the gate passes.")
    gate: GateConfig | None = Field(None, description="Metric check before the campaign is moved; none: always.")

    @model_validator(mode="after")
    def _gate_needs_campaign(self) -> TrainJobConfig:
        if self.gate is not None and self.campaign_arn is None:
            raise ValueError("a gate compares with the version a campaign serves: set campaign_arn")
        if self.campaign_arn is not None and is_recommender_arn(self.campaign_arn):
            raise ValueError(f"campaign_arn {self.campaign_arn} is a recommender: a training job moves a campaign to "
                             "the solution version it trained (UpdateCampaign); a recommender has no solution "
                             "version of yours to move to (docs/reference/personalize-api.md#batch-inference-jobs)")
        return self


class WorkersConfig(BaseModel):
    """Celery workers and beat: the broker, where run state lives, and the timing of long tasks."""

    model_config = ConfigDict(extra="forbid")

    redis_url: str | None = Field(
        None, description="Redis for the Celery broker, the delivery ledger, last-sync hashes and run reports.")
    work_uri: str | None = Field(None, description="s3:// or file:// folder for batch job input and output.")
    role_arn: str = Field(
        "arn:aws:iam::000000000000:role/personalize-hub",
        pattern=r"^arn:([a-z\d-]+):iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+$",
        description="IAM role Personalize assumes to read input and write output (required by the API).")
    visibility_timeout_secs: int = Field(
        900, ge=10, description="A task unacknowledged this long is redelivered: keep it above the longest task.")
    export_slice_secs: float = Field(
        60.0, gt=0, description="An export task stops reading after this long and continues in a new task.")
    poll_interval_secs: float = Field(30.0, gt=0, description="How often a running batch job is polled.")
    max_wait_secs: float = Field(86_400.0, gt=0, description="A batch job still running after this long fails; so "
                                 "does a run that waited this long for the job's previous run to finish exporting.")
    lock_ttl_secs: float = Field(
        30.0, gt=0, description="An export slice's lock outlives a killed worker by at most this long.")
    run_lease_secs: float = Field(
        1800.0, gt=0, description="A run whose heartbeat (refreshed while it works) is older than this was "
        "abandoned (its worker killed, its tasks lost): the next run of the job fails it with that reason "
        "instead of waiting for it. Keep it above visibility_timeout_secs + lock_ttl_secs, the longest "
        "Celery takes to redeliver a killed task.")
    state_ttl_days: int = Field(35, ge=1, description="Run reports and delivery ledgers are kept this long.")
    sync_ttl_days: int = Field(120, ge=1, description="A user's last-sync hash is forgotten after this long.")

    @model_validator(mode="after")
    def _timing(self) -> WorkersConfig:
        # A countdown (poll) or a slice longer than the visibility timeout would be redelivered while it runs.
        if self.poll_interval_secs >= self.visibility_timeout_secs:
            raise ValueError("poll_interval_secs must be below visibility_timeout_secs")
        if self.export_slice_secs * 2 >= self.visibility_timeout_secs:
            raise ValueError("export_slice_secs must be below half of visibility_timeout_secs")
        if self.run_lease_secs <= self.visibility_timeout_secs + self.lock_ttl_secs:
            raise ValueError("run_lease_secs must exceed visibility_timeout_secs + lock_ttl_secs: a killed "
                             "task Celery would still redeliver is not abandoned")
        return self


class NotificationsConfig(BaseModel):
    """Where lifecycle events go (import finished, version trained, gate passed or failed, campaign updated, ...)."""

    model_config = ConfigDict(extra="forbid")

    webhooks: list[WebhookConfig] = Field(
        default_factory=list, description="Standard Webhooks receivers (the `webhook` destination's fields).")
    events: list[str] = Field(list(EVENTS), description=f"Which events to send: {', '.join(EVENTS)}.")
    redis_url: str | None = Field(
        None, description="Redis keeping the newest lifecycle events (all of them) for the console; default: "
        "workers.redis_url (where runs are kept), else redis.url.")
    journal_size: int = Field(500, ge=0, le=100_000, description="Lifecycle events kept; 0: none.")

    @field_validator("events")
    @classmethod
    def _known(cls, events: list[str]) -> list[str]:
        unknown = sorted(set(events) - set(EVENTS))
        if unknown:
            raise ValueError(f"unknown lifecycle events {', '.join(unknown)}; known: {', '.join(EVENTS)}")
        return events
