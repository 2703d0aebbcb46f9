"""Runs the demo: local_personalize + the embedded hub, a synthetic shop streamed through the webhook."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import boto3
import httpx
import uvicorn
from prometheus_client import REGISTRY
from botocore.config import Config as BotoConfig
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from personalize_hub.bootstrap import ensure_stack, wait_active
from personalize_hub.config import parse_config
from personalize_hub.demo import datasets
from personalize_hub.demo.campaign import show_campaign
from synthetic_shop import Storefront, batches
from personalize_hub.ingest import build_app
from personalize_hub.runtime import Hub

REGION = "us-east-1"
# The demo's webhook listens on loopback only; this key guards nothing outside this process tree.
DEMO_WRITE_KEY = "demo-write-key"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def local_personalize(data_dir: Path, log_path: Path):
    """A local_personalize process on a free loopback port, stopped on exit."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "local_personalize", "--host", "127.0.0.1", "--port", str(port),
             "--data", str(data_dir), "--file-root", str(data_dir.parent), "--log-level", "warning"],
            stdout=log, stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"local_personalize exited with {process.returncode}; see {log_path}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/ping", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"local_personalize did not start; see {log_path}")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


class ControlPlane:
    """The Personalize calls a user would make in the console, through real boto3 clients."""

    def __init__(self, url: str):
        config = BotoConfig(retries={"mode": "standard", "max_attempts": 3})
        self.personalize = boto3.client("personalize", endpoint_url=url, region_name=REGION, config=config)
        self.runtime = boto3.client("personalize-runtime", endpoint_url=url, region_name=REGION, config=config)

    def create_shop(self) -> dict[str, str]:
        schemas = {"Interactions": datasets.INTERACTIONS, "Items": datasets.ITEMS, "Users": datasets.USERS}
        return ensure_stack(self.personalize, "demo-shop", schemas).ids  # what `hub bootstrap` does

    def train(self, dataset_group: str) -> str:
        p = self.personalize
        solution = p.create_solution(name="demo-shop-user-personalization", datasetGroupArn=dataset_group,
                                     recipeArn="arn:aws:personalize:::recipe/aws-user-personalization")["solutionArn"]
        self.wait("describe_solution", "solutionArn", solution, "solution")
        version = p.create_solution_version(solutionArn=solution)["solutionVersionArn"]
        self.wait("describe_solution_version", "solutionVersionArn", version, "solutionVersion", timeout_secs=600)
        campaign = p.create_campaign(name="demo-shop-campaign", solutionVersionArn=version,
                                     minProvisionedTPS=1)["campaignArn"]
        self.wait("describe_campaign", "campaignArn", campaign, "campaign")
        return campaign

    def metrics(self, campaign: str) -> dict[str, float]:
        version = self.personalize.describe_campaign(campaignArn=campaign)["campaign"]["solutionVersionArn"]
        return self.personalize.get_solution_metrics(solutionVersionArn=version)["metrics"]

    def recommend(self, campaign: str, user_id: str, n: int = 5) -> list[str]:
        items = self.runtime.get_recommendations(campaignArn=campaign, userId=user_id, numResults=n)["itemList"]
        return [item["itemId"] for item in items]

    def wait(self, operation: str, key: str, arn: str, field: str, timeout_secs: float = 120) -> dict[str, Any]:
        return wait_active(self.personalize, operation, key, arn, field, timeout_secs)


def hub_config(data_dir: Path, port: int, personalize_url: str, arns: dict[str, str], console_token: str) -> Any:
    return parse_config({
        "http": {"host": "127.0.0.1", "port": port},
        "aws": {"region": REGION, "personalize_endpoint_url": personalize_url},
        "identity": {"store": {"type": "sqlite", "path": str(data_dir / "identity.sqlite3")}},
        "schemas": {"interactions": datasets.INTERACTIONS, "items": datasets.ITEMS, "users": datasets.USERS},
        "sources": [{"type": "segment_webhook", "id": "shop", "write_keys": [DEMO_WRITE_KEY]}],
        "destinations": [
            {"type": "personalize_events", "id": "interactions", "tracking_id": arns["tracking_id"]},
            {"type": "personalize_items", "id": "catalog", "dataset_arn": arns["items"]},
            {"type": "personalize_users", "id": "profiles", "dataset_arn": arns["users"]},
        ],
        "dead_letter": {"type": "file", "id": "dead_letter", "path": str(data_dir / "dead-letter.jsonl")},
        "readiness": {"store": "sqlite", "path": str(data_dir / "readiness.sqlite3")},
        "console": {"token": console_token},
    }, {})


@contextlib.asynccontextmanager
async def serve(hub: Hub, port: int) -> AsyncIterator[str]:
    """The hub's HTTP app on a loopback port, in this event loop: the same path `hub run` serves."""
    server = uvicorn.Server(uvicorn.Config(build_app(hub), host="127.0.0.1", port=port, log_level="warning",
                                           access_log=False, lifespan="on", timeout_graceful_shutdown=2))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def post_all(client: httpx.AsyncClient, messages: list[dict[str, Any]], advance: Callable[[int], None],
                   concurrency: int = 16) -> dict[str, int]:
    """POST /v1/batch of 100, a few in flight, as a Segment server library would; tallies the answers."""
    totals = {"accepted": 0, "rejected": 0}
    queue: asyncio.Queue[list[dict[str, Any]]] = asyncio.Queue()
    for batch in batches(messages):
        queue.put_nowait(batch)

    async def worker() -> None:
        while not queue.empty():
            batch = queue.get_nowait()
            for attempt in range(5):
                response = await client.post("/v1/batch", json={"batch": batch})
                if response.status_code != 503:
                    break
                await asyncio.sleep(0.5 * (attempt + 1))  # delivery asked us to come back later
            response.raise_for_status()
            totals["accepted"] += response.json()["accepted"]
            totals["rejected"] += response.json()["rejected"]
            advance(len(batch))

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return totals


