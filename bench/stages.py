"""Benchmark: 100k Segment events through identity and the Personalize encoder (mapping + validation), against
`orjson.loads` of the same events.

Run: `python bench/stages.py [--events N] [--batch N] [--redis URL]`. Events are decoded to hub Events first (decoding is
the source's cost, not the stages'); the stages then run in micro-batches as a webhook or Kafka source
would hand them over. The anchor is parsing the same JSON payloads with orjson, measured in the same run,
so the ratio says how many JSON parses one event's trip through identity and the encoder costs. The encoder
runs as a destination runs it: one `encode` call per micro-batch (`PersonalizeEncoder`, what the three
Personalize destinations and `file` / `kafka_topic` with `encoding: personalize` use).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from connectors.destinations.personalize.encoder import PersonalizeEncoder, PersonalizeEncoding  # noqa: E402
from connectors.destinations.personalize.schema import INTERACTIONS, ITEMS, USERS, load_schema  # noqa: E402
from connectors.formats.segment import decode_message  # noqa: E402
from hub.events import Event, Rejection  # noqa: E402
from hub.identity import IdentityStage, MemoryIdentityStore, SessionRules  # noqa: E402
from hub.identity.redis_store import RedisIdentityStore  # noqa: E402
from hub.identity.sqlite_store import SqliteIdentityStore  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def synthetic_shop(count: int, seed: int = 7) -> list[bytes]:
    """Segment messages of a small shop: visits by 10k devices, logins, views, carts, lists, orders."""
    rng = random.Random(seed)
    base = 1_704_067_200_000  # milliseconds, as SDKs send them
    messages = []
    for n in range(count):
        device = rng.randrange(10_000)
        user = f"user-{device}" if device % 3 == 0 and rng.random() < 0.7 else None
        at = base + n * 50
        product = {"product_id": f"p{rng.randrange(5000)}", "sku": f"SKU-{rng.randrange(5000)}",
                   "price": round(rng.uniform(1, 200), 2), "category": rng.choice(["shoes", "hats", "bags"]),
                   "name": "Something", "brand": "acme", "quantity": 1}
        roll = rng.random()
        message = {"type": "track", "anonymousId": f"anon-{device}", "messageId": f"msg-{n}", "timestamp": at,
                   "context": {"library": {"name": "analytics.js", "version": "4.1.0"},
                               "page": {"path": "/p", "url": "https://shop.example/p"}, "userAgent": "Mozilla/5.0"}}
        if user:
            message["userId"] = user
        if roll < 0.55:
            message.update(event="Product Viewed", properties=product)
        elif roll < 0.70:
            message.update(event="Product Clicked", properties=product)
        elif roll < 0.82:
            message.update(event="Product Added", properties=product)
        elif roll < 0.87:
            message.update(event="Product List Viewed", properties={
                "list_id": "home", "products": [{"product_id": f"p{rng.randrange(5000)}"} for _ in range(12)]})
        elif roll < 0.92:
            message.update(event="Order Completed", properties={
                "order_id": f"o{n}", "revenue": 50, "products": [dict(product, product_id=f"p{rng.randrange(5000)}")
                                                                for _ in range(rng.randint(1, 3))]})
        elif roll < 0.96:
            message.update(type="identify", userId=f"user-{device}", traits={"plan": "gold", "age": 30})
        else:
            message.update(event="Checkout Started", properties={"order_id": f"o{n}"})  # not mapped: skipped
        messages.append(orjson.dumps(message))
    return messages


def decode_all(payloads: list[bytes]) -> list[Event]:
    events = []
    for payload in payloads:
        event = decode_message(orjson.loads(payload), source_id="bench", received_at=1_704_067_200.0)
        if event is not None:
            events.append(event)
    return events


async def run_stages(steps, events: list[Event], batch: int) -> tuple[float, float, int, list[float]]:
    """Wall and CPU seconds to push every event through identity and the encoder, records out, and wall
    seconds per step (the identity stage, then the encoder)."""
    identity, encoder = steps
    produced = 0
    per_step = [0.0, 0.0]
    wall, cpu = time.perf_counter(), time.process_time()
    for start in range(0, len(events), batch):
        began = time.perf_counter()
        current = []
        for result in await identity.apply(events[start:start + batch]):
            if not isinstance(result, Rejection):
                current.extend(e for e in result if not isinstance(e, Rejection))
        encoding = time.perf_counter()
        for result in encoder.encode(current):
            if not isinstance(result, Rejection):
                produced += sum(1 for unit in result if not isinstance(unit, Rejection))
        per_step[0] += encoding - began
        per_step[1] += time.perf_counter() - encoding
    return time.perf_counter() - wall, time.process_time() - cpu, produced, per_step


def anchor(payloads: list[bytes]) -> float:
    started = time.perf_counter()
    for payload in payloads:
        orjson.loads(payload)
    return time.perf_counter() - started


def build(store, schemas):
    rules = SessionRules(idle_timeout_secs=1800)
    return [IdentityStage(store, rules, cache_size=100_000), PersonalizeEncoder(PersonalizeEncoding(schemas=schemas))]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=100, help="events per micro-batch (a /v1/batch request)")
    parser.add_argument("--redis", metavar="URL", help="also run over a Redis identity store (a scratch namespace)")
    args = parser.parse_args()
    payloads = synthetic_shop(args.events)
    events = decode_all(payloads)
    # The 100k decoded inputs stand in for what a source hands over one batch at a time; frozen, they are
    # not rescanned by every full garbage collection, as they would not be in a running hub.
    gc.collect()
    gc.freeze()
    schemas = {t: load_schema(ROOT / "examples" / "schemas" / f"{t.lower()}.avsc", t) for t in (INTERACTIONS, ITEMS, USERS)}
    loads_secs = min(anchor(payloads) for _ in range(3))
    print(f"{len(payloads):,} Segment messages ({sum(map(len, payloads)) / len(payloads):.0f} bytes each), "
          f"batches of {args.batch}")
    print(f"  anchor  orjson.loads                {len(payloads) / loads_secs:>12,.0f} events/s")
    with tempfile.TemporaryDirectory() as directory:
        runs = [("memory", MemoryIdentityStore()),
                ("sqlite", SqliteIdentityStore(Path(directory) / "identity.sqlite3", ttl_secs=86400))]
        if args.redis:
            namespace = f"bench-{uuid.uuid4().hex[:8]}"  # keys expire after the TTL, nothing else is touched
            runs.append(("redis", RedisIdentityStore(args.redis, ttl_secs=3600, namespace=namespace)))
        for name, store in runs:
            stages = build(store, schemas)
            wall, cpu, produced, per_stage = await run_stages(stages, events, args.batch)
            round_trips = store.round_trips
            await store.close()
            rate = len(events) / wall
            print(f"  stages  identity({name:6}) + encoder (mapping + validation) {rate:>10,.0f} events/s  "
                  f"{cpu / len(events) * 1e6:5.1f} µs CPU/event  {produced:,} records  "
                  f"ratio to orjson.loads: {wall / loads_secs:.1f}x slower")
            print("          " + ", ".join(f"{type(stage).__name__} {secs / len(events) * 1e6:.1f} µs"
                                      for stage, secs in zip(stages, per_stage, strict=True)) + " per input event, "
                  f"{round_trips / -(-len(events) // args.batch):.2f} store round trips per batch")

if __name__ == "__main__":
    asyncio.run(main())
