"""GetRecommendations over HTTP on a 100k users × 20k items × 5M interactions model: latency and rate.

Builds the model through the real service (control plane over HTTP; the 5M synthetic interactions go
straight into its SQLite store, since the CSV import path is tested elsewhere and would only add minutes),
then drives it from a separate client process with raw keep-alive HTTP/1.1 over a few connections, as
fast as the server answers. The server is one process with one event loop, so this is the rate one core
serves. Anchor, same run, same server stack: GET /ping, a constant JSON answer through the same app.
Target (issue 3): p99 ≤ 10 ms. The dataset group is an ECOMMERCE domain group (clicks are `View`, purchases
`Purchase`), so the same run also measures GetRecommendations through an aws-ecomm-recommended-for-you
recommender (issue 9), which reads the user's purchases from the store on every request to leave them out.

    python bench/local_personalize_serving.py [--users 100000 --items 20000 --interactions 5000000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import boto3
import httpx
import numpy as np
from botocore.config import Config

from synthetic_shop import INTERACTIONS_SCHEMA, generate
from local_personalize.store import Store

P99_TARGET_MS = 10.0
# Two connections keep one server core busy (one request in flight while the other's answer travels);
# more only queue in front of it and add their wait to every latency.
CONNECTIONS = 2
MEASURE_SECS = 10.0
WARMUP_SECS = 2.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(data_dir: Path, port: int) -> subprocess.Popen:
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    log = open(data_dir.parent / "server.log", "wb")
    process = subprocess.Popen([sys.executable, "-m", "local_personalize", "--port", str(port), "--data",
                                str(data_dir)], stdout=log, stderr=subprocess.STDOUT)
    for _ in range(300):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ping", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError("server did not start")


def wait_status(describe, key: str, timeout_secs: float = 600) -> dict:
    deadline = time.monotonic() + timeout_secs
    while time.monotonic() < deadline:
        resource = describe()[key]
        if resource["status"] in ("ACTIVE", "CREATE FAILED"):
            if resource["status"] != "ACTIVE":
                raise RuntimeError(resource.get("failureReason"))
            return resource
        time.sleep(0.5)
    raise TimeoutError(key)


def build_campaign(url: str, data_dir: Path, users: int, items: int, interactions: int) -> tuple[str, str, dict]:
    client = lambda service: boto3.client(service, endpoint_url=url, region_name="us-east-1",  # noqa: E731
                                          aws_access_key_id="x", aws_secret_access_key="x",
                                          config=Config(retries={"max_attempts": 1}, read_timeout=600))
    control = client("personalize")
    timings = {}
    started = time.perf_counter()
    shop = generate(users, items, interactions, num_genres=50, seed=3)
    timings["generate_secs"] = time.perf_counter() - started
    group = control.create_dataset_group(name="bench", domain="ECOMMERCE")["datasetGroupArn"]
    schema = control.create_schema(name="bench", schema=json.dumps(INTERACTIONS_SCHEMA), domain="ECOMMERCE")["schemaArn"]
    dataset = control.create_dataset(name="bench", schemaArn=schema, datasetGroupArn=group,
                                     datasetType="Interactions")["datasetArn"]
    started = time.perf_counter()
    store = Store(data_dir / "local_personalize.sqlite3")
    kinds = np.where(shop.purchased, "Purchase", "View").tolist()
    rows = ((f"u{u}", f"i{i}", None, float(t), k, None, None, None, None, None, "bench")
            for u, i, t, k in zip(shop.users.tolist(), shop.items.tolist(), shop.timestamps.tolist(), kinds))
    store.bulk_insert_interactions(dataset, [rows])
    store.close()
    timings["store_secs"] = time.perf_counter() - started
    solution = control.create_solution(name="bench", datasetGroupArn=group,
                                       recipeArn="arn:aws:personalize:::recipe/aws-user-personalization")["solutionArn"]
    started = time.perf_counter()
    version = control.create_solution_version(solutionArn=solution)["solutionVersionArn"]
    described = wait_status(lambda: control.describe_solution_version(solutionVersionArn=version), "solutionVersion")
    timings["train_and_metrics_secs"] = time.perf_counter() - started
    # The job's own breakdown (read from the store, train, metrics), kept in the version's document.
    store = Store(data_dir / "local_personalize.sqlite3")
    timings |= store.get_resource(version).doc.get("_timings", {})
    store.close()
    campaign = control.create_campaign(name="bench", solutionVersionArn=version)["campaignArn"]
    wait_status(lambda: control.describe_campaign(campaignArn=campaign), "campaign")
    started = time.perf_counter()
    recommender = control.create_recommender(
        name="bench", datasetGroupArn=group,
        recipeArn="arn:aws:personalize:::recipe/aws-ecomm-recommended-for-you")["recommenderArn"]
    wait_status(lambda: control.describe_recommender(recommenderArn=recommender), "recommender")
    timings["recommender_secs"] = time.perf_counter() - started
    return campaign, recommender, timings


async def _connection(port: int, requests: list[bytes], stop_at: float, warm_until: float,
                      latencies: list[float]) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    done = 0
    index = random.randrange(len(requests))
    while (now := time.perf_counter()) < stop_at:
        writer.write(requests[index % len(requests)])
        index += 1
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        body = await reader.readexactly(length)
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(head + body)
        if now >= warm_until:
            latencies.append(time.perf_counter() - now)
            done += 1
    writer.close()
    return done


def drive(port: int, requests: list[bytes], connections: int, result_queue) -> None:
    """Client process: closed loop over `connections` keep-alive connections; reports latencies."""
    async def run() -> tuple[list[float], float]:
        latencies: list[float] = []
        start = time.perf_counter()
        warm_until, stop_at = start + WARMUP_SECS, start + WARMUP_SECS + MEASURE_SECS
        await asyncio.gather(*(_connection(port, requests, stop_at, warm_until, latencies)
                               for _ in range(connections)))
        return latencies, MEASURE_SECS

    latencies, seconds = asyncio.run(run())
    result_queue.put((latencies, seconds))


def measure(port: int, requests: list[bytes], connections: int = CONNECTIONS) -> dict[str, float]:
    queue = multiprocessing.get_context("spawn").Queue()
    process = multiprocessing.get_context("spawn").Process(target=drive, args=(port, requests, connections, queue))
    process.start()
    latencies, seconds = queue.get()
    process.join()
    values = np.array(latencies) * 1000
    return {"rate_per_sec": len(values) / seconds, "p50_ms": float(np.percentile(values, 50)),
            "p99_ms": float(np.percentile(values, 99)), "max_ms": float(values.max())}


def model_latency(data_dir: Path, users: int) -> dict[str, float]:
    """The same recommendations straight from the model file, in this process: the model's share of the time."""
    from threadpoolctl import threadpool_limits

    from local_personalize.recipes import load_model

    threadpool_limits(1)  # one BLAS thread, as in the server (local_personalize/threads.py)
    model = load_model(str(next((data_dir / "models").glob("*.npz"))))
    rng = random.Random(2)
    latencies = []
    for _ in range(2000):
        started = time.perf_counter()
        model.recommend(f"u{rng.randrange(users)}", None, 25)
        latencies.append(time.perf_counter() - started)
    values = np.array(latencies[200:]) * 1000
    return {"rate_per_sec": 1000 / values.mean(), "p50_ms": float(np.percentile(values, 50)),
            "p99_ms": float(np.percentile(values, 99)), "max_ms": float(values.max())}


