"""Segment `/v1/batch` throughput and latency of `hub run`, plain and gzip, beside a bare endpoint that only parses.

Both servers run in their own process on the same uvicorn stack (as `hub run` configures it), on loopback;
the load comes from a third process (bench/_http_load.py) keeping a fixed number of requests in flight over
keep-alive connections. Every request is a batch of 100 realistic Segment events (E-commerce Spec v2
tracks with products, and identifies; about 1 KB each). The hub is configured like examples/embedded.yaml:
segment_webhook → identity → file destination writing the Personalize records each event becomes
(`encoding: personalize`: mapped and validated), dead letter to a file. The anchor reads the body, parses it with orjson and answers 200. The hub is measured twice: plain
bodies, and the same bodies gzipped (`Content-Encoding: gzip`, level 9 as segment-analytics-python and
rudder-sdk-python compress). The three are measured in alternating rounds so a change of machine load hits all.
Targets: gzip costs at most 1.3x the plain path's CPU per event; and (issue 12) the hub serves at least 25 %
of the anchor's events/s at no more than 15 µs of CPU per event (plain bodies). `--py-spy FILE` samples the
hub during its rounds (raw collapsed stacks).

Measured (issue 12, webhook round, 2 shared cores, so only same-run ratios count): `hub run` on main at
40.5-47.4 µs of CPU per event and 0.126-0.136 of the anchor's events/s (anchor 4.6-5.3 µs); with uvloop as the
hub's loop and one encode_lines per file write, 39.6-46.3 µs and the same ratio (main's and this hub alternating
in one run, 4 x 5 s and 6 x 6 s). Where a hub event's CPU goes, timed in process (ASGI app, no sockets; ~35-40 µs
in all): Segment decode 7, Personalize mapping + validation 7, identity 7, the body's JSON parse 6 (2.4 µs in a
tight loop: the events a request holds until they settle keep its memory cold), per-message size scan 0.9, file
destination 1-3; the rest in the runner, pipeline and HTTP stack (h11 + Starlette, ~2.5 µs, as in the anchor).

    python bench/webhook_batch.py [--rounds 2] [--duration-secs 12] [--concurrency 8] [--py-spy FILE]

Issue 12, the per-event stages' round (decode, identity, mapping, validation; main and that change back to back,
three runs, four other sessions on the machine): hub CPU 40.4 → 59.9, 45.7 → 41.2 and 46.5 → 50.0 µs per event, no
difference this noise can show: on this path the changes add up to ~2–3 µs (bench/stages.py). py-spy shares before:
Segment decode 11%, JSON 10%, identity 15%, mapping + validation 9%, the rest the HTTP server, runner and file writes.

Issue 12, the webhook round (main and the change back to back, three pairs of 2 x 8 s or 3 x 6 s, load average ~6
on the 2 cores): hub CPU 32.6 → 33.3, 41.3 → 30.2 and 33.6 → 34.5 µs per event, 0.166 → 0.227, 0.088 → 0.195 and
0.142 → 0.128 of the anchor's events/s (anchor 4.7-4.9 µs): no change this noise can show. SQLite is not what this bench pays for: its 64 bodies are replayed, so after the
first pass (9,900 records) every event is a redelivery that changes no record, and the measured rounds read the
identity cache and never write (printed at the end); identity here is ~4.5 µs of cache reads and rules. Where the
hub's CPU went (py-spy, before and after alike): JSON parse of the body 12-14%, HTTP stack (h11, uvicorn, Starlette,
socket writes) 13-18%, identity stage 12-14%, Segment decode 10-12%, mapping + validation 10-12%, file destination
8-10% (a third of it waking its writer thread), runner 8%, pipeline (tap, telemetry) 6-7%, request handling 6%,
body read/inflate 4%, per-message size scan 2.5%. On fresh events (bench/stages.py, identity over SQLite) the
round's SQLite changes (1 KiB pages on new files, a checkpoint per ~40 MB of WAL, one thread fed by a queue instead
of run_in_executor: ~80 µs less CPU a call on uvloop) took 20.1 / 19.6 → 19.7 / 19.0 µs per event on asyncio and
18.3 / 19.7 → 15.7 / 17.3 µs on uvloop, the loop `hub run` uses (of which ~8.5 µs is the save: UPDATE ~3, the WAL
page writes at commit ~3, encoding ~1.5 per changed record).

Issue 12, closing round (`--py-spy` prints the split, bench/_profile_split.py): 27.6 µs per event, 0.132 of the anchor.
The hub's own code is 92% of it: Segment decode with the body's JSON parse 6.8 µs, runner + batcher 5.3 (most of it sampled on
the dispatcher's line that takes the next batch, where the last one is released), identity 4.1, events/ids/worker thread 3.4,
request handling 2.2, mapping + validation 1.7, Personalize encoding 1.4, pipeline 1.2, file writes 1.0; the HTTP
server 1.3 and the loop 0.6.
"""

