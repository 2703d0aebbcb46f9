"""What every control-plane operation shares: its context, lookups, describe documents and pagination."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from local_personalize.errors import InvalidNextToken, ResourceAlreadyExists, ResourceInUse, ResourceNotFound
from local_personalize.settings import Settings
from local_personalize.store import Resource, Store

# Statuses are exact strings with a space (docs/reference/personalize-api.md#statuses).
ACTIVE, CREATE_PENDING, CREATE_IN_PROGRESS, CREATE_FAILED = "ACTIVE", "CREATE PENDING", "CREATE IN_PROGRESS", \
    "CREATE FAILED"
UNFINISHED = (CREATE_PENDING, CREATE_IN_PROGRESS)
# List* maxResults: 1..100 (docs/reference/personalize-api.md#pagination); 100 is also the default page we answer with.
MAX_PAGE = 100

Operation = Callable[["ControlContext", dict[str, Any]], dict[str, Any]]
OPERATIONS: dict[str, Operation] = {}


def operation(name: str) -> Callable[[Operation], Operation]:
    """Register a function as the handler of `AmazonPersonalize.<name>`."""

    def register(handler: Operation) -> Operation:
        OPERATIONS[name] = handler
        return handler

    return register


@dataclass
class ControlContext:
    """One control-plane call: runs on the store thread; background work is deferred to the server.

    A deferred entry is (work kind, resource ARN): the server starts that work once the call answered,
    and starts it again on restart for every resource left CREATE PENDING or CREATE IN_PROGRESS.
    """

    store: Store
    settings: Settings
    deferred: list[tuple[str, str]] = field(default_factory=list)

    def arn(self, resource: str) -> str:
        return self.settings.arn(resource)

    def defer(self, work: str, arn: str) -> None:
        """Start background `work` ("import", "train", "batch-inference", ...) on `arn` after answering."""
        self.deferred.append((work, arn))

    def get(self, arn: str, kind: str, label: str) -> Resource:
        """The resource of this kind at `arn`, with its status brought up to date; ResourceNotFound if none."""
        resource = self.store.get_resource(arn)
        if resource is None or resource.kind != kind:
            raise ResourceNotFound(f"Could not find {label} with ARN {arn}")
        return settle(self.store, resource)

    def create(self, arn: str, kind: str, label: str, parent_arn: str | None, doc: dict[str, Any],
               status: str | None = None) -> Resource:
        """Insert a resource; simple ones report CREATE PENDING for provisioning_delay_secs, then ACTIVE."""
        if self.store.get_resource(arn) is not None:
            raise ResourceAlreadyExists(f"{label} {arn} already exists")
        if status is None:
            status = ACTIVE
            doc = {**doc, "_activeAt": time.time() + self.settings.provisioning_delay_secs}
        return self.store.insert_resource(arn, kind, parent_arn, status, doc)


def settle(store: Store, resource: Resource) -> Resource:
    """Apply a due CREATE PENDING → ACTIVE transition of a simple resource."""
    active_at = resource.doc.get("_activeAt")
    if active_at is not None and time.time() >= active_at:
        resource = store.update_resource(resource.arn, _activeAt=None)
    return resource


def status_of(resource: Resource) -> str:
    if resource.doc.get("_activeAt") is not None and time.time() < resource.doc["_activeAt"]:
        return CREATE_PENDING
    return resource.status


def require_active(resource: Resource, label: str) -> None:
    """Precondition: the resource must be ACTIVE before it is used (docs/reference/personalize-api.md#statuses preconditions)."""
    status = status_of(resource)
    if status != ACTIVE:
        raise ResourceInUse(f"{label} {resource.arn} is not ACTIVE (status {status})")


def describe(resource: Resource, *, with_status: bool = True) -> dict[str, Any]:
    """The resource's document as Describe* answers it: public keys plus status and timestamps."""
    document = {key: value for key, value in resource.doc.items() if not key.startswith("_")}
    if with_status:
        document["status"] = status_of(resource)
    document["creationDateTime"] = resource.created
    document["lastUpdatedDateTime"] = resource.updated
    return document


def summarise(resource: Resource, keys: tuple[str, ...]) -> dict[str, Any]:
    full = describe(resource)
    return {key: full[key] for key in keys if full.get(key) is not None}


def encode_token(seq: int) -> str:
    return base64.urlsafe_b64encode(orjson.dumps({"after": seq})).decode()


def decode_token(token: str | None) -> int:
    if not token:
        return 0
    try:
        after = orjson.loads(base64.urlsafe_b64decode(token.encode()))["after"]
    except Exception:  # any malformed token is the caller's error, whatever broke in decoding it
        raise InvalidNextToken("The nextToken is not valid") from None
    if not isinstance(after, int):
        raise InvalidNextToken("The nextToken is not valid")
    return after


def list_page(ctx: ControlContext, body: dict[str, Any], kind: str, result_key: str, keys: tuple[str, ...],
              parent_arn: str | None = None) -> dict[str, Any]:
    """One page of a List* call, oldest first, with `nextToken` when more remain (docs/reference/personalize-api.md#pagination)."""
    limit = body.get("maxResults") or MAX_PAGE
    rows = ctx.store.list_resources(kind, parent_arn, after_seq=decode_token(body.get("nextToken")),
                                    limit=limit + 1)
    page = [summarise(settle(ctx.store, row), keys) for row in rows[:limit]]
    answer: dict[str, Any] = {result_key: page}
    if len(rows) > limit:
        answer["nextToken"] = encode_token(rows[limit - 1].seq)
    return answer


def dependants(store: Store, parent_arn: str, kinds: tuple[str, ...]) -> list[Resource]:
    return [row for kind in kinds for row in store.list_resources(kind, parent_arn)]
