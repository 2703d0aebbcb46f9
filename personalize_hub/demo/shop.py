"""A synthetic online shop: a catalog, and visitors who browse anonymously, log in, add to cart and buy."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

CATEGORIES = {
    "running": ["Trail Shoe", "Road Shoe", "Running Vest", "Split Shorts", "Hydration Belt"],
    "camping": ["Tent", "Sleeping Bag", "Camp Stove", "Headlamp", "Sleeping Pad"],
    "cycling": ["Helmet", "Bike Light", "Saddle Bag", "Cycling Jersey", "Bike Pump"],
    "climbing": ["Harness", "Chalk Bag", "Climbing Shoe", "Belay Device", "Rope"],
    "yoga": ["Yoga Mat", "Yoga Block", "Yoga Strap", "Meditation Cushion", "Leggings"],
    "swimming": ["Goggles", "Swim Cap", "Kickboard", "Swimsuit", "Pull Buoy"],
    "fishing": ["Fishing Rod", "Reel", "Tackle Box", "Waders", "Fly Set"],
    "skiing": ["Ski Goggles", "Ski Gloves", "Ski Helmet", "Base Layer", "Ski Socks"],
}
BRANDS = ["Northpeak", "Alto", "Riverline", "Summit & Co", "Kestrel", "Fjordia", "Ember", "Vela"]
MODELS = ["Classic", "Lite", "Pro", "Trail", "Max", "Air", "Evo", "Edge"]


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
        return {"product_id": self.product_id, "sku": f"SKU-{self.product_id}", "name": self.name,
                "category": self.category, "brand": self.brand, "price": self.price, "url": self.url,
                "image_url": self.image, **extra}


@dataclass
class Shopper:
    user_id: str
    email: str
    favourites: list[str]
    devices: list[str] = field(default_factory=list)  # one anonymousId per device


class Shop:
    """Deterministic for a seed: the same shop, shoppers and clickstream every run."""

    def __init__(self, *, users: int = 2000, products_per_name: int = 8, days: int = 30, seed: int = 7,
                 now: datetime | None = None):
        self.rng = random.Random(seed)
        self.now = now or datetime.now(timezone.utc).replace(microsecond=0)
        self.days = days
        self.products = [
            Product(f"{category[:3]}-{i:02d}-{j}", f"{brand} {name} {MODELS[j % len(MODELS)]}", category,
                    round(self.rng.uniform(8, 320), 2), brand)
            for category, names in CATEGORIES.items() for i, name in enumerate(names) for j in range(products_per_name)
            for brand in [BRANDS[(i + j) % len(BRANDS)]]
        ]
        self.by_category: dict[str, list[Product]] = {}
        for product in self.products:
            self.by_category.setdefault(product.category, []).append(product)
        self.shoppers = [
            Shopper(f"user-{n:05d}", f"user-{n:05d}@shop.example",
                    self.rng.sample(list(CATEGORIES), self.rng.choice([1, 1, 2])),
                    [str(uuid.UUID(int=self.rng.getrandbits(128))) for _ in range(self.rng.choice([1, 1, 2]))])
            for n in range(users)
        ]

    def catalog_events(self) -> list[dict[str, Any]]:
        """A `Product Created` for every product: the catalog reaches PutItems through the same webhook."""
        start = self.now - timedelta(days=self.days + 1)
        return [self._message("track", "Product Created", start, user_id="catalog-bot",
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
                out.append(self._message("identify", None, t, user_id=shopper.user_id, anonymous_id=anonymous_id,
                                         traits={"email": shopper.email, "favourite_category": shopper.favourites[0]}))
                logged_in = True
            user = shopper.user_id if logged_in else None
            wanted = category or (rng.choice(shopper.favourites) if rng.random() < 0.85 else rng.choice(list(CATEGORIES)))
            product = self._pick(wanted)
            out.append(self._message("track", "Product Viewed", t, user_id=user, anonymous_id=anonymous_id,
                                     properties=product.properties()))
            if rng.random() < 0.3:
                cart.append(product)
                out.append(self._message("track", "Product Added", t + timedelta(seconds=3), user_id=user,
                                         anonymous_id=anonymous_id, properties=product.properties(quantity=1)))
        if cart and logged_in and rng.random() < 0.6:
            t += timedelta(seconds=rng.uniform(20, 120))
            out.append(self._message("track", "Order Completed", t, user_id=shopper.user_id, anonymous_id=anonymous_id,
                                     properties={"order_id": f"o-{rng.getrandbits(40):x}", "currency": "EUR",
                                                 "revenue": round(sum(p.price for p in cart), 2),
                                                 "products": [p.properties(quantity=1) for p in cart]}))
        return out

    def _pick(self, category: str) -> Product:
        # A few best sellers per category: popularity is skewed, as in every real shop.
        products = self.by_category[category]
        return products[min(int(self.rng.expovariate(1 / 6)), len(products) - 1)]

    def _message(self, call: str, event: str | None, at: datetime, *, user_id: str | None = None,
                 anonymous_id: str | None = None, **fields: Any) -> dict[str, Any]:
        message: dict[str, Any] = {"type": call, "messageId": str(uuid.UUID(int=self.rng.getrandbits(128))),
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
