"""Benchmark: 100k Segment events through each per-event stage: JSON parse, Segment decode, identity and the
Personalize encoder (mapping + validation), against `orjson.loads` of the same events.

Run: `python bench/stages.py [--events N] [--batch N] [--redis URL]`. The stages run as the sources hand them over:
the JSON parse a source makes (`json_document.decode_json`), `segment.decode_message` on each parsed message, then
identity and the encoder in micro-batches of `--batch` events. The anchor is parsing the same JSON payloads with
orjson, measured in the same run: every stage prints its µs per input event and its ratio to the anchor, i.e. how
many JSON parses one event's trip through that stage costs. The encoder runs as a destination runs it: one `encode`
call per micro-batch (`PersonalizeEncoder`, what the three Personalize destinations and `file` / `kafka_topic` with
`encoding: personalize` use).

Figures (issue 12 round, 2-core machine shared with four other sessions; main and this change back to back,
20k–30k events of ~410 bytes, batches of 100; the ratios count, not the absolute figures):
- identity over Redis: 40.6–46.0 → 18.1–20.7 µs CPU/event (28.6–33.9x → 7.6–14.8x the anchor): one MGET per load
  and one script call for all the batch's saves instead of a command per key (redis-py spends ~10 µs of Python per
  command); what Python is left is redis-py packing the script's arguments and parsing MGET replies.
- identity over memory: 9.7–11.9 → 8.5–9.6 µs in the quieter runs (loops instead of generators in the rules,
  EventKind members bound once, the cache read per batch); over SQLite 28–32 → 24–29 µs, of which ~10 µs is
  SQLite's own commit (page writes to the WAL; page size, cache size and checkpoint interval changed nothing).
- identity, second pass (three main/branch pairs back to back, 100k events, batches of 100; a busy machine):
  memory 10.7–11.0 → 8.1–9.7 µs/event (6.1–7.6x → 5.8–6.7x the anchor), SQLite 27.3–34.3 → 24.9–31.4 µs
  (18.9–23.6x → 17.3–22.1x), Redis 19.5–20.2 → 14.7–19.4 µs (11.1–14.0x → 10.6–13.2x; best pair 14.0x → 10.6x).
  The memory store keeps the record objects (frozen) instead of encoding them, the cache takes a batch's saves in
  one call, events are grouped by key in the first pass; SQLite checkpoints every 10,000 WAL pages instead of
  1,000 (a page rewritten by several batches is copied once); the Redis script gets the batch's values in one
  argument (redis-py packs each argument in Python, ~1 µs) and hiredis parses and packs in C. Left: the rules and
  the stage (~5 µs in memory), SQLite's own UPDATE and commit (~4 + ~5 µs a changed record) and the hop to its
  thread (~3 µs/event, ~300 µs a batch), redis-py's per-key arguments and the socket writes.
- encoder (mapping + validation): 5.9–6.6 → 5.3–5.9 µs (paths' common case inline, no list per checked record).
- Segment decode: 3.4–3.5 µs on both here (these messages carry integer times); on the streaming bench's messages
  (synthetic_shop.segment_stream, 933 bytes, ISO-8601 times) 5.08 → 4.50 µs, an ISO time 1,086 → 755 ns.
- JSON parse 3.3–4.2 µs (2.3–2.9x the anchor), unchanged: the parsed dict is the event's `raw` (dead letter,
  `kafka_topic` raw relay, console), so decoding straight into a struct would parse every message twice.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import math
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
from connectors.formats.json_document import decode_json  # noqa: E402
from connectors.formats.segment import decode_message  # noqa: E402
from hub.events import Event, Rejection  # noqa: E402
from hub.identity import IdentityStage, MemoryIdentityStore, SessionRules  # noqa: E402
from hub.identity.redis_store import RedisIdentityStore  # noqa: E402
from hub.identity.sqlite_store import SqliteIdentityStore  # noqa: E402
from personalize_hub.ingest import GC_YOUNG_THRESHOLD  # noqa: E402

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


def decode_all(payloads: list[bytes], batch: int) -> tuple[list[Event], float, float]:
    """The events of `payloads` decoded as a source decodes them, a micro-batch at a time, and the seconds spent
    parsing the JSON and decoding the parsed messages (CPU time, per micro-batch, not per event)."""
    events: list[Event] = []
    parse_secs = decode_secs = 0.0
    for start in range(0, len(payloads), batch):
        began = time.process_time()
        messages = [decode_json(payload) for payload in payloads[start:start + batch]]
        parsed = time.process_time()
        decoded = [decode_message(message, source_id="bench", received_at=1_704_067_200.0) for message in messages]
        parse_secs, decode_secs = parse_secs + parsed - began, decode_secs + time.process_time() - parsed
        events += [event for event in decoded if event is not None]
    return events, parse_secs, decode_secs


async def run_stages(steps, events: list[Event], batch: int) -> tuple[float, float, int, list[float]]:
    """Wall and CPU seconds to push every event through identity and the encoder, records out, and CPU
    seconds per step (the identity stage, then the encoder; the process's, so a store's thread counts)."""
    identity, encoder = steps
    produced = 0
    per_step = [0.0, 0.0]
    wall, cpu = time.perf_counter(), time.process_time()
    for start in range(0, len(events), batch):
        began = time.process_time()
        current = []
        for result in await identity.apply(events[start:start + batch]):
            if not isinstance(result, Rejection):
                current.extend(e for e in result if not isinstance(e, Rejection))
        encoding = time.process_time()
        for result in encoder.encode(current):
            if not isinstance(result, Rejection):
                produced += sum(1 for unit in result if not isinstance(unit, Rejection))
        per_step[0] += encoding - began
        per_step[1] += time.process_time() - encoding
    return time.perf_counter() - wall, time.process_time() - cpu, produced, per_step


def anchor(payloads: list[bytes]) -> float:
    started = time.process_time()
    for payload in payloads:
        orjson.loads(payload)
    return time.process_time() - started


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
    count = len(payloads)
    # The hub's collector setting (personalize_hub/ingest.py): at CPython's default the decoded batches held
    # here would trigger full collections that a running hub, which keeps few batches alive, does not pay.
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
    # Best of three for the anchor and the decode steps alike: the same treatment, so their ratio holds.
    loads_secs = min(anchor(payloads) for _ in range(3))
    parse_secs = decode_secs = math.inf
    for _ in range(3):
        events, parsed, decoded = decode_all(payloads, args.batch)
        parse_secs, decode_secs = min(parse_secs, parsed), min(decode_secs, decoded)
    # The decoded inputs stand in for what a source hands over one batch at a time; frozen, they are
    # not rescanned by every full garbage collection, as they would not be in a running hub.
    gc.collect()
    gc.freeze()
    schemas = {t: load_schema(ROOT / "examples" / "schemas" / f"{t.lower()}.avsc", t)
               for t in (INTERACTIONS, ITEMS, USERS)}

    def line(name: str, secs: float, per: int = count) -> str:
        return f"  {name:44} {secs / per * 1e6:6.2f} µs/event  {secs / per / (loads_secs / count):5.2f}x the anchor"

    print(f"{count:,} Segment messages ({sum(map(len, payloads)) / count:.0f} bytes each), batches of {args.batch}; "
          f"{len(events):,} events decoded")
    print(f"  {'anchor: orjson.loads':44} {loads_secs / count * 1e6:6.2f} µs/event  "
          f"({count / loads_secs:,.0f} events/s)")
    print(line("JSON parse (json_document.decode_json)", parse_secs))
    print(line("Segment decode (segment.decode_message)", decode_secs))
    with tempfile.TemporaryDirectory() as directory:
        # Each store three times from empty (the memory store's runs are cheap), the best of each step kept.
        runs = [("memory", MemoryIdentityStore) for _ in range(3)]
        runs += [("sqlite", lambda n=n: SqliteIdentityStore(Path(directory) / f"identity{n}.sqlite3", ttl_secs=86400))
                 for n in range(3)]
        if args.redis:
            # keys expire after the TTL, nothing else is touched
            runs += [("redis", lambda: RedisIdentityStore(args.redis, ttl_secs=3600,
                                                          namespace=f"bench-{uuid.uuid4().hex[:8]}"))
                     for _ in range(3)]
        best: dict[str, tuple[float, float, float, float, int, float]] = {}
        for name, make in runs:
            store = make()
            stages = build(store, schemas)
            wall, cpu, produced, (identity_secs, encoder_secs) = await run_stages(stages, events, args.batch)
            trips = store.round_trips / -(-len(events) // args.batch)
            await store.close()
            previous = best.get(name)
            best[name] = (min(wall, previous[0]) if previous else wall, min(cpu, previous[1]) if previous else cpu,
                          min(identity_secs, previous[2]) if previous else identity_secs,
                          min(encoder_secs, previous[3]) if previous else encoder_secs, produced, trips)
        for name, (wall, cpu, identity_secs, encoder_secs, produced, trips) in best.items():
            print(line(f"identity ({name})", identity_secs, len(events)) + f"  {trips:.2f} store round trips per batch")
            print(line(f"encoder (mapping + validation) after {name}", encoder_secs, len(events)) +
                  f"  {produced:,} records")
            print(f"  {'  identity + encoder':44} {cpu / len(events) * 1e6:6.2f} µs CPU/event  "
                  f"{len(events) / wall:,.0f} events/s")
        total = parse_secs + decode_secs + best["memory"][2] + best["memory"][3]
        print(line("all four stages (memory identity)", total))


if __name__ == "__main__":
    asyncio.run(main())
