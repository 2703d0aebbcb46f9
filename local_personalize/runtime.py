"""personalize-runtime: GetRecommendations, GetPersonalizedRanking, GetActionRecommendations (docs/reference/personalize-api.md#runtime)."""

from __future__ import annotations

import functools
import math
import uuid
from typing import TYPE_CHECKING, Any

import numpy as np

from local_personalize import actions
from local_personalize.batch import FILTER_HISTORY_PER_TYPE, recent_interactions
from local_personalize.context import rerank, widened
from local_personalize.errors import InvalidInput, ResourceInUse, ResourceNotFound
from local_personalize.filters import Filter, FilterContext, FilterError, compile_filter
from local_personalize.recipes import Recommendation, RecipeType
from local_personalize.serving import LiveCampaign, LiveModel
from local_personalize.store import Store

if TYPE_CHECKING:
    from local_personalize.service import Service

DEFAULT_RESULTS = 25  # GetRecommendations numResults default (docs/reference/personalize-api.md#getrecommendations)


def recommendation_id() -> str:
    # "RID-" + a UUID: 40 characters, the most PutEvents.recommendationId accepts
    # (docs/reference/personalize-api.md#getrecommendations).
    return f"RID-{uuid.uuid4()}"


@functools.lru_cache(maxsize=512)
def _compiled(expression: str) -> Filter:
    return compile_filter(expression)


async def campaign_for(service: Service, arn: str | None, recommender_arn: str | None = None) -> LiveCampaign:
    """The live campaign or recommender a runtime call names; exactly one of the two ARNs (docs/reference/personalize-api.md#getrecommendations)."""
    if (arn is None) == (recommender_arn is None):
        raise InvalidInput("Provide exactly one of campaignArn and recommenderArn")
    target, kind = (arn, "campaign") if arn is not None else (recommender_arn, "recommender")
    campaign = service.models.campaigns.get(target)
    if campaign is not None:
        return campaign
    resource = await service.db(Store.get_resource, service.store, target)
    if resource is None or resource.kind != kind:
        raise ResourceNotFound(f"Could not find {kind} with ARN {target}")
    raise ResourceInUse(f"{kind.capitalize()} {target} is not ACTIVE (status {resource.status})")


async def _use_case_inputs(service: Service, campaign: LiveCampaign, user_id: str | None, item_id: str | None
                           ) -> tuple[str | None, np.ndarray | None]:
    """A recommender's use-case rules: required ids, the user's latest item, items it leaves out (domain.py)."""
    use_case, live = campaign.use_case, campaign.live
    if use_case is None:
        return item_id, None
    if use_case.needs_user and not user_id:
        raise InvalidInput(f"userId is required for a {use_case.name} recommender")
    if use_case.needs_item and not item_id:
        raise InvalidInput(f"itemId is required for a {use_case.name} recommender")
    if not (use_case.excludes_event and user_id and "INTERACTIONS" in live.datasets):
        return item_id, None
    consumed = await service.db(Store.user_items_of_type, service.store, live.datasets["INTERACTIONS"], user_id,
                                use_case.excludes_event, FILTER_HISTORY_PER_TYPE)
    if item_id is None and use_case.item_from_history:
        if not consumed:
            raise InvalidInput(f"User {user_id} has no {use_case.excludes_event} event to start from; pass itemId")
        item_id = consumed[0]  # newest first
    positions = live.model_positions()
    mask = np.ones(len(live.model.item_ids), dtype=bool)
    mask[[positions[item] for item in consumed if item in positions]] = False
    return item_id, mask


