"""The demo's last act: the weekly email campaign as a batch job, run twice, with one rendered email shown."""

from __future__ import annotations

import contextlib
import csv
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from email import message_from_bytes
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.panel import Panel

from synthetic_shop import Storefront

CAMPAIGN_USERS = 200


@contextlib.contextmanager
def private_redis(data_dir: Path, port: int) -> Iterator[str | None]:
    """A throw-away redis-server for the job ledger, when one is installed (scripts/setup installs it)."""
    binary = shutil.which("redis-server")
    if binary is None:
        yield None
        return
    data_dir.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                "--appendonly", "no", "--dir", str(data_dir)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        import redis

        client = redis.Redis(port=port)
        for _ in range(100):
            with contextlib.suppress(redis.ConnectionError):
                if client.ping():
                    break
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(10)


def write_inputs(shop: Storefront, data_dir: Path) -> tuple[Path, Path]:
    """The campaign's audience (JSON lines) and the catalog CSV the exports are decorated from."""
    users = data_dir / "campaign-users.jsonl"
    users.write_text("".join(json.dumps({"userId": s.user_id, "email": s.email, "first_name": s.user_id.title()})
                             + "\n" for s in shop.shoppers[:CAMPAIGN_USERS]))
    catalog = data_dir / "catalog.csv"
    with open(catalog, "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["ITEM_ID", "NAME", "PRICE", "URL", "IMAGE"])
        writer.writerows([p.product_id, p.name, p.price, p.url, p.image] for p in shop.products)
    return users, catalog


def campaign_config(data_dir: Path, personalize_url: str, redis_url: str, solution_version: str,
                    users: Path, catalog: Path) -> Path:
    path = data_dir / "campaign.yaml"
    path.write_text(yaml.safe_dump({
        "aws": {"personalize_endpoint_url": personalize_url},
        "workers": {"redis_url": redis_url, "work_uri": (data_dir / "jobs").resolve().as_uri(), "poll_interval_secs": 0.5},
        "jobs": [{
            "name": "weekly_email",
            "description": "Five products each customer will like, by email.",
            "schedule": "0 6 * * 1",
            "recipe": "user_recommendations",
            "solution_version_arn": solution_version,
            "input": users.resolve().as_uri(),
            "num_results": 5,
            "items_catalog": catalog.resolve().as_uri(),
            "item_metadata": ["NAME", "PRICE", "URL", "IMAGE"],
            "destinations": [
                {"type": "email", "id": "email", "from_address": "picks@shop.example", "from_name": "Demo Outdoor Shop",
                 "subject": "Picked for you this week",
                 "transport": {"kind": "pickup", "directory": str(data_dir / "outbox")}},
                {"type": "file", "id": "export", "path": str(data_dir / "campaign-export.jsonl")},
            ],
        }],
    }, sort_keys=False))
    return path


def run_job(config: Path) -> dict[str, Any]:
    """`hub jobs run weekly_email --eager`, as a user would type it; returns its JSON report."""
    result = subprocess.run([sys.executable, "-m", "personalize_hub.cli", "jobs", "run", "weekly_email", "--config", str(config),
                             "--eager", "--json"], capture_output=True, text=True, timeout=600)
    if result.returncode not in (0, 3):
        raise RuntimeError(f"the campaign job failed ({result.returncode}):\n{result.stderr[-2000:]}")
    return json.loads(result.stdout)


def show_campaign(shop: Storefront, data_dir: Path, personalize_url: str, solution_version: str, redis_port: int,
                  console: Console) -> None:
    with private_redis(data_dir / "redis", redis_port) as redis_url:
        if redis_url is None:
            console.print("[bold]6.[/] skipped the email campaign: it keeps its delivery ledger in Redis, and "
                          "redis-server is not installed (scripts/setup installs it)")
            return
        users, catalog = write_inputs(shop, data_dir)
        config = campaign_config(data_dir, personalize_url, redis_url, solution_version, users, catalog)
        with console.status(f"[bold]6.[/] weekly email campaign for {CAMPAIGN_USERS} customers: batch inference, "
                            "decoration from the catalog, one email each"):
            first = run_job(config)
        console.print(f"[bold]6.[/] campaign run {first['run_id']}: {_sent(first)}")
        second = run_job(config)
        console.print(f"    run again with the same recommendations: {_sent(second)}")
    emails = sorted((data_dir / "outbox").glob("*.eml"))
    if emails:
        message = message_from_bytes(emails[0].read_bytes(), policy=default_policy)
        body = message.get_body(("plain",)).get_content()
        console.print(Panel(body.strip(), title=f"To: {message['To']} | Subject: {message['Subject']}",
                            subtitle=f"{len(emails)} emails in {data_dir / 'outbox'}"))


def _sent(report: dict[str, Any]) -> str:
    counts = report.get("destinations", {})
    return "; ".join(f"{name}: " + ", ".join(f"{k} {v}" for k, v in sorted(c.items()) if v) for name, c in counts.items())
