"""The `recommendations:` config section: the Connected Content endpoint, its store and its fallbacks."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from connectors.destinations.personalize.records import is_recommender_arn
from connectors.destinations.recommendation_store.store import DEFAULT_PREFIX
from hub.secret import Secret

# GetRecommendations numResults: default 25, max 500; 50 with metadataColumns
# (docs/reference/personalize-api.md#getrecommendations).
MAX_NUM_RESULTS = 500
MAX_NUM_RESULTS_WITH_METADATA = 50
# Braze inserts Connected Content only when the answer comes within 2 s (docs/reference/braze.md#connected-content).
BRAZE_DEADLINE_SECS = 2.0


def runtime_target(arn: str) -> dict[str, str]:
    """The GetRecommendations member naming what answers: `recommenderArn` or `campaignArn`."""
    return {"recommenderArn": arn} if is_recommender_arn(arn) else {"campaignArn": arn}


class RecommendationsConfig(BaseModel):
    """`GET /recommendations?user_id=…` for Braze Connected Content and other templates.

    Answers from the store batch exports fill (a `recommendation_store` destination in a job), else
    live GetRecommendations on `campaign_arn` (cached in Redis for `cache_ttl_secs`), else popular
    items from `popular_campaign_arn`; an unknown user with no fallback gets 200 and an empty list.
    Either may name a campaign or a recommender (a domain dataset group's use case).
    """

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(False, description="Serve the endpoint on the hub's HTTP server.")
    path: str = Field("/recommendations", pattern=r"^/[A-Za-z0-9/_-]*$", description="URL path of the endpoint.")
    redis_url: str | None = Field(None, description="Redis holding the store and the live cache, e.g. ${REDIS_URL}.")
    key_prefix: str = Field(DEFAULT_PREFIX, description="Key prefix; the same as the exporting destination's.")
    redis_max_connections: int = Field(
        32, ge=1, le=1024, description="Redis connections the endpoint opens at most; requests beyond wait for one. "
        "Braze may open thousands of connections at once (docs/reference/braze.md#connected-content): they must not become Redis's.",
    )
    api_keys: list[Secret] = Field(
        default_factory=list,
        description="Accepted keys, sent as `X-Api-Key: …` or `Authorization: Bearer …`; empty: no auth. "
        "Keep keys out of the URL: Braze logs request URLs (docs/reference/braze.md#connected-content).",
    )
    default_num_results: int = Field(10, ge=1, le=MAX_NUM_RESULTS, description="Items when num_results is absent.")
    max_num_results: int = Field(100, ge=1, le=MAX_NUM_RESULTS, description="Largest num_results accepted.")
    campaign_arn: str | None = Field(
        None, description="Live fallback for users missing from the store: a campaign or a recommender ARN.")
    popular_campaign_arn: str | None = Field(
        None, description="Popularity-Count (or Trending-Now) campaign, or a most-popular recommender, for users "
        "nothing else knows."
    )
    metadata_columns: list[str] = Field(
        default_factory=list, description="Items columns Personalize returns with each live item (GetRecommendations "
        "metadataColumns; the campaign or recommender needs enableMetadataWithRecommendations). At most "
        f"{MAX_NUM_RESULTS_WITH_METADATA} items a call then (docs/reference/personalize-api.md#getrecommendations).")
    filters: dict[str, str] = Field(
        default_factory=dict,
        description="`filter=` names → Personalize filter ARNs. The store is read under the same name (the "
        "export's variant); live calls pass the ARN.",
    )
    cache_ttl_secs: float = Field(300.0, gt=0, description="How long a live answer is reused.")
    cache_max_age_secs: int = Field(
        300, ge=0, description="Cache-Control max-age sent to clients; Braze caches GET ≥ 5 min anyway (docs/reference/braze.md#connected-content)."
    )
    live_timeout_secs: float = Field(
        1.5, gt=0, lt=BRAZE_DEADLINE_SECS, description="Give up on a live call after this long (Braze waits < 2 s)."
    )

    @model_validator(mode="after")
    def _complete(self) -> RecommendationsConfig:
        if self.enabled and not self.redis_url:
            raise ValueError("recommendations.enabled needs redis_url")
        if self.default_num_results > self.max_num_results:
            raise ValueError("default_num_results exceeds max_num_results")
        if self.metadata_columns and self.max_num_results > MAX_NUM_RESULTS_WITH_METADATA:
            raise ValueError(f"with metadata_columns Personalize returns at most {MAX_NUM_RESULTS_WITH_METADATA} "
                             f"items: max_num_results {self.max_num_results} is too many "
                             "(docs/reference/personalize-api.md#getrecommendations)")
        return self
