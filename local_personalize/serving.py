"""Live models: the loaded solution versions that campaigns serve, kept current with PutEvents.

A version's model is loaded from its file, then the PutEvents rows newer than its training cut-off are
replayed into it (`Model.observe`), so a restart loses no fold-in. Events that arrive while it loads are
held and applied after the replay unless the replay already saw them (by store sequence number).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from local_personalize.context import context_path, load_lifts
from local_personalize.filters import ItemTable
from local_personalize.ingest import Ingested, group_dataset
from local_personalize.recipes import DomainRecipe, Exploration, Model, RecipeType, load_model, recipe_for_arn
from local_personalize.store import Resource, Store

if TYPE_CHECKING:
    from local_personalize.service import Service

logger = logging.getLogger(__name__)


@dataclass
class LiveModel:
    """One loaded solution version and the catalogue views its requests need."""

    version_arn: str
    model: Model
    dataset_group_arn: str
    datasets: dict[str, str]  # dataset type → dataset ARN
    items: dict[str, dict[str, Any]] = field(default_factory=dict)
    item_table: ItemTable | None = None
    items_stale: bool = True
    context_lifts: dict[str, np.ndarray] = field(default_factory=dict)  # "FIELD=value" → log-lift (context.py)
    _positions: dict[str, int] | None = None
    trained_at: float = 0.0
    # Users a data deletion job removed after this model was trained → the fresh id the model knows them
    # by from then on: what it learnt about them is not served, events they send afterwards are.
    deleted_users: dict[str, str] = field(default_factory=dict)

    def model_positions(self) -> dict[str, int]:
        """Item id → position in the model's item_ids (built once, rebuilt when the catalogue grew)."""
        if self._positions is None or len(self._positions) != len(self.model.item_ids):
            self._positions = {item_id: i for i, item_id in enumerate(self.model.item_ids)}
        return self._positions

    def user(self, user_id: str | None) -> str | None:
        """The id to ask the model about for `user_id`."""
        return self.deleted_users.get(user_id, user_id) if user_id is not None else None

    def forget(self, user_ids: set[str]) -> None:
        for user_id in user_ids - self.deleted_users.keys():
            self.deleted_users[user_id] = f"deleted-user:{uuid.uuid4()}"

    def observe(self, user_id: str, item_id: str, timestamp: float, event_type: str | None,
                event_value: float | None = None) -> None:
        if self.model.recipe_type == RecipeType.PERSONALIZED_ACTIONS:
            return  # item events say nothing about actions; action models learn from their own dataset
        self.model.observe(self.user(user_id), item_id, timestamp, event_type, event_value)


@dataclass
class LiveCampaign:
    """An ACTIVE campaign: the live model it serves and its campaignConfig."""

    arn: str
    live: LiveModel
    exploration: Exploration
    metadata_enabled: bool
    use_case: type[DomainRecipe] | None = None  # set for recommenders: the domain use case served


def _load(store: Store, settings, version_arn: str) -> tuple[Resource, dict[str, str], list[tuple], int, set[str]]:
    """Store-thread part of loading: version, datasets, the events to replay and users deleted since training."""
    version = store.get_resource(version_arn)
    if version is None:
        raise LookupError(f"Solution version {version_arn} no longer exists")
    group = version.doc["datasetGroupArn"]
    datasets = {kind: dataset.arn for kind in ("INTERACTIONS", "ITEMS", "USERS")
                if (dataset := group_dataset(store, group, kind)) is not None}
    cutoff = version.doc.get("_cutoffSeq", 0)
    replay = store.events_after(datasets["INTERACTIONS"], cutoff) if "INTERACTIONS" in datasets else []
    deleted = store.deleted_users(group, version.created)
    return version, datasets, replay, store.last_interaction_seq(), deleted


def _use_case(recipe_arn: str | None) -> type[DomainRecipe] | None:
    recipe = recipe_for_arn(recipe_arn) if recipe_arn else None
    return recipe if recipe is not None and issubclass(recipe, DomainRecipe) else None


