"""Control plane: TagResource, UntagResource, ListTagsForResource on any resource of this server."""

from __future__ import annotations

from typing import Any

from local_personalize.control.common import ControlContext, operation
from local_personalize.errors import ResourceNotFound, TooManyTags
from local_personalize.store import Resource

# A resource carries at most 200 tags (docs/reference/personalize-api.md#field-constraints).
MAX_TAGS = 200


def _tagged(ctx: ControlContext, arn: str) -> Resource:
    resource = ctx.store.get_resource(arn)
    if resource is None:
        raise ResourceNotFound(f"Could not find resource with ARN {arn}")
    return resource


@operation("TagResource")
def tag_resource(ctx: ControlContext, body: dict[str, Any]) -> dict[str, Any]:
    resource = _tagged(ctx, body["resourceArn"])
    tags = {tag["tagKey"]: tag["tagValue"] for tag in resource.doc.get("_tags", [])}
    tags |= {tag["tagKey"]: tag["tagValue"] for tag in body["tags"]}
    if len(tags) > MAX_TAGS:
        raise TooManyTags(f"A resource can have at most {MAX_TAGS} tags")
    ctx.store.update_resource(resource.arn, _tags=[{"tagKey": k, "tagValue": v} for k, v in tags.items()])
    return {}


@operation("UntagResource")
def untag_resource(ctx: ControlContext, body: dict[str, Any]) -> dict[str, Any]:
    resource = _tagged(ctx, body["resourceArn"])
    removed = set(body["tagKeys"])
    kept = [tag for tag in resource.doc.get("_tags", []) if tag["tagKey"] not in removed]
    ctx.store.update_resource(resource.arn, _tags=kept)
    return {}


@operation("ListTagsForResource")
def list_tags_for_resource(ctx: ControlContext, body: dict[str, Any]) -> dict[str, Any]:
    return {"tags": _tagged(ctx, body["resourceArn"]).doc.get("_tags", [])}
