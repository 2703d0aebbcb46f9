"""Runs `hub run` in a subprocess on a generated config and measures it from its first delivery to its last.

The hub's own /metrics are sampled a few times a second (events in and out, PutEvents calls as the count of
`hub_batch_fill_ratio`) together with the CPU seconds of every process in the test (/proc/<pid>/stat), so
rates and CPU shares are taken between the same two samples. local_personalize's request log counts the
calls it answered, and its store the interactions it holds: the figures are checked at both ends.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from bench import _services as services
from bench._http_load import process_cpu_secs

ROOT = Path(__file__).resolve().parents[1]
POLL_SECS = 0.25  # each /metrics answer costs the hub ~1 ms of CPU: at 10 polls a second, 1% of its time
STALL_SECS = 20.0  # no delivery for this long: stop and say so rather than hang
COMMIT_WAIT_SECS = 10.0  # commits follow the last delivery by a moment
# tansu joins a group in ~3 s; short group timeouts keep the run short (docs/reference/platform.md#kafka-tansu).
GROUP_TIMEOUTS = {"session_timeout_secs": 6, "heartbeat_interval_secs": 0.5, "rebalance_timeout_secs": 6}
_METRIC = re.compile(rb"^(hub_events_out_total|hub_events_in_total|hub_batch_fill_ratio_count)\{[^}]*\} (\S+)$", re.M)


@dataclass(frozen=True)
class Servers:
    """Where the hub's inputs and outputs are, and the PIDs whose CPU is sampled beside the hub's."""

    bootstrap: str
    redis_url: str
    personalize_url: str
    personalize_log: Path
    pids: dict[str, int]


def hub_config(directory: Path, servers: Servers, *, topic: str, group: str, tracking_id: str,
               source_options: dict[str, Any]) -> Path:
    """examples/kafka-redis.yaml reduced to the Kafka → PutEvents path, on the bench's own servers."""
    schemas = ROOT / "examples" / "schemas"
    config = {
        "http": {"host": "127.0.0.1", "port": services.free_port()},
        "aws": {"region": services.REGION, "personalize_endpoint_url": servers.personalize_url},
        "identity": {"store": {"type": "redis", "url": servers.redis_url}},
        "schemas": {name: str(schemas / f"{name}.avsc") for name in ("interactions", "items", "users")},
        "sources": [{"type": "kafka", "id": "clickstream", "bootstrap_servers": servers.bootstrap, "topics": [topic],
                     "group_id": group, "format": "segment", **GROUP_TIMEOUTS, **source_options}],
        "destinations": [{"type": "personalize_events", "id": "interactions", "tracking_id": tracking_id}],
        "dead_letter": {"type": "file", "id": "dead_letter", "path": str(directory / "dead-letter.jsonl")},
        "readiness": {"store": "redis", "redis_url": servers.redis_url},
    }
    path = directory / "hub.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@dataclass
class _Sample:
    at: float
    delivered: int
    received: int
    calls: int
    cpu_secs: dict[str, float]


@dataclass
class HubRun:
    """What one `hub run` did: rates between its first and last delivery, totals over the whole run."""

    delivered: int  # events delivered within the window
    received: int  # events the source emitted within the window
    calls: int  # PutEvents calls within the window
    elapsed_secs: float
    cpu_secs: dict[str, float]  # per process, within the window
    hub_calls_total: int
    server_calls_total: int  # answered 200 by local_personalize, from its request log
    committed: int  # records the consumer group committed
    max_rss_mib: float
    dead_lettered: int

    @property
    def events_per_sec(self) -> float:
        return self.delivered / self.elapsed_secs


def _sample(client: httpx.Client, metrics_url: str, pids: dict[str, int]) -> _Sample:
    values = dict.fromkeys((b"hub_events_out_total", b"hub_events_in_total", b"hub_batch_fill_ratio_count"), 0.0)
    for name, value in _METRIC.findall(client.get(metrics_url).content):
        values[name] += float(value)
    cpu = {name: process_cpu_secs(pid) for name, pid in pids.items()}
    return _Sample(time.perf_counter(), int(values[b"hub_events_out_total"]), int(values[b"hub_events_in_total"]),
                   int(values[b"hub_batch_fill_ratio_count"]), cpu)