async def _filter_mask(service: Service, live: LiveModel, filter_arn: str, values: dict | None,
                       user_id: str | None, item_id: str | None) -> np.ndarray:
    resource = await service.db(Store.get_resource, service.store, filter_arn)
    if resource is None or resource.kind != "filter":
        raise ResourceNotFound(f"Could not find filter with ARN {filter_arn}")
    if resource.parent_arn != live.dataset_group_arn:
        raise InvalidInput(f"Filter {filter_arn} belongs to another dataset group than the campaign or recommender")
    try:
        compiled = _compiled(resource.doc["filterExpression"])
        table = await service.models.item_table(live)
        history, current_user = [], None
        if compiled.uses_interactions and user_id and "INTERACTIONS" in live.datasets:
            rows = await service.db(Store.user_interactions, service.store, live.datasets["INTERACTIONS"], user_id)
            history = recent_interactions(rows)
        if compiled.uses_current_user and user_id and "USERS" in live.datasets:
            current_user = await service.db(Store.record, service.store, live.datasets["USERS"], user_id)
        current_item = live.items.get(item_id) if item_id else None
        return compiled.item_mask(FilterContext(table, history, current_user, current_item), values)
    except FilterError as error:
        raise InvalidInput(str(error)) from None


def _item_list(recommendations: list[Recommendation], live: LiveModel, columns: list[str] | None,
               promotion: str | None = None, promoted: frozenset[str] = frozenset()) -> list[dict[str, Any]]:
    answer = []
    for rec in recommendations:
        item: dict[str, Any] = {"itemId": rec.item_id}
        if rec.score is not None and live.model.with_scores:
            item["score"] = rec.score
        if rec.item_id in promoted:
            item["promotionName"] = promotion
        if rec.reason:
            item["reason"] = [rec.reason]
        if columns:
            row = live.items.get(rec.item_id) or {}
            item["metadata"] = {c: str(row[c]).lower() if isinstance(row[c], bool) else str(row[c])
                                for c in columns if row.get(c) is not None}
        answer.append(item)
    return answer


async def _metadata_columns(service: Service, campaign: LiveCampaign, body: dict) -> list[str] | None:
    columns = (body.get("metadataColumns") or {}).get("ITEMS")
    if not columns:
        return None
    if not campaign.metadata_enabled:
        raise InvalidInput("metadataColumns need a campaign with enableMetadataWithRecommendations")
    await service.models.item_table(campaign.live)  # refreshes live.items
    return columns


async def get_recommendations(service: Service, body: dict[str, Any]) -> dict[str, Any]:
    campaign = await campaign_for(service, body.get("campaignArn"), body.get("recommenderArn"))
    live, model = campaign.live, campaign.live.model
    user_id, item_id = body.get("userId"), body.get("itemId")
    kind = model.recipe_type
    item_id, candidates = await _use_case_inputs(service, campaign, user_id, item_id)
    if kind == RecipeType.PERSONALIZED_RANKING:
        raise InvalidInput("This campaign ranks items: call GetPersonalizedRanking")
    if kind == RecipeType.PERSONALIZED_ACTIONS:
        raise InvalidInput("This campaign recommends actions: call GetActionRecommendations")
    if kind == RecipeType.USER_PERSONALIZATION and not user_id:
        raise InvalidInput("userId is required for a USER_PERSONALIZATION campaign")
    if kind == RecipeType.RELATED_ITEMS and not item_id:
        raise InvalidInput("itemId is required for a RELATED_ITEMS campaign")
    num_results = body.get("numResults", DEFAULT_RESULTS)
    if body.get("filterArn"):
        mask = await _filter_mask(service, live, body["filterArn"], body.get("filterValues"), user_id, item_id)
        candidates = mask if candidates is None else candidates & mask
    columns = await _metadata_columns(service, campaign, body)
    promotions = body.get("promotions") or []
    if promotions:
        recommendations, promoted = await _with_promotion(service, campaign, promotions[0], user_id, item_id,
                                                          num_results, candidates)
        items = _item_list(recommendations, live, columns, promotions[0].get("name"), promoted)
    else:
        context = body.get("context")
        wanted = widened(num_results) if context and live.context_lifts else num_results
        recommendations = model.recommend(live.user(user_id), item_id, wanted, candidates=candidates,
                                          exploration=campaign.exploration)
        if wanted != num_results:
            recommendations = rerank(recommendations, context, live.context_lifts, live.model_positions(),
                                     num_results, model.with_scores)
        items = _item_list(recommendations, live, columns)
    answer_id = recommendation_id()
    service.remember_recommendation(answer_id, campaign.arn)
    return {"itemList": items, "recommendationId": answer_id}


