"""The one synthetic shop of tests, benchmarks and `hub demo`: a catalogue with genre structure and shoppers with tastes.

One draw (`generate`), several views of it: parallel arrays and import CSV files for local_personalize,
MovieLens-like ratings and movies for AWS's notebooks, and a Segment clickstream (`Storefront` for the demo's
sessions, `segment_stream` for the streaming benches). The planted structure is the same in every view:
each user has a favourite genre (most of their events) and a second one; within a genre, item popularity is
Zipf-like; a share of events are purchases. It imports no project package, so every layer and
local_personalize may use it (tests/conformance/test_layers.py). The arrays are drawn with numpy, vectorised,
so millions of interactions take seconds; the Segment views draw message by message from the same rules.
"""

from __future__ import annotations

import csv
import io
import random
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any

import numpy as np
import orjson

EPOCH = 1_700_000_000  # first synthetic timestamp (2023-11-14), seconds
BRANDS = ("Northpeak", "Alto", "Riverline", "Summit & Co", "Kestrel", "Fjordia", "Ember", "Vela")
MODELS = ("Classic", "Lite", "Pro", "Trail", "Max", "Air", "Evo", "Edge")
# The demo's outdoor shop: category → product names.
OUTDOOR_CATEGORIES = {
    "running": ("Trail Shoe", "Road Shoe", "Running Vest", "Split Shorts", "Hydration Belt"),
    "camping": ("Tent", "Sleeping Bag", "Camp Stove", "Headlamp", "Sleeping Pad"),
    "cycling": ("Helmet", "Bike Light", "Saddle Bag", "Cycling Jersey", "Bike Pump"),
    "climbing": ("Harness", "Chalk Bag", "Climbing Shoe", "Belay Device", "Rope"),
    "yoga": ("Yoga Mat", "Yoga Block", "Yoga Strap", "Meditation Cushion", "Leggings"),
    "swimming": ("Goggles", "Swim Cap", "Kickboard", "Swimsuit", "Pull Buoy"),
    "fishing": ("Fishing Rod", "Reel", "Tackle Box", "Waders", "Fly Set"),
    "skiing": ("Ski Goggles", "Ski Gloves", "Ski Helmet", "Base Layer", "Ski Socks"),
}
# MovieLens's genres (ml-latest-small README), for the notebooks that filter on them.
MOVIE_GENRES = ("Action", "Adventure", "Animation", "Children", "Comedy", "Crime", "Documentary", "Drama", "Fantasy",
                "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western")

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