from __future__ import annotations

import argparse
import gzip
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson

import _profile_split as profile_split
from _http_load import LoadResult, ServerProcess, run_load

EVENTS_PER_BATCH = 100
# Issue 12: the hub's events/s against the bare endpoint's, and its CPU per event (plain bodies).
TARGET_VS_ANCHOR = 0.25
TARGET_CPU_US_PER_EVENT = 15
DISTINCT_BODIES = 64  # cycled; enough that no single body dominates caches
WRITE_KEY = "bench-write-key"

HUB_CONFIG = """\
# Like examples/embedded.yaml: Segment webhook in, JSON Lines out, dead letter to a file.
http: {{host: 127.0.0.1, port: {port}}}
sources:
  - {{type: segment_webhook, id: web, write_keys: ["{write_key}"]}}
destinations:
  - {{type: file, id: events, path: "{data_dir}/events.jsonl", encoding: personalize}}
dead_letter: {{type: file, id: dead_letter, path: "{data_dir}/dead-letter.jsonl"}}
"""

_CATEGORIES = ["Shoes", "Outerwear", "Accessories", "Knitwear", "Denim", "Bags"]
_BRANDS = ["Northwind", "Contoso", "Fabrikam", "Tailspin", "Litware"]
_USER_AGENT = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) "
               "Version/17.4 Safari/605.1.15")


# ---- the anchor: a bare Starlette endpoint on the same uvicorn stack ----------------------------------