def post(path: str, body: dict) -> bytes:
    payload = json.dumps(body).encode()
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n").encode() + payload


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--interactions", type=int, default=5_000_000)
    parser.add_argument("--connections", type=int, default=CONNECTIONS)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lp-bench-") as tmp:
        data_dir, port = Path(tmp) / "data", free_port()
        server = start_server(data_dir, port)
        try:
            campaign, recommender, timings = build_campaign(f"http://127.0.0.1:{port}", data_dir, args.users, args.items,
                                               args.interactions)
            print(f"model: {args.users} users x {args.items} items x {args.interactions} interactions; "
                  + ", ".join(f"{k} {v:.1f}" for k, v in timings.items() if isinstance(v, float)))
            rng = random.Random(1)
            recommendations = [post("/recommendations", {"campaignArn": campaign, "userId": f"u{rng.randrange(args.users)}",
                                                         "numResults": 25}) for _ in range(30_000)]
            through_recommender = [post("/recommendations", {"recommenderArn": recommender,
                                                             "userId": f"u{rng.randrange(args.users)}",
                                                             "numResults": 25}) for _ in range(30_000)]
            ping = [b"GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"]
            anchor = measure(port, ping, args.connections)
            served = measure(port, recommendations, args.connections)
            by_recommender = measure(port, through_recommender, args.connections)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(30)
        in_process = model_latency(data_dir, args.users)
    for name, figures in (("GET /ping (anchor)", anchor), ("GetRecommendations", served),
                          ("... via recommender", by_recommender), ("model.recommend only", in_process)):
        print(f"{name:22s} {figures['rate_per_sec']:8.0f} req/s  p50 {figures['p50_ms']:6.2f} ms  "
              f"p99 {figures['p99_ms']:6.2f} ms  max {figures['max_ms']:6.1f} ms")
    print(f"ratio GetRecommendations/anchor: rate {served['rate_per_sec'] / anchor['rate_per_sec']:.2f}, "
          f"p99 {served['p99_ms'] / anchor['p99_ms']:.2f}")
    print(f"ratio recommender/campaign: rate {by_recommender['rate_per_sec'] / served['rate_per_sec']:.2f}, "
          f"p99 {by_recommender['p99_ms'] / served['p99_ms']:.2f}")
    for name, figures in (("campaign", served), ("recommender", by_recommender)):
        verdict = "meets" if figures["p99_ms"] <= P99_TARGET_MS else "MISSES"
        print(f"{name}: p99 {figures['p99_ms']:.2f} ms {verdict} the {P99_TARGET_MS:.0f} ms target at "
              f"{figures['rate_per_sec']:.0f} req/s with {args.connections} connections")


if __name__ == "__main__":
    main()
