"""A synthetic shop as the service sees it: CSV files for imports, with genre structure a recommender can learn.

Used by the integration tests and the serving benchmark. Each user has a favourite genre (most of their
events) and a second one; within a genre, item popularity is Zipf-like; a share of clicks are followed by
a purchase. Generated with numpy, vectorised, so millions of interactions take seconds.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

import numpy as np

EPOCH = 1_700_000_000  # first synthetic timestamp (2023-11-14), seconds


@dataclass
class SyntheticShop:
    """Parallel arrays of interactions plus the catalogue and user attributes."""

    num_users: int
    num_items: int
    num_genres: int
    item_genre: np.ndarray  # genre per item
    item_created: np.ndarray  # CREATION_TIMESTAMP per item
    user_genre: np.ndarray  # favourite genre per user
    user_second_genre: np.ndarray
    users: np.ndarray  # per interaction
    items: np.ndarray
    timestamps: np.ndarray
    purchased: np.ndarray  # bool per interaction: "purchase" rather than "click"

    def user_id(self, index: int) -> str:
        return f"u{index}"

    def item_id(self, index: int) -> str:
        return f"i{index}"

    def genre_name(self, genre: int) -> str:
        return f"genre{genre}"

    def items_of_genre(self, genre: int) -> np.ndarray:
        return np.flatnonzero(self.item_genre == genre)

    def interactions_csv(self) -> bytes:
        out = io.StringIO()
        out.write("USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE\n")
        kinds = np.where(self.purchased, "purchase", "click")
        for user, item, ts, kind in zip(self.users.tolist(), self.items.tolist(), self.timestamps.tolist(), kinds):
            out.write(f"u{user},i{item},{ts},{kind}\n")
        return out.getvalue().encode()

    def items_csv(self) -> bytes:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["ITEM_ID", "GENRE", "CREATION_TIMESTAMP"])
        for item in range(self.num_items):
            writer.writerow([self.item_id(item), self.genre_name(int(self.item_genre[item])),
                             int(self.item_created[item])])
        return out.getvalue().encode()

    def users_csv(self) -> bytes:
        out = io.StringIO()
        out.write("USER_ID,SEGMENT\n")
        for user in range(self.num_users):
            out.write(f"{self.user_id(user)},{self.genre_name(int(self.user_genre[user]))}\n")
        return out.getvalue().encode()


def generate_shop(num_users: int, num_items: int, num_interactions: int, *, num_genres: int = 10,
                  favourite_share: float = 0.8, purchase_share: float = 0.1, zipf_exponent: float = 1.1,
                  seed: int = 7) -> SyntheticShop:
    """Draw a shop; every user gets at least a few events so the minimum-data gates are met."""
    rng = np.random.default_rng(seed)
    item_genre = rng.integers(0, num_genres, num_items)
    item_created = EPOCH - rng.integers(0, 365 * 86_400, num_items)
    user_genre = rng.integers(0, num_genres, num_users)
    user_second_genre = (user_genre + rng.integers(1, num_genres, num_users)) % num_genres
    # Users' activity is skewed too, but nobody has fewer than 3 events.
    activity = rng.pareto(1.5, num_users) + 1.0
    counts = np.maximum(3, np.floor(activity / activity.sum() * num_interactions)).astype(np.int64)
    users = np.repeat(np.arange(num_users), counts)[:num_interactions]
    rng.shuffle(users)
    genres = np.where(rng.random(len(users)) < favourite_share, user_genre[users], user_second_genre[users])
    # Within each genre, item rank r is drawn with probability ∝ 1 / (r + 1)^s.
    items = np.empty(len(users), dtype=np.int64)
    for genre in range(num_genres):
        members = np.flatnonzero(item_genre == genre)
        chosen = np.flatnonzero(genres == genre)
        if len(members) == 0 or len(chosen) == 0:
            continue
        weights = 1.0 / np.arange(1, len(members) + 1) ** zipf_exponent
        items[chosen] = members[rng.choice(len(members), size=len(chosen), p=weights / weights.sum())]
    missing = np.flatnonzero(np.isin(genres, np.unique(item_genre), invert=True))
    items[missing] = rng.integers(0, num_items, len(missing))
    timestamps = EPOCH + np.sort(rng.integers(0, 90 * 86_400, len(users)))
    purchased = rng.random(len(users)) < purchase_share
    return SyntheticShop(num_users, num_items, num_genres, item_genre, item_created, user_genre, user_second_genre,
                         users.astype(np.int32), items.astype(np.int32), timestamps.astype(np.int64), purchased)


INTERACTIONS_SCHEMA = {
    "type": "record", "name": "Interactions", "namespace": "com.amazonaws.personalize.schema", "version": "1.0",
    "fields": [{"name": "USER_ID", "type": "string"}, {"name": "ITEM_ID", "type": "string"},
               {"name": "TIMESTAMP", "type": "long"}, {"name": "EVENT_TYPE", "type": "string"}],
}
ITEMS_SCHEMA = {
    "type": "record", "name": "Items", "namespace": "com.amazonaws.personalize.schema", "version": "1.0",
    "fields": [{"name": "ITEM_ID", "type": "string"}, {"name": "GENRE", "type": "string", "categorical": True},
               {"name": "CREATION_TIMESTAMP", "type": "long"}],
}
USERS_SCHEMA = {
    "type": "record", "name": "Users", "namespace": "com.amazonaws.personalize.schema", "version": "1.0",
    "fields": [{"name": "USER_ID", "type": "string"}, {"name": "SEGMENT", "type": "string", "categorical": True}],
}
