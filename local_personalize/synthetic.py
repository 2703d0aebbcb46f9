"""synthetic_shop's draw as recipes see it (TrainingData), for the recipe unit tests and the training bench.

No generation here: `generate` draws with synthetic_shop.generate and hands its arrays over, with the names the
recipe tests use (a genre is a "topic"). Users come from synthetic_shop, which never imports this package.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import synthetic_shop
from local_personalize.recipes.base import TrainingData

START_TS = float(synthetic_shop.EPOCH)


@dataclass
class SyntheticShop:
    """The generated data plus the planted truth a test can check recommendations against."""

    data: TrainingData
    user_topic: np.ndarray  # favourite genre per user index
    user_second_topic: np.ndarray  # the genre of the user's other events
    item_topic: np.ndarray  # genre per item index


def generate(num_users: int = 1000, num_items: int = 200, num_interactions: int = 20_000, num_topics: int = 4,
             in_topic_share: float = 0.9, span_days: float = 90.0, event_types: tuple[str, ...] = ("click",),
             unique_pairs: bool = False, seed: int = 0) -> SyntheticShop:
    """Interactions of `num_users` users over `num_items` items, ids "u<index>" / "i<index>".

    `in_topic_share` of a user's events fall in their favourite genre, the rest in their second one. With two
    `event_types`, half the events are the second (synthetic_shop's purchases).
    """
    if len(event_types) not in (1, 2):
        raise ValueError("event_types: one type, or two (the second marks purchases)")
    shop = synthetic_shop.generate(num_users, num_items, num_interactions, num_genres=num_topics,
                                   favourite_share=in_topic_share, purchase_share=0.5 if len(event_types) == 2 else 0.0,
                                   span_days=span_days, unique_pairs=unique_pairs, seed=seed)
    data = TrainingData(
        user_ids=[shop.user_id(u) for u in range(num_users)],
        item_ids=[shop.item_id(i) for i in range(num_items)],
        user_index=shop.users,
        item_index=shop.items,
        timestamp=shop.timestamps.astype(np.float64),
        event_type=shop.purchased.astype(np.int16),
        event_types=list(event_types),
    )
    return SyntheticShop(data, shop.user_genre, shop.user_second_genre, shop.item_genre)