def serve_anchor(port: int) -> None:
    """Answer POST /v1/batch after reading and parsing the body; nothing else."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    async def batch(request: Request) -> Response:
        body = orjson.loads(await request.body())
        answer = {"success": True, "accepted": len(body["batch"]), "rejected": 0, "errors": []}
        return Response(orjson.dumps(answer), media_type="application/json")

    async def readyz(request: Request) -> Response:
        return Response(b'{"ready":true}', media_type="application/json")

    app = Starlette(routes=[Route("/v1/batch", batch, methods=["POST"]), Route("/readyz", readyz)])
    # The same uvicorn settings as `hub run` (personalize_hub/http_server.py: h11, limits), so only the app differs.
    from personalize_hub.http_server import HttpLimits, server_config

    uvicorn.Server(server_config(app, HttpLimits(), host="127.0.0.1", port=port, log_level="warning")).run()


# ---- realistic Segment traffic ------------------------------------------------------------------------

def _product(rng: random.Random) -> dict:
    number = rng.randrange(5000)
    category = rng.choice(_CATEGORIES)
    return {
        "product_id": f"prod-{number:05d}", "sku": f"SKU-{number:05d}-{rng.choice('SMLX')}",
        "category": category, "name": f"{rng.choice(_BRANDS)} {category[:-1]} {number}",
        "brand": rng.choice(_BRANDS), "variant": rng.choice(["black", "navy", "sand", "olive"]),
        "price": round(rng.uniform(9, 240), 2), "quantity": 1, "position": rng.randrange(1, 24),
        "url": f"https://shop.example.com/p/prod-{number:05d}",
        "image_url": f"https://cdn.shop.example.com/img/prod-{number:05d}.jpg",
    }


def _context(rng: random.Random, path: str) -> dict:
    return {
        "library": {"name": "analytics.js", "version": "5.2.0"},
        "ip": f"203.0.113.{rng.randrange(1, 255)}", "userAgent": _USER_AGENT,
        "locale": "en-GB", "timezone": "Europe/London",
        "page": {"path": path, "referrer": "https://www.example.org/", "title": "Example Shop",
                 "url": f"https://shop.example.com{path}"},
        "campaign": {"source": "newsletter", "medium": "email", "name": "spring-sale"},
    }


def segment_message(rng: random.Random, at: datetime) -> dict:
    """One E-commerce Spec v2 track (viewed / added / order completed) or an identify, about 1 KB."""
    user = rng.randrange(20_000)
    common = {
        "messageId": str(uuid.UUID(int=rng.getrandbits(128))),
        "anonymousId": f"anon-{user:06d}-{rng.randrange(4)}",
        "timestamp": at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "sentAt": (at + timedelta(milliseconds=250)).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    }
    if rng.random() < 0.6:
        common["userId"] = f"user-{user:06d}"
    draw = rng.random()
    if draw < 0.10:
        traits = {"email": f"user{user}@example.com", "first_name": "Sam", "plan": rng.choice(["free", "plus"]),
                  "country": "GB", "created_at": "2023-04-01T09:30:00Z", "newsletter": True}
        return {"type": "identify", "userId": f"user-{user:06d}", **{k: v for k, v in common.items() if k != "userId"},
                "traits": traits, "context": _context(rng, "/account")}
    if draw < 0.75:
        name, properties = "Product Viewed", _product(rng)
    elif draw < 0.93:
        name, properties = "Product Added", {**_product(rng), "cart_id": f"cart-{user:06d}"}
    else:
        products = [_product(rng) for _ in range(2)]
        for product in products:  # the order payload is large already: keep it near the others' size
            for key in ("url", "image_url", "name"):
                product.pop(key)
        name = "Order Completed"
        properties = {"order_id": f"order-{rng.getrandbits(40):x}", "currency": "GBP",
                      "total": round(sum(p["price"] for p in products), 2), "products": products}
    properties.setdefault("currency", "GBP")
    return {"type": "track", "event": name, **common, "properties": properties,
            "context": _context(rng, f"/p/{properties.get('product_id', 'checkout')}")}


def batch_bodies(seed: int = 7) -> tuple[list[bytes], float]:
    """Pre-encoded `/v1/batch` bodies and the mean encoded size of one event in them."""
    rng = random.Random(seed)
    at = datetime(2025, 3, 1, 12, tzinfo=timezone.utc)
    bodies, event_bytes = [], 0
    for _ in range(DISTINCT_BODIES):
        batch = []
        for _ in range(EVENTS_PER_BATCH):
            at += timedelta(milliseconds=rng.randrange(50, 900))
            message = segment_message(rng, at)
            event_bytes += len(orjson.dumps(message))
            batch.append(message)
        bodies.append(orjson.dumps({"batch": batch, "context": {"library": {"name": "analytics-python"}}}))
    return bodies, event_bytes / (DISTINCT_BODIES * EVENTS_PER_BATCH)


# ---- the run ------------------------------------------------------------------------------------------

def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stage_names() -> str:
    """The stages `hub run` builds for this config (personalize_hub.runtime.build_stages) and the file
    destination's encoding, for the report."""
    from personalize_hub.config import parse_config
    from personalize_hub.runtime import build_stages

    config = parse_config(__import__("yaml").safe_load(HUB_CONFIG.format(port=0, write_key="k", data_dir="/tmp")), {})
    stages = [type(stage).__name__ for stage in build_stages(config)]
    return ", ".join([*stages, f"file encoding: {config.destinations[0].encoding}"])


def measure(name: str, server: ServerProcess, port: int, bodies: list[bytes], args: argparse.Namespace,
            encoding: str | None = None) -> LoadResult:
    headers = {"Content-Type": "application/json", "Authorization": "Basic " + _basic(WRITE_KEY)}
    if encoding:
        headers["Content-Encoding"] = encoding
    result = run_load(f"http://127.0.0.1:{port}/v1/batch", bodies, headers=headers, concurrency=args.concurrency,
                      warmup_secs=args.warmup_secs, duration_secs=args.duration_secs, count_field="accepted",
                      server_pid=server.pid)
    bad = {status: n for status, n in result.statuses.items() if status != 200}
    if bad or result.errors:
        sys.exit(f"{name}: non-200 answers {bad}: {result.errors}\n{server.output()}")
    print(f"  {name:7} {result.counted / result.window_secs:9,.0f} events/s  "
          f"p50 {result.percentile_secs(50) * 1e3:6.1f} ms  p99 {result.percentile_secs(99) * 1e3:6.1f} ms  "
          f"({result.requests} requests)", flush=True)
    return result


