"""Which actions GetActionRecommendations may offer a user: not expired, and not taken again too soon.

An action with EXPIRATION_TIMESTAMP in the past is never recommended; one the user TAKEN is left out
for REPEAT_FREQUENCY days, or for good when the action has no REPEAT_FREQUENCY
(https://docs.aws.amazon.com/personalize/latest/dg/actions-datasets.html).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from local_personalize.filters.context import field_value, number
from local_personalize.ingest import group_dataset
from local_personalize.store import Store

DEFAULT_RESULTS = 5  # GetActionRecommendations numResults default (API_RS_GetActionRecommendations)
DAY_SECS = 86_400


def available(store: Store, dataset_group_arn: str, action_ids: Sequence[str], user_id: str | None) -> np.ndarray:
    """Bool mask over `action_ids` of the actions the user may be offered now (runs on the store thread)."""
    now = time.time()
    actions_dataset = group_dataset(store, dataset_group_arn, "ACTIONS")
    records = store.records(actions_dataset.arn) if actions_dataset else {}
    last_taken: dict[str, float] = {}
    history = group_dataset(store, dataset_group_arn, "ACTION_INTERACTIONS")
    if user_id and history is not None:
        for action_id, event_type, ts, _value in store.user_interactions(history.arn, user_id):
            if (event_type or "").upper() == "TAKEN":
                last_taken.setdefault(action_id, ts)  # newest first
    mask = np.ones(len(action_ids), dtype=bool)
    for index, action_id in enumerate(action_ids):
        row = records.get(action_id) or {}
        expires = number(field_value(row, "EXPIRATION_TIMESTAMP"))
        if expires == expires and expires < now:  # NaN (no expiry) compares unequal to itself
            mask[index] = False
        elif action_id in last_taken:
            repeat_days = number(field_value(row, "REPEAT_FREQUENCY"))
            mask[index] = repeat_days == repeat_days and now - last_taken[action_id] >= repeat_days * DAY_SECS
    return mask
