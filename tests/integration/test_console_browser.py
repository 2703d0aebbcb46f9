"""The console in a real browser (Debian's chromium through chromedriver) against a running `hub run`.

Events posted to the Segment webhook appear in the live view with their records; a rejected one shows its
reason; after the cause is fixed (the mapping learns where the item id is) it is replayed from the
dead-letter page and delivered; the token is required; the jobs page shows a run and the lifecycle events.
Screenshots of every page land in var/console/ for a person to look at.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from tests.fixtures.services import free_port

ROOT = Path(__file__).parents[2]
SHOTS = ROOT / "var" / "console"
TOKEN = "browser-test-console-token"
WRITE_KEY = "wk-browser-test"

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def browser():
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        reason = "chromium and chromium-driver are not installed (scripts/test installs them)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,1000", "--no-first-run", "--disable-extensions"):
        options.add_argument(argument)
    return webdriver.Chrome(service=Service(executable_path=driver), options=options)


def hub_config(tmp_path: Path, port: int, redis_url: str, item_id_paths: list[str] | None) -> Path:
    config = {
        "http": {"host": "127.0.0.1", "port": port},
        "identity": {"store": {"type": "sqlite", "path": str(tmp_path / "identity.sqlite3")}},
        "sources": [{"type": "segment_webhook", "id": "web", "write_keys": [WRITE_KEY]}],
        "destinations": [{"type": "file", "id": "records", "path": str(tmp_path / "records.jsonl")}],
        "dead_letter": {"type": "file", "id": "dead_letter", "path": str(tmp_path / "dead-letter.jsonl")},
        "console": {"token": TOKEN},
        "workers": {"redis_url": redis_url, "work_uri": f"file://{tmp_path}/work"},
        "jobs": [{"name": "weekly", "schedule": "0 6 * * 1", "recipe": "user_recommendations",
                  "solution_version_arn": "arn:aws:personalize:us-east-1:000000000000:solution/s/1",
                  "input": f"file://{tmp_path}/users.jsonl",
                  "destinations": [{"type": "file", "id": "weekly_file", "path": str(tmp_path / "out.jsonl")}]}],
    }
    if item_id_paths:
        config["mapping"] = {"interactions": {"item_id": item_id_paths}}
    path = tmp_path / f"hub-{len(item_id_paths or [])}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


class RunningHub:
    def __init__(self, config: Path, port: int, cwd: Path):
        self.base = f"http://127.0.0.1:{port}"
        self.process = subprocess.Popen([sys.executable, "-m", "personalize_hub.cli", "run", "--config", str(config)],
                                        cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        env={**os.environ, "PYTHONPATH": str(ROOT)})
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.base}/readyz").status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        self.process.kill()
        pytest.fail(f"hub did not start: {self.process.stdout.read().decode()[-2000:]}")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(15)


def wait_for(driver, predicate, timeout: float = 15.0, what: str = "condition"):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(lambda d: predicate(d), message=f"waiting for {what}")


def shot(driver, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SHOTS / f"{name}.png"))


def seed_run(redis_url: str) -> str:
    """A finished run of `weekly` in the run store, written through the workers' own Runs API."""
    import redis

    from workers.keys import run_key
    from workers.runs import Runs, RunState, counter_field

    runs = Runs(redis.Redis.from_url(redis_url), ttl_secs=3600)
    run_id = f"weekly-browser-{time.time_ns()}"
    runs.create(run_id, "weekly", "batch_inference")
    runs.update(run_id, users_in=3)
    runs.redis.hset(run_key(run_id), mapping={  # what the exporter counts per recipient
        counter_field("weekly_file", "sent"): 2, counter_field("weekly_file", "unchanged"): 1})
    runs.set_state(run_id, RunState.SUCCEEDED)
    return run_id


