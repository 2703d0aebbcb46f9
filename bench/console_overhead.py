"""What the operator console costs ingestion: `/v1/batch` throughput with the console off, and on with one
live-events client attached (Server-Sent Events), measured in alternating rounds in one run.

The traffic, the load generator and the hub config are bench/webhook_batch.py's; the only difference between
the two hubs is `console: {enabled: false}` versus a console with a token and a browser-like client reading
/console/api/events/stream for the whole run. Target: the console-on throughput ≥ 0.9× console-off.

    python bench/console_overhead.py [--rounds 2] [--duration-secs 12] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
from pathlib import Path

import httpx

from _http_load import ServerProcess
from webhook_batch import HUB_CONFIG, WRITE_KEY, batch_bodies, combine, free_port, measure

TOKEN = "bench-console-token-0123456789"


class LiveClient(threading.Thread):
    """Reads the live-events stream like an open browser tab; counts the events it was sent."""

    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.url, self.events, self.frames, self.stop = url, 0, 0, threading.Event()

    def run(self) -> None:
        headers = {"Authorization": f"Bearer {TOKEN}", "Accept": "text/event-stream"}
        with httpx.stream("GET", self.url, headers=headers, timeout=None) as response:
            for line in response.iter_lines():
                if self.stop.is_set():
                    return
                if line.startswith("data: "):
                    self.frames += 1
                    self.events += line.count('"seq":')


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--duration-secs", type=float, default=12.0)
    parser.add_argument("--warmup-secs", type=float, default=3.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--delivered-per-sec", type=int, default=None,
                        help="console.delivered_per_sec for the console-on hub (default: the config default)")
    args = parser.parse_args()
    budget = f", delivered_per_sec: {args.delivered_per_sec}" if args.delivered_per_sec else ""

    bodies, _ = batch_bodies()
    print(f"/v1/batch of 100 Segment events, {args.concurrency} in flight, {args.rounds} x {args.duration_secs:g} s "
          "per hub; console off vs console on with one live-events client", flush=True)
    off_results, on_results = [], []
    with tempfile.TemporaryDirectory(prefix="bench-console-") as tmp:
        servers = {}
        for name, console in (("off", "console: {enabled: false}\n"), ("on", f"console: {{token: {TOKEN}{budget}}}\n")):
            data_dir = Path(tmp) / name
            data_dir.mkdir()
            port = free_port()
            config = data_dir / "hub.yaml"
            config.write_text(HUB_CONFIG.format(port=port, write_key=WRITE_KEY, data_dir=data_dir) + console)
            servers[name] = (port, ServerProcess(
                [sys.executable, "-m", "personalize_hub.cli", "run", "--config", str(config), "--log-level", "WARNING"],
                f"http://127.0.0.1:{port}/readyz", env={**os.environ, "HUB_LOG_LEVEL": "WARNING"}, cwd=data_dir))
        (off_port, off_hub), (on_port, on_hub) = servers["off"], servers["on"]
        with off_hub, on_hub:
            live = LiveClient(f"http://127.0.0.1:{on_port}/console/api/events/stream")
            live.start()
            for round_number in range(1, args.rounds + 1):
                print(f"round {round_number}", flush=True)
                off_results.append(measure("off", off_hub, off_port, bodies, args))
                on_results.append(measure("on", on_hub, on_port, bodies, args))
            live.stop.set()
    off, on = combine(off_results), combine(on_results)
    off_rate, on_rate = off.counted / off.window_secs, on.counted / on.window_secs
    print()
    print(f"console off: {off_rate:9,.0f} events/s   CPU {off.server_cpu_secs / off.counted * 1e6:5.1f} µs/event")
    print(f"console on : {on_rate:9,.0f} events/s   CPU {on.server_cpu_secs / on.counted * 1e6:5.1f} µs/event"
          f"   (live client received {live.events:,} events in {live.frames:,} frames)")
    ratio = on_rate / off_rate
    print(f"ratio on/off: throughput {ratio:.3f} (target >= 0.9)")
    return 0 if live.events else 1


if __name__ == "__main__":
    sys.exit(main())