async def run_demo(data_dir: Path, users: int, console: Console, keep_running: bool = False) -> None:
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    # local_personalize accepts any signature; botocore still wants some credentials to sign with.
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
    shop = Storefront(users=users)
    names = {p.product_id: f"{p.name} ({p.category})" for p in shop.products}

    with local_personalize(data_dir / "local_personalize", data_dir / "local_personalize.log") as personalize_url:
        console.print(f"[bold]1.[/] local_personalize is serving on {personalize_url}", soft_wrap=True)
        control = ControlPlane(personalize_url)
        arns = await asyncio.to_thread(control.create_shop)
        # soft_wrap: ids are copied from here, and a line break inside one breaks the copy (issue 14).
        console.print(f"[bold]2.[/] dataset group, 3 datasets and an event tracker: trackingId {arns['tracking_id']}",
                      soft_wrap=True)

        console_token = secrets.token_urlsafe(24)  # this run's console only; printed below for the person running it
        hub = Hub(hub_config(data_dir, free_port(), personalize_url, arns, console_token))
        async with serve(hub, hub.config.http.port) as hub_url, httpx.AsyncClient(
            base_url=hub_url, auth=(DEMO_WRITE_KEY, ""), timeout=60) as client:
            console.print(f"[bold]3.[/] the hub is serving the Segment webhook on {hub_url}/v1/batch", soft_wrap=True)
            console.print(f"    operator console: {hub_url}/console/ (token: {console_token})", soft_wrap=True)
            catalog, clicks = shop.catalog_events(), shop.clickstream()
            columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
            with Progress(*columns, console=console) as progress:
                task = progress.add_task("catalog (Product Created → PutItems)", total=len(catalog))
                await post_all(client, catalog, lambda n: progress.advance(task, n))
                task = progress.add_task(f"clickstream of {users} shoppers", total=len(clicks))
                started = time.perf_counter()
                totals = await post_all(client, clicks, lambda n: progress.advance(task, n))
                elapsed = time.perf_counter() - started
            calls = REGISTRY.get_sample_value("hub_batch_fill_ratio_count", {"destination": "interactions"}) or 0
            console.print(f"    {totals['accepted']} events accepted, {totals['rejected']} rejected "
                          f"({len(clicks) / elapsed:,.0f} events/s, each delivered before its batch was answered; "
                          f"{calls:,.0f} PutEvents calls of one session each)")
            for report in [await hub.readiness.store.report(arns["tracking_id"])]:
                console.print(f"    readiness: {report.interactions} interactions, {report.users_with_two} users "
                              f"with >= 2, {report.items} items: {'ready to train' if report.ready else report.missing()}")

            with console.status("[bold]4.[/] training aws-user-personalization and deploying a campaign"):
                campaign = await asyncio.to_thread(control.train, arns["dataset_group"])
            metrics = await asyncio.to_thread(control.metrics, campaign)
            console.print("[bold]4.[/] campaign ACTIVE; offline metrics: " + ", ".join(
                f"{k} {metrics[k]:.3f}" for k in ("normalized_discounted_cumulative_gain_at_10", "precision_at_10",
                                                   "coverage") if k in metrics))

            await show_live_updates(shop, control, campaign, client, names, console)
            solution_version = control.personalize.describe_campaign(
                campaignArn=campaign)["campaign"]["solutionVersionArn"]
            await asyncio.to_thread(show_campaign, shop, data_dir, personalize_url, solution_version, free_port(),
                                    console)
            console.print(f"\nEverything the demo wrote is under {data_dir}/ (dead letter: dead-letter.jsonl).",
                          soft_wrap=True)
            if keep_running:
                console.print(f"The stack stays up until Ctrl+C: console {hub_url}/console/ (token: {console_token}), "
                              f"webhook {hub_url}/v1/batch (write key {DEMO_WRITE_KEY}), "
                              f"local_personalize {personalize_url}", soft_wrap=True)
                await asyncio.Event().wait()


async def show_live_updates(shop: Storefront, control: ControlPlane, campaign: str, client: httpx.AsyncClient,
                            names: dict[str, str], console: Console, shoppers: int = 3) -> None:
    """Recommendations before and after a shopper's newest session, with no retraining in between."""
    console.print("[bold]5.[/] a few shoppers come back and browse a category they never looked at:")
    for shopper in shop.shoppers[:shoppers]:
        before = await asyncio.to_thread(control.recommend, campaign, shopper.user_id)
        new_category = next(c for c in ("climbing", "fishing", "yoga", "skiing", "swimming", "cycling")
                            if c not in shopper.favourites)
        session = shop.session(shopper, shop.now, category=new_category, log_in=True)
        await post_all(client, session, lambda n: None, concurrency=1)
        after = await asyncio.to_thread(control.recommend, campaign, shopper.user_id)
        table = Table(title=f"{shopper.user_id} (likes {', '.join(shopper.favourites)}) then browses {new_category}")
        table.add_column("before")
        table.add_column("after their new session")
        for old, new in zip(before, after, strict=False):
            table.add_row(names.get(old, old), names.get(new, new))
        console.print(table)

