"""PutEvents request paths: CPU per 10-event call and events/s, lean vs aiobotocore vs a naive boto3 loop.

Run: `python bench/putevents_request_path.py` (about a minute on 2 cores).

All three talk to a null HTTP sink on loopback, in its own process (a bare asyncio protocol answering
200 with an empty body, as PutEvents does, docs/reference/personalize-api.md#putevents), so what is measured is the hub
side only: CPU seconds of this process (time.process_time) per PutEvents call, and events/s.

(a) lean: PersonalizeEvents (request_path=lean) behind the real DestinationRunner (batching by session,
    futures, telemetry). Measured twice: with the shipped 1000 calls/s quota limiter (does one process
    sustain a tracker's whole quota?) and without it (capacity, and the CPU figure).
(b) aiobotocore: the same destination and runner with request_path=botocore.
(c) naive: boto3 `put_events` with one event per call in a loop, what peers do
(docs/reference/rudderstack.md#one-record-per-call).
Target (issue 4): lean ≥ 10,000 events/s and ≥ 10x the naive loop.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout: `python bench/...`

from bench._http_load import ServerProcess  # noqa: E402

SESSIONS = 500  # sessions clicking at once; each call carries 10 events of one session
EVENTS_PER_SESSION = 80
NAIVE_EVENTS = 2_000
TARGET_EVENTS_PER_SEC = 10_000  # 1000 calls/s x 10 events (docs/reference/personalize-api.md#quotas)


# --- the null sink (child process) ----------------------------------------------------------------------

class _NullSink(asyncio.Protocol):
    """HTTP/1.1 keep-alive: read each request (headers + Content-Length body), answer 200 with no body."""

    ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 0\r\n\r\n"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            length = 0
            for line in self.buffer[:end].split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if len(self.buffer) < end + 4 + length:
                return
            self.buffer = self.buffer[end + 4 + length:]
            self.transport.write(self.ANSWER)  # type: ignore[attr-defined]


async def _serve_sink(port: int) -> None:
    server = await asyncio.get_running_loop().create_server(_NullSink, "127.0.0.1", port)
    await server.serve_forever()


# --- workload -----------------------------------------------------------------------------------------

def make_events(sessions: int, per_session: int) -> list:
    """Interactions as they reach the destination, sessions interleaved the way a live stream is."""
    from hub.events import Event, EventKind, SourceRef

    start = 1_767_225_600.0
    events = []
    for n in range(per_session):
        for s in range(sessions):
            message_id = f"m-{s}-{n}"
            sent_at = start + n * 1.337 + s * 0.001
            events.append(Event(
                kind=EventKind.INTERACTION, source=SourceRef(source_id="bench", message_id=message_id),
                timestamp=sent_at, user_id=f"user-{s}", session_id=f"session-{s}",
                record={"eventId": message_id, "eventType": "Product Viewed", "sentAt": sent_at,
                        "itemId": f"sku-{(s * 7 + n) % 5000}", "properties": '{"price": "19.99"}'},
            ))
    return events


@dataclass
class Result:
    name: str
    events: int
    calls: int
    wall_secs: float
    cpu_secs: float

    @property
    def events_per_sec(self) -> float:
        return self.events / self.wall_secs

    @property
    def cpu_us_per_call(self) -> float:
        return self.cpu_secs / self.calls * 1e6

    @property
    def cpu_us_per_event(self) -> float:
        return self.cpu_secs / self.events * 1e6


async def run_destination(name: str, url: str, request_path: str, events: list, *, quota_limiter: bool) -> Result:
    from connectors.destinations.personalize.events import PersonalizeEvents, PersonalizeEventsConfig
    from connectors.aws import AwsClients
    from personalize_hub.config import AwsConfig
    from hub.connector import Context, Outcome
    from hub.delivery.retry import RetryPolicy
    from hub.delivery.runner import DestinationRunner

    aws = AwsClients(AwsConfig(personalize_endpoint_url=url))
    config = PersonalizeEventsConfig(type="personalize_events", tracking_id="bench-tracker", request_path=request_path)
    destination = PersonalizeEvents(config, Context(resources={AwsClients: aws}))
    policy = config.batch_policy()
    if not quota_limiter:
        policy = replace(policy, max_requests_per_sec=None)
    runner = DestinationRunner(destination, policy, RetryPolicy(), max_pending=20_000)
    await runner.start()
    calls = 0
    api_call = destination._api.call  # type: ignore[union-attr]

    async def counted_call(operation, params):
        nonlocal calls
        calls += 1
        await api_call(operation, params)

    destination._api.call = counted_call  # type: ignore[union-attr]
    warmup = make_events(50, 10)  # connections, credentials, code paths
    await asyncio.gather(*[await runner.submit(e) for e in warmup])
    calls = 0

    cpu, wall = time.process_time(), time.perf_counter()
    futures = [await runner.submit(e) for e in events]
    settlements = await asyncio.gather(*futures)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    await runner.close()
    await aws.close()
    failed = [s for s in settlements if s.outcome is not Outcome.DELIVERED]
    if failed:
        raise SystemExit(f"{name}: {len(failed)} events not delivered, e.g. {failed[0]}")
    return Result(name, len(events), calls, wall, cpu)


def run_naive(url: str, events: list) -> Result:
    import boto3

    client = boto3.client("personalize-events", endpoint_url=url, region_name="us-east-1")
    client.put_events(trackingId="t", sessionId="warm", eventList=[events[0].record])
    cpu, wall = time.process_time(), time.perf_counter()
    for event in events:  # one call per event, the way most integrations do it
        client.put_events(trackingId="bench-tracker", userId=event.user_id, sessionId=event.session_id,
                          eventList=[event.record])
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return Result("naive boto3 loop", len(events), len(events), wall, cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sink", type=int, help=argparse.SUPPRESS)  # internal: run as the null sink
    args = parser.parse_args()
    if args.sink:
        asyncio.run(_serve_sink(args.sink))
        return
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"  # never ask an instance-metadata endpoint

    port = _free_port()
    sink = ServerProcess([sys.executable, __file__, "--sink", str(port)], f"http://127.0.0.1:{port}/")
    with sink:
        url = f"http://127.0.0.1:{port}"
        events = make_events(SESSIONS, EVENTS_PER_SESSION)
        print(f"{len(events):,} interactions, {SESSIONS} sessions interleaved; null sink pid {sink.pid}")
        naive = run_naive(url, events[:NAIVE_EVENTS])
        generic = asyncio.run(run_destination("aiobotocore generic", url, "botocore", events, quota_limiter=False))
        lean = asyncio.run(run_destination("lean", url, "lean", events, quota_limiter=False))
        # Longer, so the limiter's start-up burst does not flatter the steady rate.
        quota = asyncio.run(run_destination("lean, 1000 calls/s quota limiter", url, "lean",
                                            make_events(SESSIONS, 2 * EVENTS_PER_SESSION), quota_limiter=True))
    print()
    print(f"{'path':36} {'events/s':>10} {'calls/s':>9} {'calls/1000 ev':>13} {'CPU µs/call':>12} {'CPU µs/event':>13}")
    for r in (naive, generic, lean, quota):
        print(f"{r.name:36} {r.events_per_sec:10,.0f} {r.calls / r.wall_secs:9,.0f} {1000 * r.calls / r.events:13.0f} "
              f"{r.cpu_us_per_call:12.0f} {r.cpu_us_per_event:13.1f}")
    print()
    print(f"lean vs naive boto3 loop, events/s:      {lean.events_per_sec / naive.events_per_sec:6.1f}x"
          "  (target >= 10x)")
    print(f"lean vs aiobotocore, events/s:           {lean.events_per_sec / generic.events_per_sec:6.1f}x")
    print(f"aiobotocore vs lean, CPU per call:       {generic.cpu_us_per_call / lean.cpu_us_per_call:6.1f}x")
    print(f"lean capacity vs 10,000 events/s target: {lean.events_per_sec / TARGET_EVENTS_PER_SEC:6.2f}x")
    print(f"lean under the quota limiter: {quota.events_per_sec:,.0f} events/s "
          f"({quota.events_per_sec / TARGET_EVENTS_PER_SEC:.2f}x the quota's 10,000), "
          f"CPU busy {100 * quota.cpu_secs / quota.wall_secs:.0f}% of one core")


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


if __name__ == "__main__":
    main()