def _py_spy(pid: int, output: Path) -> subprocess.Popen:
    """py-spy sampling the hub from its own process (no overhead inside the hub); raw collapsed stacks."""
    py_spy = Path(sys.executable).with_name("py-spy")
    return subprocess.Popen([str(py_spy), "record", "--pid", str(pid), "--format", "raw", "--rate", "250",
                             "--nonblocking", "--output", str(output)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _basic(user: str) -> str:
    import base64

    return base64.b64encode(f"{user}:".encode()).decode()


def identity_record_count(data_dir: Path) -> int:
    """Records in the hub's SQLite identity store (the embedded default's file, under the hub's working folder)."""
    from hub.identity.config import SqliteStoreConfig

    with sqlite3.connect(data_dir / SqliteStoreConfig().path) as db:
        return db.execute("SELECT count(*) FROM identity").fetchone()[0]


def combine(results: list[LoadResult]) -> LoadResult:
    return LoadResult(
        window_secs=sum(r.window_secs for r in results), requests=sum(r.requests for r in results),
        latencies_secs=[x for r in results for x in r.latencies_secs],
        statuses=sum((r.statuses for r in results), start=type(results[0].statuses)()),
        counted=sum(r.counted for r in results), total_counted=sum(r.total_counted for r in results),
        server_cpu_secs=sum(r.server_cpu_secs or 0.0 for r in results),
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="alternating anchor/hub rounds")
    parser.add_argument("--duration-secs", type=float, default=12.0, help="measured window per round and server")
    parser.add_argument("--warmup-secs", type=float, default=3.0)
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight")
    parser.add_argument("--py-spy", type=Path, help="sample the hub with py-spy, collapsed stacks to this file")
    parser.add_argument("--serve-anchor", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_anchor:
        serve_anchor(args.serve_anchor)
        return 0

    bodies, event_bytes = batch_bodies()
    print(f"/v1/batch of {EVENTS_PER_BATCH} Segment events ({event_bytes:,.0f} B each, "
          f"{sum(map(len, bodies)) / len(bodies) / 1024:,.0f} KiB per request), {args.concurrency} in flight, "
          f"{args.rounds} x {args.duration_secs:g} s per server; hub stages: {stage_names()}", flush=True)

    gzipped = [gzip.compress(body, 9) for body in bodies]
    print(f"gzip bodies: {sum(map(len, gzipped)) / len(gzipped) / 1024:,.0f} KiB per request", flush=True)
    anchor_results, hub_results, gzip_results = [], [], []
    with tempfile.TemporaryDirectory(prefix="bench-webhook-") as tmp:
        data_dir = Path(tmp)
        anchor_port, hub_port = free_port(), free_port()
        config_path = data_dir / "hub.yaml"
        config_path.write_text(HUB_CONFIG.format(port=hub_port, write_key=WRITE_KEY, data_dir=data_dir))
        env = {**os.environ, "HUB_LOG_LEVEL": "WARNING"}
        anchor = ServerProcess([sys.executable, __file__, "--serve-anchor", str(anchor_port)],
                               f"http://127.0.0.1:{anchor_port}/readyz")
        hub = ServerProcess([sys.executable, "-m", "personalize_hub.cli", "run", "--config", str(config_path),
                             "--log-level", "WARNING"], f"http://127.0.0.1:{hub_port}/readyz", env=env, cwd=data_dir)
        with anchor, hub:
            sampler = None
            for round_number in range(1, args.rounds + 1):
                print(f"round {round_number}", flush=True)
                anchor_results.append(measure("anchor", anchor, anchor_port, bodies, args))
                if args.py_spy is not None and sampler is None:  # from the first hub round on; idle is not sampled
                    sampler = _py_spy(hub.pid, args.py_spy)
                hub_results.append(measure("hub", hub, hub_port, bodies, args))
                gzip_results.append(measure("hub-gz", hub, hub_port, gzipped, args, encoding="gzip"))
            if sampler is not None:
                sampler.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
                sampler.wait(30)
        # The hub has stopped (drained): every accepted event must be in the file destination.
        delivered = sum(1 for _ in open(data_dir / "events.jsonl", "rb"))
        accepted = sum(r.total_counted for r in hub_results + gzip_results)
        identity_records = identity_record_count(data_dir)

    a, h, g = combine(anchor_results), combine(hub_results), combine(gzip_results)
    a_rate, h_rate = a.counted / a.window_secs, h.counted / h.window_secs
    print()
    print(f"anchor (bare Starlette + orjson): {a_rate:9,.0f} events/s   p50 {a.percentile_secs(50) * 1e3:6.1f} ms"
          f"   p99 {a.percentile_secs(99) * 1e3:6.1f} ms   CPU {a.server_cpu_secs / a.counted * 1e6:5.1f} µs/event"
          f" ({a.server_cpu_secs / a.window_secs:.0%} of a core)")
    print(f"hub run (segment_webhook → file): {h_rate:9,.0f} events/s   p50 {h.percentile_secs(50) * 1e3:6.1f} ms"
          f"   p99 {h.percentile_secs(99) * 1e3:6.1f} ms   CPU {h.server_cpu_secs / h.counted * 1e6:5.1f} µs/event"
          f" ({h.server_cpu_secs / h.window_secs:.0%} of a core)")
    g_rate = g.counted / g.window_secs
    print(f"hub run, gzip bodies:             {g_rate:9,.0f} events/s   p50 {g.percentile_secs(50) * 1e3:6.1f} ms"
          f"   p99 {g.percentile_secs(99) * 1e3:6.1f} ms   CPU {g.server_cpu_secs / g.counted * 1e6:5.1f} µs/event"
          f" ({g.server_cpu_secs / g.window_secs:.0%} of a core)")
    gzip_cpu_ratio = (g.server_cpu_secs / g.counted) / (h.server_cpu_secs / h.counted)
    print(f"ratio gzip/plain: CPU per event {gzip_cpu_ratio:.2f}x (target <= 1.3x), throughput {g_rate / h_rate:.3f}")
    print(f"ratio hub/anchor: throughput {h_rate / a_rate:.3f}, "
          f"p50 latency {h.percentile_secs(50) / a.percentile_secs(50):.1f}x, "
          f"p99 latency {h.percentile_secs(99) / a.percentile_secs(99):.1f}x, "
          f"CPU per event {(h.server_cpu_secs / h.counted) / (a.server_cpu_secs / a.counted):.1f}x")
    hub_us, anchor_us = h.server_cpu_secs / h.counted * 1e6, a.server_cpu_secs / a.counted * 1e6
    print("issue 12 targets:")
    print(f"  hub events/s vs the bare endpoint  {h_rate / a_rate:5.3f}  (>= {TARGET_VS_ANCHOR}): "
          f"{'met' if h_rate / a_rate >= TARGET_VS_ANCHOR else 'NOT met'}")
    print(f"  hub CPU per event                  {hub_us / TARGET_CPU_US_PER_EVENT:5.2f}x  ({hub_us:.1f} µs vs "
          f"<= {TARGET_CPU_US_PER_EVENT} µs; the anchor's {anchor_us:.1f} µs): "
          f"{'met' if hub_us <= TARGET_CPU_US_PER_EVENT else 'NOT met'}")
    # Stages may turn an event into none (identify → identity store) or several (one per product), so
    # this is a sanity line, not an equality: nothing delivered at all means the run measured nothing.
    print(f"file destination holds {delivered:,} lines for {accepted:,} events the hub accepted")
    # The bodies are replayed: after the first pass over them every event is a redelivery, which changes no
    # identity record, so the measured rounds read the identity cache and never write to SQLite.
    print(f"identity store holds {identity_records:,} records: the keys of the {DISTINCT_BODIES * EVENTS_PER_BATCH:,} "
          f"distinct events, written in their first pass (replayed, they change none: no SQLite write is measured)")
    if args.py_spy is not None:  # sampled over the plain and the gzip rounds alike
        print()
        print(profile_split.report(args.py_spy, (h.server_cpu_secs + g.server_cpu_secs) / (h.counted + g.counted) * 1e6))
    return 0 if delivered else 1


if __name__ == "__main__":
    sys.exit(main())