def _answered_putevents(log: Path, offset: int) -> int:
    """PutEvents calls local_personalize answered 200 after `offset` in its log (one line per request)."""
    with open(log, "rb") as text:
        text.seek(offset)
        return sum(1 for line in text if b" PutEvents /events 200 " in line)


async def _committed(bootstrap: str, group: str, topic: str) -> int:
    """Records the group has committed, all partitions (read without joining the group)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        return sum([await consumer.committed(TopicPartition(topic, p)) or 0 for p in partitions])
    finally:
        await consumer.stop()


def _sampler(pid: int, output: Path) -> subprocess.Popen:
    """py-spy sampling the hub from its own process (no overhead inside the hub); raw collapsed stacks."""
    py_spy = Path(sys.executable).with_name("py-spy")
    return subprocess.Popen([str(py_spy), "record", "--pid", str(pid), "--format", "raw", "--rate", "250",
                             "--nonblocking", "--output", str(output)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def run_hub(config: Path, directory: Path, servers: Servers, *, expected: int, records: int, topic: str, group: str,
            profile: Path | None = None, py_spy: Path | None = None, lift_quota: bool = False) -> HubRun:
    """Start `hub run`, sample until `expected` events are delivered, wait for the commits, stop it.

    `lift_quota`: without the PutEvents quota limiter (bench/_unlimited_hub.py), so the hub's CPU sets the pace.
    """
    port = yaml.safe_load(config.read_text())["http"]["port"]
    base = f"http://127.0.0.1:{port}"
    hub = [str(ROOT / "bench" / "_unlimited_hub.py")] if lift_quota else ["-m", "personalize_hub.cli"]
    command = [sys.executable, *hub, "run", "--config", str(config), "--log-level", "warning"]
    if profile is not None:
        command[1:1] = ["-m", "cProfile", "-o", str(profile)]
    log_offset = servers.personalize_log.stat().st_size
    env = {**os.environ, **services.DUMMY_CREDENTIALS}
    hub_log = directory / "hub.log"
    with services.running(command, port, base, hub_log, env=env, ready_url=f"{base}/healthz",
                          stop_signal=signal.SIGINT) as hub:
        pids = {"hub": hub.process.pid, **servers.pids}
        sampler = _sampler(hub.process.pid, py_spy) if py_spy is not None else None
        samples: list[_Sample] = []
        with httpx.Client() as client:
            last_change = time.monotonic()
            while True:
                sample = _sample(client, f"{base}/metrics", pids)
                if samples and sample.delivered != samples[-1].delivered:
                    last_change = time.monotonic()
                samples.append(sample)
                if sample.delivered >= expected:
                    break
                if time.monotonic() - last_change > STALL_SECS:
                    print(f"  no delivery for {STALL_SECS:.0f} s: {sample.delivered:,} of {expected:,}; see {hub_log}")
                    break
                if hub.process.poll() is not None:
                    raise RuntimeError(f"hub exited with {hub.process.returncode}: see {hub_log}")
                time.sleep(POLL_SECS)
        services.stop(sampler, stop_signal=signal.SIGINT)  # py-spy writes its file on SIGINT
        committed, deadline = 0, time.monotonic() + COMMIT_WAIT_SECS
        while committed < records and time.monotonic() < deadline:
            committed = asyncio.run(_committed(servers.bootstrap, group, topic))
            time.sleep(0.2)
        status = Path(f"/proc/{hub.process.pid}/status").read_text().splitlines()
        max_rss_kib = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    if hub.process.returncode not in (0, 1, -signal.SIGINT):  # 1: the KeyboardInterrupt after a graceful stop
        print(f"  hub exited with {hub.process.returncode}:\n" + hub_log.read_text()[-3000:])
    first = next(s for s in samples if s.delivered > 0)
    last = next(s for s in samples if s.delivered == samples[-1].delivered)
    dead_letter = directory / "dead-letter.jsonl"
    return HubRun(
        delivered=last.delivered - first.delivered, received=last.received - first.received,
        calls=last.calls - first.calls, elapsed_secs=last.at - first.at,
        cpu_secs={name: last.cpu_secs[name] - first.cpu_secs[name] for name in pids},
        hub_calls_total=samples[-1].calls, server_calls_total=_answered_putevents(servers.personalize_log, log_offset),
        committed=committed, max_rss_mib=max_rss_kib / 1024,
        dead_lettered=len(dead_letter.read_bytes().splitlines()) if dead_letter.exists() else 0,
    )
