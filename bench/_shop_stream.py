"""A shop's clickstream as Segment E-commerce v2 `track` messages (~1 KB each, as analytics.js sends them).

Visitors browse in sessions of 8–40 events (by default); `concurrent_sessions` of them are active at once and their
events interleave in the stream, the way a topic fills while many people shop. A third of the devices
belong to known customers: some are logged in from the start, some log in part way through a session
(anonymous → identified, the case the identity stage stitches). Messages are keyed by anonymousId, as
Segment's Kafka destination keys them, so one device's events stay in one partition and in order.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson

PRODUCT_EVENTS = ("Product Viewed", "Product Clicked", "Product Added", "Product Removed", "Product Added to Wishlist")
# Event name → weight within a session; Checkout Started is not an interaction (skipped by the mapping),
# Product List Viewed gives the next interaction its impression (no interaction of its own).
_MIX = (("Product Viewed", 50), ("Product Clicked", 14), ("Product List Viewed", 8), ("Product Added", 10),
        ("Product Removed", 3), ("Product Added to Wishlist", 5), ("Checkout Started", 5), ("Order Completed", 5))
_NAMES = [name for name, weight in _MIX for _ in range(weight)]
_CATEGORIES = ("shoes", "hats", "bags", "coats", "shirts", "socks", "belts", "gloves")
_BRANDS = ("acme", "globex", "initech", "umbrella", "hooli")
_USER_AGENT = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
               "Chrome/124.0.0.0 Safari/537.36")


@dataclass(eq=False)
class _Session:
    device: int
    events_left: int
    user: str | None
    login_after: int | None  # events before the visitor logs in (None: stays as it started)
    page: int = 0
    last_list: list[str] = field(default_factory=list)


@dataclass
class ShopStream:
    """The messages (key, value) and how many PutEvents interactions the default mapping makes of them.

    `fewest_calls` is the stream's own floor: PutEvents carries ≤ 10 events of one (sessionId, userId)
    (docs/reference/personalize-api.md#putevents), so a client that gathered every visit's events perfectly would still
    need one call per started ten, per visit and per user id the visit had (before and after a login).
    """

    messages: list[tuple[bytes, bytes]]
    interactions: int
    sessions: int
    fewest_calls: int

    @property
    def mean_bytes(self) -> float:
        return sum(len(value) for _, value in self.messages) / len(self.messages)


def shop_stream(count: int, *, concurrent_sessions: int = 400, session_events: tuple[int, int] = (8, 40),
                devices: int = 50_000, seed: int = 11, step_secs: float = 0.05) -> ShopStream:
    """`count` messages, one every `step_secs` of event time ending now, from `concurrent_sessions` sessions."""
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
        message, made = _message(rng, session, n, start_secs + n * step_secs)
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


def _product(rng: random.Random, product: int | None = None) -> dict:
    product = rng.randrange(20_000) if product is None else product
    return {"product_id": f"p-{product:05d}", "sku": f"SKU-{product:05d}-{rng.choice('SMLX')}",
            "category": _CATEGORIES[product % len(_CATEGORIES)], "name": f"Product {product} in a long name",
            "brand": _BRANDS[product % len(_BRANDS)], "variant": rng.choice(("red", "blue", "black", "white")),
            "price": round(rng.uniform(4, 240), 2), "quantity": 1, "coupon": None, "position": rng.randint(1, 24),
            "url": f"https://shop.example/p/{product}", "image_url": f"https://cdn.shop.example/p/{product}.jpg"}


def _message(rng: random.Random, session: _Session, n: int, at_secs: float) -> tuple[dict, int]:
    """One track message of the session and the number of interactions it maps to."""
    if session.login_after is not None:
        session.login_after -= 1
        if session.login_after == 0:
            session.user = f"customer-{session.device}"
    session.page += 1
    at = datetime.fromtimestamp(at_secs, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    name = rng.choice(_NAMES)
    made = 1
    if name == "Product List Viewed":
        products = [_product(rng) for _ in range(8)]
        session.last_list = [p["product_id"] for p in products]
        properties = {"list_id": "search-results", "category": products[0]["category"],
                      "products": [{"product_id": p["product_id"], "position": i + 1} for i, p in enumerate(products)]}
        made = 0
    elif name == "Order Completed":
        lines = [_product(rng) for _ in range(rng.randint(1, 3))]
        properties = {"order_id": f"order-{n}", "checkout_id": f"checkout-{n}", "currency": "EUR",
                      "total": round(sum(p["price"] for p in lines), 2), "products": lines}
        made = len(lines)
    elif name == "Checkout Started":
        properties = {"order_id": f"order-{n}", "currency": "EUR", "value": round(rng.uniform(10, 300), 2)}
        made = 0
    else:
        # After a list view, most clicks are on one of its products (what the impression is about).
        listed = session.last_list and rng.random() < 0.6
        properties = _product(rng, int(rng.choice(session.last_list)[2:]) if listed else None)
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