def csv_bytes(header: list[str], rows) -> bytes:
    """A CSV file (header, then rows) as dataset imports read it."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode()


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
    genre_names: tuple[str, ...] = ()
    favourite_share: float = 0.8
    zipf_exponent: float = 1.1
    seed: int = 7

    def user_id(self, index: int) -> str:
        return f"u{index}"

    def item_id(self, index: int) -> str:
        return f"i{index}"

    def genre_name(self, genre: int) -> str:
        return self.genre_names[genre] if self.genre_names else f"genre{genre}"

    def items_of_genre(self, genre: int) -> np.ndarray:
        return np.flatnonzero(self.item_genre == genre)

    # -- CSV views (dataset imports) --

    def interactions_csv(self, click: str = "click", purchase: str = "purchase") -> bytes:
        out = io.StringIO()
        out.write("USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE\n")
        kinds = np.where(self.purchased, purchase, click)
        for user, item, ts, kind in zip(self.users.tolist(), self.items.tolist(), self.timestamps.tolist(), kinds):
            out.write(f"u{user},i{item},{ts},{kind}\n")
        return out.getvalue().encode()

    def items_csv(self) -> bytes:
        return csv_bytes(["ITEM_ID", "GENRE", "CREATION_TIMESTAMP"],
                         ([self.item_id(item), self.genre_name(int(self.item_genre[item])), int(self.item_created[item])]
                          for item in range(self.num_items)))

    def users_csv(self) -> bytes:
        out = io.StringIO()
        out.write("USER_ID,SEGMENT\n")
        for user in range(self.num_users):
            out.write(f"{self.user_id(user)},{self.genre_name(int(self.user_genre[user]))}\n")
        return out.getvalue().encode()

    # -- MovieLens-like view (AWS's notebooks read ml-100k / ml-latest-small) --

    @cached_property
    def _extras(self) -> dict[str, np.ndarray]:
        """Per-item attributes and per-event stars from their own stream, so the arrays above never change."""
        rng = np.random.default_rng([self.seed, 1])
        n = len(self.users)
        favourite = self.item_genre[self.items] == self.user_genre[self.users]
        stars = np.where(favourite, rng.integers(3, 6, n), rng.integers(1, 5, n))
        return {"price": np.round(rng.uniform(8, 320, self.num_items), 2),
                "year": rng.integers(1950, 2021, self.num_items),
                "also_genre": np.where(rng.random(self.num_items) < 0.3,
                                       rng.integers(0, self.num_genres, self.num_items), -1),
                "stars": np.where(self.purchased, 5, stars)}

    def ratings(self) -> list[tuple[int, int, int, int]]:
        """(userId, movieId, rating 1–5, timestamp) per interaction, ids from 1 as in MovieLens; users rate their
        favourite genre 3–5 stars, other genres 1–4, purchases 5."""
        return list(zip((self.users + 1).tolist(), (self.items + 1).tolist(), self._extras["stars"].tolist(),
                        self.timestamps.tolist()))

    def movies(self) -> list[tuple[int, str, str]]:
        """(movieId, "Title (year)", "Genre|Genre") per item, as MovieLens's movies.csv."""
        extras = self._extras
        rows = []
        for item in range(self.num_items):
            genres = [self.genre_name(int(self.item_genre[item]))]
            if extras["also_genre"][item] >= 0 and extras["also_genre"][item] != self.item_genre[item]:
                genres.append(self.genre_name(int(extras["also_genre"][item])))
            rows.append((item + 1, f"Movie {item + 1} ({extras['year'][item]})", "|".join(genres)))
        return rows

    # -- the shop-front view: products and the per-event taste rule the Segment views draw from --

    def product(self, item: int) -> Product:
        genre = int(self.item_genre[item])
        category = self.genre_name(genre)
        names = OUTDOOR_CATEGORIES.get(category)
        # (brand, kind, model) from the index's mixed-radix digits (8 × 5 × 8): no two of the first 320 items share
        # a name, and the brand turns fastest so the popular low indices show every brand, not one.
        brand = BRANDS[item % len(BRANDS)]
        kind = names[item // len(BRANDS) % len(names)] if names else f"{category.title()} item"
        model = MODELS[item // (len(BRANDS) * 5) % len(MODELS)]
        return Product(self.item_id(item), f"{brand} {kind} {model}", category, float(self._extras["price"][item]),
                       brand)

    @cached_property
    def _genre_members(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per genre: its items and their cumulative Zipf weights (the vectorised draw's weights)."""
        out = []
        for genre in range(self.num_genres):
            members = self.items_of_genre(genre)
            weights = 1.0 / np.arange(1, len(members) + 1) ** self.zipf_exponent
            out.append((members, np.cumsum(weights) / weights.sum()))
        return out

    def pick_item(self, rng: random.Random, genre: int) -> int:
        """One item of `genre`, popular ones more often (the same weights as `generate`)."""
        members, cumulative = self._genre_members[genre]
        if len(members) == 0:
            return rng.randrange(self.num_items)
        return int(members[min(int(np.searchsorted(cumulative, rng.random())), len(members) - 1)])

    def pick_genre(self, rng: random.Random, user: int) -> int:
        """The genre of the user's next event: the favourite, else the second."""
        return int(self.user_genre[user] if rng.random() < self.favourite_share else self.user_second_genre[user])


def generate(num_users: int, num_items: int, num_interactions: int, *, num_genres: int = 10,
             favourite_share: float = 0.8, purchase_share: float = 0.1, zipf_exponent: float = 1.1,
             span_days: float = 90.0, unique_pairs: bool = False, genre_names: tuple[str, ...] = (),
             seed: int = 7) -> SyntheticShop:
    """Draw a shop; every user gets at least a few events so the minimum-data gates are met.

    `unique_pairs` keeps only each (user, item) pair's first interaction (ratings, purchases of durables), so
    fewer than `num_interactions` remain; clickstreams repeat pairs.
    """
    if genre_names:
        num_genres = len(genre_names)
    rng = np.random.default_rng(seed)
    item_genre = rng.integers(0, num_genres, num_items)
    item_created = EPOCH - rng.integers(0, 365 * 86_400, num_items)
    user_genre = rng.integers(0, num_genres, num_users)
    user_second_genre = (user_genre + rng.integers(1, max(2, num_genres), num_users)) % num_genres
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
    timestamps = EPOCH + np.sort(rng.integers(0, int(span_days * 86_400), len(users)))
    purchased = rng.random(len(users)) < purchase_share
    if unique_pairs:
        _, first = np.unique(users * num_items + items, return_index=True)
        first.sort()
        users, items, timestamps, purchased = users[first], items[first], timestamps[first], purchased[first]
    return SyntheticShop(num_users, num_items, num_genres, item_genre, item_created, user_genre, user_second_genre,
                         users.astype(np.int32), items.astype(np.int32), timestamps.astype(np.int64), purchased,
                         tuple(genre_names), favourite_share, zipf_exponent, seed)


# -- the Segment views --

@dataclass(frozen=True)
class Product:
    product_id: str
    name: str
    category: str
    price: float
    brand: str

    @property
    def url(self) -> str:
        return f"https://shop.example/p/{self.product_id}"

    @property
    def image(self) -> str:
        return f"https://shop.example/img/{self.product_id}.jpg"

    def properties(self, **extra: Any) -> dict[str, Any]:
        """Segment E-commerce v2 product properties."""
        return {"product_id": self.product_id, "sku": f"SKU-{self.product_id}", "name": self.name,
                "category": self.category, "brand": self.brand, "price": self.price, "url": self.url,
                "image_url": self.image, **extra}


@dataclass
class Shopper:
    user_id: str
    email: str
    favourites: list[str]  # the user's favourite and second genre
    index: int
    devices: list[str] = field(default_factory=list)  # one anonymousId per device


class Storefront:
    """The shop as Segment sees it: visitors who browse anonymously, log in, add to cart and buy.

    Deterministic for a seed: the same catalogue, shoppers and clickstream every run.
    """

    def __init__(self, *, users: int = 2000, items: int = 320, days: int = 30, seed: int = 7,
                 now: datetime | None = None):
        self.shop = generate(users, items, 0, genre_names=tuple(OUTDOOR_CATEGORIES), seed=seed)
        self.rng = random.Random(seed)
        self.now = now or datetime.now(UTC).replace(microsecond=0)
        self.days = days
        self.products = [self.shop.product(item) for item in range(items)]
        self.shoppers = [
            Shopper(f"user-{n:05d}", f"user-{n:05d}@shop.example",
                    [self.shop.genre_name(int(self.shop.user_genre[n])),
                     self.shop.genre_name(int(self.shop.user_second_genre[n]))], n,
                    [str(uuid.UUID(int=self.rng.getrandbits(128))) for _ in range(self.rng.choice([1, 1, 2]))])
            for n in range(users)
        ]

    def catalog_events(self) -> list[dict[str, Any]]:
        """A `Product Created` for every product: the catalog reaches PutItems through the same webhook."""
        start = self.now - timedelta(days=self.days + 1)
        return [_segment(self.rng, "track", "Product Created", start, user_id="catalog-bot",
                         properties=p.properties(available=True)) for p in self.products]

    def clickstream(self) -> list[dict[str, Any]]:
        """Every shopper's sessions, in time order."""
        messages: list[dict[str, Any]] = []
        for shopper in self.shoppers:
            for _ in range(self.rng.choice([1, 2, 2, 3, 4])):
                start = self.now - timedelta(days=self.rng.uniform(0.1, self.days))
                messages += self.session(shopper, start)
        messages.sort(key=lambda m: m["timestamp"])
        return messages

    def session(self, shopper: Shopper, start: datetime, *, category: str | None = None,
                log_in: bool | None = None) -> list[dict[str, Any]]:
        """One visit: anonymous browsing, maybe a login, views, cart adds, maybe an order."""
        rng, t = self.rng, start
        anonymous_id = rng.choice(shopper.devices)
        logged_in = False
        log_in = rng.random() < 0.75 if log_in is None else log_in
        login_after = rng.randint(1, 3)
        cart: list[Product] = []
        out: list[dict[str, Any]] = []
        for step in range(rng.randint(3, 9)):
            t += timedelta(seconds=rng.uniform(5, 90))
            if log_in and not logged_in and step == login_after:
                out.append(_segment(rng, "identify", None, t, user_id=shopper.user_id, anonymous_id=anonymous_id,
                                    traits={"email": shopper.email, "favourite_category": shopper.favourites[0]}))
                logged_in = True
            user = shopper.user_id if logged_in else None
            genre = (self.shop.genre_names.index(category) if category
                     else self.shop.pick_genre(rng, shopper.index))
            product = self.products[self.shop.pick_item(rng, genre)]
            out.append(_segment(rng, "track", "Product Viewed", t, user_id=user, anonymous_id=anonymous_id,
                                properties=product.properties()))
            if rng.random() < 0.3:
                cart.append(product)
                out.append(_segment(rng, "track", "Product Added", t + timedelta(seconds=3), user_id=user,
                                    anonymous_id=anonymous_id, properties=product.properties(quantity=1)))
        if cart and logged_in and rng.random() < 0.6:
            t += timedelta(seconds=rng.uniform(20, 120))
            out.append(_segment(rng, "track", "Order Completed", t, user_id=shopper.user_id, anonymous_id=anonymous_id,
                                properties={"order_id": f"o-{rng.getrandbits(40):x}", "currency": "EUR",
                                            "revenue": round(sum(p.price for p in cart), 2),
                                            "products": [p.properties(quantity=1) for p in cart]}))
        return out


def _segment(rng: random.Random, call: str, event: str | None, at: datetime, *, user_id: str | None = None,
             anonymous_id: str | None = None, **fields: Any) -> dict[str, Any]:
    message: dict[str, Any] = {"type": call, "messageId": str(uuid.UUID(int=rng.getrandbits(128))),
                               "timestamp": at.isoformat().replace("+00:00", "Z")}
    if event:
        message["event"] = event
    if user_id:
        message["userId"] = user_id
    if anonymous_id:
        message["anonymousId"] = anonymous_id
    message.update(fields)
    return message


def batches(messages: list[dict[str, Any]], size: int = 100) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(messages), size):
        yield messages[start:start + size]


# -- the streaming benches' view: many concurrent sessions, interleaved, as a Kafka topic fills --

# Event name → weight within a session; Checkout Started is not an interaction (skipped by the mapping),
# Product List Viewed gives the next interaction its impression (no interaction of its own).
_MIX = (("Product Viewed", 50), ("Product Clicked", 14), ("Product List Viewed", 8), ("Product Added", 10),
        ("Product Removed", 3), ("Product Added to Wishlist", 5), ("Checkout Started", 5), ("Order Completed", 5))
_NAMES = [name for name, weight in _MIX for _ in range(weight)]
_USER_AGENT = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
               "Chrome/124.0.0.0 Safari/537.36")


@dataclass(eq=False)
class _Session:
    device: int
    events_left: int
    user: str | None
    login_after: int | None  # events before the visitor logs in (None: stays as it started)
    page: int = 0
    last_list: list[int] = field(default_factory=list)


@dataclass
class ShopStream:
    """The messages (key, value) and how many PutEvents interactions the default mapping makes of them.

    `fewest_calls` is the stream's own floor: PutEvents carries ≤ 10 events of one (sessionId, userId)
    (docs/reference/personalize-api.md#putevents), so a client that gathered every visit's events perfectly
    would still need one call per started ten, per visit and per user id the visit had (before and after a login).
    """

    messages: list[tuple[bytes, bytes]]
    interactions: int
    sessions: int
    fewest_calls: int

    @property
    def mean_bytes(self) -> float:
        return sum(len(value) for _, value in self.messages) / len(self.messages)


def segment_stream(count: int, *, concurrent_sessions: int = 400, session_events: tuple[int, int] = (8, 40),
                   devices: int = 50_000, items: int = 20_000, seed: int = 11, step_secs: float = 0.05) -> ShopStream:
    """`count` Segment E-commerce v2 `track` messages (~1 KB each, as analytics.js sends them), one every
    `step_secs` of event time ending now, from `concurrent_sessions` interleaved sessions of 8–40 events.

    Each device is one user of the shop (its tastes pick the products); a third of the devices belong to known
    customers: some logged in from the start, some log in part way through a session (anonymous → identified,
    the case the identity stage stitches). Messages are keyed by anonymousId, as Segment's Kafka destination
    keys them, so one device's events stay in one partition and in order.
    """
    shop = generate(devices, items, 0, num_genres=8, seed=seed)
    rng = random.Random(seed)
    start_secs = time.time() - count * step_secs  # a backlog of the recent past, as a lagging consumer sees
    active: list[_Session] = []
    messages: list[tuple[bytes, bytes]] = []
    interactions = sessions = 0
    per_call_key: dict[tuple[_Session, str | None], int] = {}
    for n in range(count):
        while len(active) < concurrent_sessions:
            active.append(_new_session(rng, devices, session_events))
            sessions += 1
        slot = rng.randrange(len(active))
        session = active[slot]
        message, made = _stream_message(shop, rng, session, n, start_secs + n * step_secs)
        interactions += made
        if made:
            key = (session, session.user)
            per_call_key[key] = per_call_key.get(key, 0) + made
        messages.append((f"anon-{session.device}".encode(), orjson.dumps(message)))
        session.events_left -= 1
        if session.events_left == 0:
            active[slot] = active[-1]
            active.pop()
    return ShopStream(messages, interactions, sessions, sum(-(-n // 10) for n in per_call_key.values()))


def _new_session(rng: random.Random, devices: int, session_events: tuple[int, int]) -> _Session:
    device = rng.randrange(devices)
    known = device % 3 == 0
    logged_in = known and rng.random() < 0.5
    length = rng.randint(*session_events)
    login_after = rng.randint(2, length - 1) if known and not logged_in and rng.random() < 0.5 else None
    return _Session(device, length, f"customer-{device}" if logged_in else None, login_after)


def _stream_product(shop: SyntheticShop, rng: random.Random, item: int) -> dict:
    return shop.product(item).properties(sku=f"SKU-{item:05d}-{rng.choice('SMLX')}",
                                         variant=rng.choice(("red", "blue", "black", "white")), quantity=1,
                                         coupon=None, position=rng.randint(1, 24))


def _stream_message(shop: SyntheticShop, rng: random.Random, session: _Session, n: int,
                    at_secs: float) -> tuple[dict, int]:
    """One track message of the session and the number of interactions it maps to."""
    if session.login_after is not None:
        session.login_after -= 1
        if session.login_after == 0:
            session.user = f"customer-{session.device}"
    session.page += 1
    at = datetime.fromtimestamp(at_secs, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    name = rng.choice(_NAMES)
    made = 1

    def pick() -> int:
        return shop.pick_item(rng, shop.pick_genre(rng, session.device))

    if name == "Product List Viewed":
        listed = [pick() for _ in range(8)]
        session.last_list = listed
        properties = {"list_id": "search-results", "category": shop.genre_name(int(shop.item_genre[listed[0]])),
                      "products": [{"product_id": shop.item_id(item), "position": i + 1}
                                   for i, item in enumerate(listed)]}
        made = 0
    elif name == "Order Completed":
        lines = [_stream_product(shop, rng, pick()) for _ in range(rng.randint(1, 3))]
        properties = {"order_id": f"order-{n}", "checkout_id": f"checkout-{n}", "currency": "EUR",
                      "total": round(sum(p["price"] for p in lines), 2), "products": lines}
        made = len(lines)
    elif name == "Checkout Started":
        properties = {"order_id": f"order-{n}", "currency": "EUR", "value": round(rng.uniform(10, 300), 2)}
        made = 0
    else:
        # After a list view, most clicks are on one of its products (what the impression is about).
        listed = session.last_list and rng.random() < 0.6
        properties = _stream_product(shop, rng, rng.choice(session.last_list) if listed else pick())
        properties["currency"] = "EUR"
    message = {
        "type": "track", "event": name, "messageId": f"ajs-next-{n:010d}-{session.device}",
        "anonymousId": f"anon-{session.device}", "properties": properties,
        "context": {"library": {"name": "analytics.js", "version": "next-1.70.0"}, "locale": "en-GB",
                    "page": {"path": f"/p/{session.page}", "referrer": "https://shop.example/",
                             "title": "Shop", "url": f"https://shop.example/p/{session.page}"},
                    "userAgent": _USER_AGENT, "ip": f"10.{session.device % 250}.{session.device % 199}.7"},
        "timestamp": at, "originalTimestamp": at, "sentAt": at, "receivedAt": at,
    }
    if session.user is not None:
        message["userId"] = session.user
    return message, made
