"""Splits a py-spy profile of the hub into the hub's own code and what it runs on (the loop, clients, C codecs).

Run: `python bench/_profile_split.py FILE [--us-per-event X]` on the raw collapsed stacks `py-spy record --format raw`
writes (what the benches' `--py-spy FILE` leave); `bench/streaming_throughput.py` and `bench/webhook_batch.py` print
it after a `--py-spy` run, scaled to the run's µs of hub CPU per event.

Each sample goes to the innermost frame somebody owns: a frame of the hub's packages (`hub/`, `connectors/`,
`personalize_hub/`) counts for the hub, by package; a frame of a library (aiokafka, asyncio, the HTTP server, redis-py,
prometheus_client, ...) for that library; the loop's own time (`Runner.run` as the innermost frame) for the event loop.
Without `--native`, C called from a Python line counts for that line: msgspec's parse inside the hub's decoder and
the socket write inside the hub's HTTP client count for the hub, so the hub's share is an upper bound. Profiles
taken with py-spy's `--native` resolve the C frames too: syscalls, msgspec, json's C encoder, hashing, GC.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

HUB_PACKAGES = ("hub/", "connectors/", "personalize_hub/")
# The hub's own code, by the part of the architecture it is (the first matching prefix wins).
HUB_AREAS = (
    ("connectors/sources/", "hub: sources (kafka flow, webhooks)"),
    ("connectors/formats/", "hub: dialect decoders (Segment, mParticle)"),
    ("connectors/destinations/personalize/mapping/", "hub: mapping + validation"),
    ("connectors/destinations/personalize/", "hub: Personalize destination (encode, wire)"),
    ("connectors/destinations/", "hub: other destinations (file, ...)"),
    ("connectors/", "hub: HTTP client, SigV4"),
    ("hub/identity/", "hub: identity"),
    ("hub/delivery/", "hub: runner, batcher"),
    ("hub/pipeline.py", "hub: pipeline"),
    ("hub/", "hub: events, telemetry, ..."),
    ("personalize_hub/", "hub: runtime, console, HTTP app"),
)
LIBRARIES = (
    ("aiokafka/", "aiokafka"),
    ("asyncio/", "asyncio (Python part)"),
    ("uvicorn/", "HTTP server (uvicorn, Starlette, h11)"),
    ("starlette/", "HTTP server (uvicorn, Starlette, h11)"),
    ("h11/", "HTTP server (uvicorn, Starlette, h11)"),
    ("httptools/", "HTTP server (uvicorn, Starlette, h11)"),
    ("redis/", "redis-py"),
    ("prometheus_client/", "prometheus_client"),
    ("botocore/", "botocore"),
    ("aiobotocore/", "botocore"),
)
NATIVE = (  # (file or library in the frame, name prefixes (none: any name), category): only in --native profiles
    ("libc.so", ("write", "read", "writev", "send", "recv", "epoll", "getpid"), "syscalls"),
    ("gcmodule.c", (), "garbage collection"),
    ("msgspec/", (), "msgspec (C)"),
    ("_json.c", (), "json encoder (C)"),
    ("_hashopenssl", (), "hashing (OpenSSL)"),
    ("libcrypto", (), "hashing (OpenSSL)"),
)
EVENT_LOOP = "event loop (uvloop)"
_FRAME = re.compile(r"^(?P<name>.*) \((?P<file>[^():]*)(?::\d+)?\)$")


def owner(frames: list[str]) -> str:
    """The category of one sample: its innermost frame that belongs to a known owner."""
    for index in range(len(frames) - 1, -1, -1):
        match = _FRAME.match(frames[index])
        if match is None:
            continue
        name, file = match["name"], match["file"]
        for where, names, category in NATIVE:
            if where in file and (not names or name.startswith(names)):
                return category
        if file.endswith(".py"):
            if file.startswith(HUB_PACKAGES):
                return next(area for prefix, area in HUB_AREAS if file.startswith(prefix))
            if index == len(frames) - 1 and name == "Runner.run" and file.endswith("asyncio/runners.py"):
                return EVENT_LOOP  # the loop's C internals, seen from its only Python frame
            for where, library in LIBRARIES:
                if where in file:
                    return library
            return "other Python (stdlib, other libraries)"
        if "loop.c" in file or "uvloop" in file:
            return EVENT_LOOP
    return "other native"


def split(path: Path) -> Counter[str]:
    """Samples per category in a raw collapsed-stacks file."""
    samples: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack:
            samples[owner(stack.split(";"))] += int(count)
    return samples


def report(path: Path, us_per_event: float | None = None) -> str:
    samples = split(path)
    total = sum(samples.values()) or 1
    hub = sum(n for category, n in samples.items() if category.startswith("hub: "))
    lines = [f"where the hub's CPU went ({total:,} py-spy samples; C called from a Python line counts for that line "
             f"unless sampled with --native):"]
    for category, count in sorted(samples.items(), key=lambda item: (not item[0].startswith("hub: "), -item[1])):
        share = count / total
        per_event = f"  {share * us_per_event:5.1f} µs/event" if us_per_event else ""
        lines.append(f"  {share:6.1%}{per_event}  {category}")
    for label, count in (("the hub's own code", hub), ("what it runs on", total - hub)):
        per_event = f" = {count / total * us_per_event:.1f} µs/event" if us_per_event else ""
        lines.append(f"  {label}: {count / total:.0%}{per_event}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profile", type=Path, help="py-spy raw collapsed stacks")
    parser.add_argument("--us-per-event", type=float, help="the run's hub CPU per event, to scale the shares")
    args = parser.parse_args()
    print(report(args.profile, args.us_per_event))


if __name__ == "__main__":
    main()