def test_console_in_a_real_browser(tmp_path, redis_url):
    from selenium.webdriver.common.by import By

    port = free_port()
    hub = RunningHub(hub_config(tmp_path, port, redis_url, None), port, tmp_path)
    driver = browser()
    try:
        # The token is required: the console answers with the login form, and a wrong token is refused.
        driver.get(f"{hub.base}/console/events")
        assert "Console login" in driver.page_source
        assert httpx.get(f"{hub.base}/console/api/events").status_code == 401
        driver.find_element(By.ID, "token").send_keys("not-the-token")
        driver.find_element(By.ID, "login").click()
        wait_for(driver, lambda d: "wrong token" in d.page_source, what="the login error")
        shot(driver, "login")
        driver.find_element(By.ID, "token").send_keys(TOKEN)
        driver.find_element(By.ID, "login").click()
        wait_for(driver, lambda d: d.find_element(By.ID, "stream-state").text == "live", what="the live stream")

        # Events posted now stream into the open page: one delivered with its record, one rejected with a reason.
        batch = {"batch": [
            {"type": "track", "event": "Product Viewed", "anonymousId": "anon-7", "messageId": "good-1",
             "properties": {"product_id": "sku-1", "price": 9.5}},
            {"type": "track", "event": "Product Viewed", "anonymousId": "anon-7", "messageId": "bad-1",
             "properties": {"item": "sku-2"}},
        ]}
        answer = httpx.post(f"{hub.base}/v1/batch", json=batch, auth=(WRITE_KEY, ""))
        assert answer.status_code == 200 and answer.json()["rejected"] == 1
        rows = wait_for(driver, lambda d: (r := d.find_elements(By.CSS_SELECTOR, "#events li.event")) and
                        len(r) >= 2 and r, what="two streamed events")
        rejected = next(r for r in rows if "rejected" in r.get_attribute("class"))
        delivered = next(r for r in rows if "delivered" in r.get_attribute("class"))
        assert "missing_item_id" in rejected.text
        delivered.find_element(By.TAG_NAME, "summary").click()
        records = json.loads(delivered.find_element(By.CSS_SELECTOR, '[data-f="records"]').text)
        assert records[0]["itemId"] == "sku-1" and records[0]["eventType"] == "Product Viewed"
        shot(driver, "live-events")

        # Pause holds what arrives; resume shows it.
        driver.find_element(By.ID, "pause").click()
        httpx.post(f"{hub.base}/v1/track", auth=(WRITE_KEY, ""), json={
            "event": "Product Clicked", "anonymousId": "anon-7", "messageId": "held-1",
            "properties": {"product_id": "sku-3"}})
        wait_for(driver, lambda d: "1 new" in d.find_element(By.ID, "stream-state").text, what="a held event")
        assert "Product Clicked" not in driver.find_element(By.ID, "events").text
        driver.find_element(By.ID, "pause").click()
        wait_for(driver, lambda d: "Product Clicked" in d.find_element(By.ID, "events").text, what="resumed")

        driver.get(f"{hub.base}/console/")
        wait_for(driver, lambda d: "missing_item_id" in d.page_source, what="the overview")
        shot(driver, "overview")

        # Fix the cause (the item id lives in properties.item for this site) and restart with it.
        hub.stop()
        hub = RunningHub(hub_config(tmp_path, port, redis_url, ["product.product_id", "product.sku", "product.item"]),
                         port, tmp_path)
        driver.get(f"{hub.base}/console/dead-letter?reason=missing_item_id")
        assert "Console login" not in driver.page_source  # the cookie outlives the restart (same token)
        row = driver.find_element(By.CSS_SELECTOR, "#dead-letter tbody tr[data-index]")
        index = row.get_attribute("data-index")
        row.find_element(By.NAME, "pick").click()
        shot(driver, "dead-letter")
        driver.find_element(By.ID, "replay-selected").click()
        wait_for(driver, lambda d: "1 delivered" in d.find_element(By.ID, "replay-state").text, what="the replay")
        delivered_ids = [json.loads(line).get("itemId") for line in (tmp_path / "records.jsonl").read_text().splitlines()]
        assert "sku-2" in delivered_ids

        driver.get(f"{hub.base}/console/dead-letter/{index}")
        assert "sku-2" in driver.page_source and WRITE_KEY not in driver.page_source
        shot(driver, "dead-letter-record")

        # The jobs page: the schedule's next run and a run with its per-destination counts.
        run_id = seed_run(redis_url)
        driver.get(f"{hub.base}/console/jobs")
        job = driver.find_element(By.ID, "job-weekly")
        assert "next run" in job.text and run_id in job.text and "succeeded" in job.text
        assert "weekly_file: 2 / 1 / 0 / 0" in job.text
        shot(driver, "jobs")

        # Lifecycle events the stages recorded are listed below the jobs, a failure marked as one.
        from workers.config import NotificationsConfig
        from workers.notifications import notify

        journal = NotificationsConfig(redis_url=redis_url)
        notify(journal, "gate.failed", "retrain", f"{run_id}-train", reason="ndcg@10 dropped 30 %")
        notify(journal, "batch_job.finished", "weekly", run_id, state="succeeded")
        driver.get(f"{hub.base}/console/jobs")
        lifecycle = driver.find_element(By.ID, "lifecycle")
        rows = [row.text for row in lifecycle.find_elements(By.CLASS_NAME, "lifecycle-event")]
        assert "batch_job.finished" in rows[0] and run_id in rows[0]
        assert "gate.failed" in rows[1] and "ndcg@10 dropped 30 %" in rows[1]
        assert "bad" in lifecycle.find_element(By.XPATH, ".//td[text()='gate.failed']").get_attribute("class")
        driver.execute_script("arguments[0].scrollIntoView()", lifecycle)
        shot(driver, "lifecycle")

        driver.get(f"{hub.base}/console/config")
        assert TOKEN not in driver.page_source and WRITE_KEY not in driver.page_source
        assert "no problems" in driver.page_source
        shot(driver, "config")

        driver.set_window_size(390, 844)  # a phone
        driver.get(f"{hub.base}/console/")
        shot(driver, "overview-phone")
    finally:
        driver.quit()
        hub.stop()
