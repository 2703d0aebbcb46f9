"""Bench plumbing for HTTP servers: start one in its own process, drive it with keep-alive load, read its CPU.

The load generator runs in a separate process (`python bench/_http_load.py ...`, started by `run_load`) so
the server under test and the client each get a core of their own on a 2-core machine, and the client's
CPU never counts as the server's. It keeps `concurrency` requests in flight over aiohttp keep-alive
connections, cycling through pre-encoded bodies, and reports to the parent on stdout: a `START` line when
warm-up ends and a JSON summary when the measured window closes, so the parent can sample the server's
CPU time at exactly those two moments.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import orjson

_CLOCK_TICKS_PER_SEC = os.sysconf("SC_CLK_TCK")


def process_cpu_secs(pid: int) -> float:
    """User + system CPU seconds of a process, all threads (fields 14 and 15 of /proc/<pid>/stat, proc(5))."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # The command name (field 2) may contain spaces: count fields after its closing parenthesis.
    fields = stat[stat.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / _CLOCK_TICKS_PER_SEC


class ServerProcess:
    """A server in a child process, ready once `ready_url` answers 200; stopped (SIGTERM, then kill) on exit."""

    def __init__(self, argv: list[str], ready_url: str, *, env: dict[str, str] | None = None,
                 cwd: Path | None = None, start_timeout_secs: float = 30.0):
        self.argv, self.ready_url, self.env, self.cwd = argv, ready_url, env, cwd
        self.start_timeout_secs = start_timeout_secs
        self.log = tempfile.TemporaryFile()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def __enter__(self) -> ServerProcess:
        self.process = subprocess.Popen(self.argv, env=self.env, cwd=self.cwd, stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + self.start_timeout_secs
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.output()}")
            try:
                with urllib.request.urlopen(self.ready_url, timeout=1) as response:
                    if response.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.1)
        self.__exit__(None, None, None)
        raise RuntimeError(f"server not ready after {self.start_timeout_secs} s:\n{self.output()}")

    def __exit__(self, *exc_info: object) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()  # uvicorn drains in-flight requests and runs the lifespan shutdown
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-4000:]


@dataclass
class LoadResult:
    """What one load run measured inside its window (warm-up excluded), plus totals over the whole run."""

    window_secs: float
    requests: int
    latencies_secs: list[float]
    statuses: Counter[int]
    counted: int  # sum of the `count_field` of 2xx answers in the window (e.g. events accepted)
    total_counted: int  # the same over the whole run, warm-up included
    server_cpu_secs: float | None = None
    errors: list[str] = field(default_factory=list)

    @property
    def requests_per_sec(self) -> float:
        return self.requests / self.window_secs

    def percentile_secs(self, q: float) -> float:
        """Nearest-rank percentile of the request latencies (q in 0..100)."""
        ordered = sorted(self.latencies_secs)
        if not ordered:
            return float("nan")
        rank = max(1, -(-len(ordered) * q // 100))
        return ordered[int(rank) - 1]


def run_load(url: str, bodies: list[bytes], *, headers: dict[str, str], concurrency: int, warmup_secs: float,
             duration_secs: float, count_field: str | None = None, server_pid: int | None = None) -> LoadResult:
    """POST `bodies` round-robin to `url` from a separate process; sample `server_pid`'s CPU over the window."""
    with tempfile.NamedTemporaryFile(suffix=".bodies") as spool:
        for body in bodies:  # length-prefixed, so bodies may hold any bytes
            spool.write(len(body).to_bytes(4, "big") + body)
        spool.flush()
        argv = [sys.executable, __file__, "--url", url, "--bodies", spool.name, "--concurrency", str(concurrency),
                "--warmup-secs", str(warmup_secs), "--duration-secs", str(duration_secs),
                "--headers", orjson.dumps(headers).decode()]
        if count_field:
            argv += ["--count-field", count_field]
        client = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
        assert client.stdout is not None
        cpu_at_start = None
        summary = None
        for line in client.stdout:
            if line.strip() == "START" and server_pid is not None:
                cpu_at_start = process_cpu_secs(server_pid)
            elif line.startswith("{"):
                cpu_used = process_cpu_secs(server_pid) - cpu_at_start if cpu_at_start is not None else None
                summary = orjson.loads(line)
                summary["server_cpu_secs"] = cpu_used
        if client.wait() != 0 or summary is None:
            raise RuntimeError(f"load generator failed with exit code {client.returncode}")
    summary["statuses"] = Counter({int(k): v for k, v in summary["statuses"].items()})
    return LoadResult(**summary)


# ---- the load generator process -------------------------------------------------------------------------

def _read_bodies(path: str) -> list[bytes]:
    data, bodies, at = Path(path).read_bytes(), [], 0
    while at < len(data):
        size = int.from_bytes(data[at : at + 4], "big")
        bodies.append(data[at + 4 : at + 4 + size])
        at += 4 + size
    return bodies


async def _generate(args: argparse.Namespace) -> dict:
    import aiohttp  # imported here: only the generator process needs it

    bodies = _read_bodies(args.bodies)
    headers = orjson.loads(args.headers)
    started = time.perf_counter()
    window_start, window_end = started + args.warmup_secs, started + args.warmup_secs + args.duration_secs
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    errors: list[str] = []
    counted = total_counted = 0
    next_body = 0

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal counted, total_counted, next_body
        while (sent_at := time.perf_counter()) < window_end:
            body = bodies[next_body % len(bodies)]
            next_body += 1
            async with session.post(args.url, data=body, headers=headers) as response:
                answer = await response.read()
            done_at = time.perf_counter()
            count = 0
            if args.count_field and 200 <= response.status < 300:
                count = orjson.loads(answer).get(args.count_field, 0)
            elif response.status >= 300 and len(errors) < 5:
                errors.append(f"{response.status}: {answer[:300].decode(errors='replace')}")
            total_counted += count
            # A request counts in the window if it both started and finished inside it.
            if sent_at >= window_start and done_at <= window_end:
                latencies.append(done_at - sent_at)
                statuses[response.status] += 1
                counted += count

    async def mark_window_start() -> None:
        await asyncio.sleep(max(0.0, window_start - time.perf_counter()))
        print("START", flush=True)

    connector = aiohttp.TCPConnector(limit=args.concurrency, force_close=False)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(mark_window_start(), *(worker(session) for _ in range(args.concurrency)))
    return {"window_secs": args.duration_secs, "requests": len(latencies), "latencies_secs": latencies,
            "statuses": {str(k): v for k, v in statuses.items()}, "counted": counted,
            "total_counted": total_counted, "errors": errors}


def main() -> None:
    parser = argparse.ArgumentParser(description="keep-alive HTTP POST load generator (used by bench scripts)")
    parser.add_argument("--url", required=True)
    parser.add_argument("--bodies", required=True, help="file of 4-byte-length-prefixed request bodies")
    parser.add_argument("--headers", default="{}", help="JSON object of request headers")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--warmup-secs", type=float, default=2.0)
    parser.add_argument("--duration-secs", type=float, default=10.0)
    parser.add_argument("--count-field", help="sum this field of each 2xx JSON answer")
    summary = asyncio.run(_generate(parser.parse_args()))
    print(orjson.dumps(summary).decode(), flush=True)


if __name__ == "__main__":
    main()