async def _with_promotion(service: Service, campaign: LiveCampaign, promotion: dict, user_id: str | None,
                          item_id: str | None, num_results: int, candidates: np.ndarray | None
                          ) -> tuple[list[Recommendation], frozenset[str]]:
    """percentPromotedItems of the list come from the promotion's filter, spread evenly through it (docs/reference/personalize-api.md#getrecommendations)."""
    live, model = campaign.live, campaign.live.model
    if not promotion.get("filterArn"):
        raise InvalidInput("A promotion needs a filterArn")
    mask = await _filter_mask(service, live, promotion["filterArn"], promotion.get("filterValues"), user_id, item_id)
    base = candidates if candidates is not None else np.ones(len(model.item_ids), dtype=bool)
    wanted = math.ceil(num_results * promotion.get("percentPromotedItems", 100) / 100)
    promoted = model.recommend(live.user(user_id), item_id, wanted, candidates=base & mask,
                               exploration=campaign.exploration)
    promoted_ids = frozenset(rec.item_id for rec in promoted)
    rest_mask = base.copy()
    rest_mask[[i for i, item in enumerate(model.item_ids) if item in promoted_ids]] = False
    rest = model.recommend(live.user(user_id), item_id, num_results - len(promoted), candidates=rest_mask,
                           exploration=campaign.exploration)
    merged: list[Recommendation] = []
    step = max(1, num_results // max(1, len(promoted)))
    promoted_iter, rest_iter = iter(promoted), iter(rest)
    for position in range(len(promoted) + len(rest)):
        source = promoted_iter if position % step == 0 else rest_iter
        choice = next(source, None) or next(rest_iter, None) or next(promoted_iter, None)
        if choice is not None:
            merged.append(choice)
    return merged, promoted_ids


async def get_personalized_ranking(service: Service, body: dict[str, Any]) -> dict[str, Any]:
    campaign = await campaign_for(service, body.get("campaignArn"), body.get("recommenderArn"))
    live = campaign.live
    if live.model.recipe_type != RecipeType.PERSONALIZED_RANKING:
        raise InvalidInput("GetPersonalizedRanking needs a PERSONALIZED_RANKING campaign")
    candidates = None
    if body.get("filterArn"):
        candidates = await _filter_mask(service, live, body["filterArn"], body.get("filterValues"), body["userId"],
                                        None)
    columns = await _metadata_columns(service, campaign, body)
    ranked = live.model.rank(live.user(body["userId"]), body["inputList"], candidates=candidates)
    if body.get("context") and live.context_lifts:
        # The whole input list is re-ordered by its context lifts, as GetRecommendations' widened list is.
        ranked = rerank(ranked, body["context"], live.context_lifts, live.model_positions(), len(ranked),
                        live.model.with_scores)
    answer_id = recommendation_id()
    service.remember_recommendation(answer_id, campaign.arn)
    return {"personalizedRanking": _item_list(ranked, live, columns), "recommendationId": answer_id}


async def get_action_recommendations(service: Service, body: dict[str, Any]) -> dict[str, Any]:
    campaign = await campaign_for(service, body.get("campaignArn"))
    live = campaign.live
    if live.model.recipe_type != RecipeType.PERSONALIZED_ACTIONS:
        raise InvalidInput("GetActionRecommendations needs a PERSONALIZED_ACTIONS campaign (aws-next-best-action)")
    if body.get("filterArn"):
        raise InvalidInput("Action filters are not supported by local_personalize")
    user_id = body.get("userId")
    candidates = await service.db(actions.available, service.store, live.dataset_group_arn, live.model.item_ids,
                                  user_id)
    found = live.model.recommend(live.user(user_id) if user_id else None, None,
                                 body.get("numResults", actions.DEFAULT_RESULTS), candidates=candidates)
    return {"actionList": [{"actionId": rec.item_id, "score": rec.score} for rec in found],
            "recommendationId": recommendation_id()}


HANDLERS = {"GetRecommendations": get_recommendations, "GetPersonalizedRanking": get_personalized_ranking,
            "GetActionRecommendations": get_action_recommendations}