class LiveModels:
    """Every loaded version and ACTIVE campaign of this server."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.versions: dict[str, LiveModel] = {}
        self.campaigns: dict[str, LiveCampaign] = {}
        self._loading: dict[str, asyncio.Future[LiveModel]] = {}
        self._held: dict[str, list[tuple[int, Ingested]]] = {}
        # Versions a campaign is being activated on, and how many: not released meanwhile. Released between its
        # load and the activation resuming, a version would serve that campaign without PutEvents folded in.
        self._activating: Counter[str] = Counter()

    async def version(self, version_arn: str) -> LiveModel:
        """The live model of a version, loading it once however many campaigns ask."""
        if version_arn in self.versions:
            return self.versions[version_arn]
        if version_arn not in self._loading:
            self._loading[version_arn] = asyncio.ensure_future(self._load_version(version_arn))
        try:
            return await asyncio.shield(self._loading[version_arn])
        finally:
            if self._loading.get(version_arn) is not None and self._loading[version_arn].done():
                self._loading.pop(version_arn, None)

    async def _load_version(self, version_arn: str) -> LiveModel:
        self._held[version_arn] = []
        try:
            version, datasets, replay, seen_seq, deleted = await self.service.db(
                _load, self.service.store, self.service.settings, version_arn)
            path = self.service.settings.models_dir / f"{version.doc['_modelId']}.npz"
            model = await asyncio.to_thread(load_model, str(path))
            lifts = await asyncio.to_thread(load_lifts,
                                            context_path(self.service.settings.models_dir, version.doc["_modelId"]))
            live = LiveModel(version_arn, model, version.doc["datasetGroupArn"], datasets, context_lifts=lifts,
                             trained_at=version.created)
            live.forget(deleted)
            for event in replay:
                live.observe(*event)
            for last_seq, ingested in self._held[version_arn]:
                if last_seq > seen_seq:
                    for event in ingested.interactions:
                        live.observe(*event)
            self.versions[version_arn] = live
            # A model is millions of long-lived objects (id maps): freezing them keeps every later full
            # garbage collection from walking them, which showed as 100+ ms pauses in the p99.
            gc.collect()
            gc.freeze()
            logger.info("loaded %s (%s, %d events replayed)", version_arn, model.recipe_name, len(replay))
            return live
        finally:
            self._held.pop(version_arn, None)

    def observe(self, ingested: Ingested) -> None:
        """Fold new PutEvents into every live model of their dataset group (no retraining, docs/reference/personalize-api.md#data-freshness)."""
        if not ingested.interactions:
            return
        for live in self.versions.values():
            if live.dataset_group_arn == ingested.dataset_group_arn:
                for event in ingested.interactions:
                    live.observe(*event)
        for version_arn, held in self._held.items():
            held.append((ingested.last_seq, ingested))

    async def forget_deleted_users(self, dataset_group_arn: str) -> None:
        """A data deletion job finished: the group's live models stop serving what they learnt of those users."""
        for live in list(self.versions.values()):
            if live.dataset_group_arn == dataset_group_arn:
                live.forget(await self.service.db(Store.deleted_users, self.service.store, dataset_group_arn,
                                                  live.trained_at))
                live.items_stale = True

    def records_changed(self, dataset_group_arn: str) -> None:
        """Item metadata changed (PutItems, import): rebuild item tables on next use."""
        for live in self.versions.values():
            if live.dataset_group_arn == dataset_group_arn:
                live.items_stale = True

    async def item_table(self, live: LiveModel) -> ItemTable:
        if live.items_stale or live.item_table is None:
            live.items_stale = False
            dataset = live.datasets.get("ITEMS")
            live.items = await self.service.db(Store.records, self.service.store, dataset) if dataset else {}
            live.item_table = await asyncio.to_thread(ItemTable.from_rows, live.model.item_ids, live.items)
        return live.item_table

    async def activate(self, campaign: dict[str, Any]) -> LiveCampaign:
        """Serve a campaign from its (possibly shared) live model."""
        version_arn = campaign["solutionVersionArn"]
        self._activating[version_arn] += 1
        try:
            live = await self.version(version_arn)
        finally:
            self._activating -= Counter({version_arn: 1})  # drops it at zero
        if live.model.recipe_type == RecipeType.USER_SEGMENTATION:
            raise ValueError(f"{live.model.recipe_name} cannot back a campaign")
        config = campaign.get("campaignConfig") or {}
        recipe_is_v2 = live.model.recipe_name.endswith("-v2")
        state = LiveCampaign(campaign["campaignArn"], live, Exploration.from_config(config.get("itemExplorationConfig")),
                             bool(config.get("enableMetadataWithRecommendations")) or recipe_is_v2,
                             _use_case(campaign.get("recipeArn")))
        self.campaigns[state.arn] = state
        self._release_unused()
        return state

    def drop(self, campaign_arn: str) -> None:
        self.campaigns.pop(campaign_arn, None)
        self._release_unused()

    def _release_unused(self) -> None:
        used = {campaign.live.version_arn for campaign in self.campaigns.values()} | self._activating.keys()
        for version_arn in [arn for arn in self.versions if arn not in used]:
            del self.versions[version_arn]
