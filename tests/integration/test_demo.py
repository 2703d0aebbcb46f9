"""The README's main job: `hub demo` end to end on this machine (local_personalize, webhook, training, campaign)."""

from __future__ import annotations

import email
import json
import re
import shutil
import subprocess
import sys
from email.policy import default

import pytest


@pytest.mark.slow
def test_hub_demo_runs_end_to_end(tmp_path):
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed: scripts/setup installs it")
    data_dir = tmp_path / "demo"
    result = subprocess.run([sys.executable, "-m", "personalize_hub.cli", "demo", "--users", "300", "--data-dir", str(data_dir)],
                            capture_output=True, text=True, timeout=600, env={"COLUMNS": "80", "PATH": "/usr/bin:/bin",
                                                                              "HOME": str(tmp_path)})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "ready to train" in result.stdout and "campaign ACTIVE" in result.stdout
    assert "0 rejected" in result.stdout
    # Ids are printed whole on their line, however narrow the terminal (COLUMNS=80): they are copied from here.
    assert re.search(r"trackingId [0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\n", result.stdout)
    assert re.search(r"operator console: http://127\.0\.0\.1:\d+/console/ \(token: \S{20,}\)", result.stdout)
    # The campaign mailed every customer once, and the second run found nothing changed.
    outbox = sorted((data_dir / "outbox").glob("*.eml"))
    assert len(outbox) == 200
    assert "unchanged 200" in result.stdout
    message = email.message_from_bytes(outbox[0].read_bytes(), policy=default)
    catalog_names = {line.split(",")[1] for line in (data_dir / "catalog.csv").read_text().splitlines()[1:]}
    body = message.get_body(("plain",)).get_content()
    exported = [json.loads(line) for line in (data_dir / "campaign-export.jsonl").read_text().splitlines()]
    assert len(exported) == 200 and all(1 <= len(r["items"]) <= 5 for r in exported)
    mailed = next(r for r in exported if r["email"] == message["To"].addresses[0].addr_spec)
    assert sum(name in body for name in catalog_names) == len(mailed["items"])
    dead_letter = data_dir / "dead-letter.jsonl"
    assert not dead_letter.exists() or dead_letter.read_text() == ""
