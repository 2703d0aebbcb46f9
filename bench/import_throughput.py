"""Benchmark: `hub import`'s pass (read, validate, write the clean CSV, tally) against the csv module alone.

Run: `python bench/import_throughput.py [--rows N]`. Generates N interactions (USER_ID, ITEM_ID, TIMESTAMP,
EVENT_TYPE, EVENT_VALUE and a categorical DEVICE field; 1 % bad rows) into a temporary CSV, then measures, each
in a fresh process so peak RSS is the pass's own: the anchor, `csv.reader` reading and parsing the same file,
and `Importer.prepare`, the import's whole local pass. Prints rows/s of both, the ratio (target ≥ 35 %) and
the peak RSS of the import (target ≤ 200 MB whatever N), and both sides' CPU seconds (steadier than wall time
on a shared machine; the import's include its parsing threads).
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SCHEMA = {"type": "record", "name": "Interactions", "namespace": "com.amazonaws.personalize.schema",
          "fields": [{"name": "USER_ID", "type": "string"}, {"name": "ITEM_ID", "type": "string"},
                     {"name": "TIMESTAMP", "type": "long"}, {"name": "EVENT_TYPE", "type": "string"},
                     {"name": "EVENT_VALUE", "type": ["null", "float"]},
                     {"name": "DEVICE", "type": ["null", "string"], "categorical": True}],
          "version": "1.0"}


def generate(path: Path, rows: int, seed: int = 3, uniform: bool = False) -> None:
    """Users uniform, items by popularity (Zipf-like, as shops' catalogues are; `uniform` for the worst
    case), EVENT_VALUE the item's price, one of four devices."""
    rng = random.Random(seed)
    items = 50_000
    cumulative = list(itertools.accumulate(1.0 / (rank + 1) for rank in range(items)))
    types = ["click", "view", "purchase", "add_to_cart"]
    devices = ["ios", "android", "web", ""]
    start = 1_700_000_000
    with open(path, "w", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE", "EVENT_VALUE", "DEVICE"])
        for n in range(rows):
            index = rng.randrange(items) if uniform else rng.choices(range(items), cum_weights=cumulative)[0]
            user, item = f"user-{rng.randrange(rows // 20 + 1)}", f"item-{index}"
            timestamp: str = str(start + n)
            if n % 100 == 7:  # 1 % bad: a timestamp that is not one, or a missing item
                timestamp = "yesterday" if n % 200 == 7 else timestamp
                item = "" if n % 200 != 7 else item
            price = f"{5 + index % 200}.99"
            writer.writerow([user, item, timestamp, rng.choice(types), price, rng.choice(devices)])


def _cpu_secs() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def anchor(path: Path) -> dict:
    started, cpu = time.perf_counter(), _cpu_secs()
    with open(path, newline="", encoding="utf-8") as handle:
        rows = sum(1 for _ in csv.reader(handle))
    return {"secs": time.perf_counter() - started, "cpu_secs": _cpu_secs() - cpu, "rows": rows}


def import_pass(path: Path, folder: Path) -> dict:
    from connectors.destinations.personalize.schema import parse_schema
    from personalize_hub.config import parse_config
    from personalize_hub.imports.run import Importer, ImportRequest
    from personalize_hub.imports.source import location_of

    config = parse_config({"imports": {"folder": str(folder)}})
    importer = Importer(config, ImportRequest(dataset_arn="arn:aws:personalize:us-east-1:0:dataset/g/INTERACTIONS",
                                              source=str(path), dry_run=True))
    started, cpu = time.perf_counter(), _cpu_secs()
    readiness = importer.prepare(parse_schema(json.dumps(SCHEMA)), location_of(str(path)), "csv",
                                 path.stat().st_size, folder / "clean.csv", folder / "rejects.jsonl")
    return {"secs": time.perf_counter() - started, "cpu_secs": _cpu_secs() - cpu, "rows": readiness.rows, "rejected": readiness.rejected,
            "users": readiness.users, "items": readiness.items, "duplicates": readiness.duplicates}


def measure(kind: str, path: Path, folder: Path) -> dict:
    """Run one side in a fresh process: its seconds (the pass alone, not the interpreter's start), result, peak RSS."""
    code = ("import json, sys, resource; sys.path.insert(0, %r); from bench import import_throughput as b; "
            "from pathlib import Path; r = b.%s(Path(%r)%s); print(json.dumps({'secs': r.pop('secs'), "
            "'cpu_secs': r.pop('cpu_secs'), 'result': r, "
            "'rss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))"
            % (str(ROOT), kind, str(path), f", Path({str(folder)!r})" if kind == "import_pass" else ""))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{kind} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--uniform", action="store_true", help="Items drawn uniformly: the memo's worst case.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        path = folder / "interactions.csv"
        generate(path, args.rows, uniform=args.uniform)
        size_mb = path.stat().st_size / 1e6
        base = measure("anchor", path, folder)
        run = measure("import_pass", path, folder)
    rows = args.rows
    base_rate, run_rate = rows / base["secs"], rows / run["secs"]
    print(f"input: {rows} rows ({'uniform' if args.uniform else 'Zipf-like'} items), {size_mb:.0f} MB; "
          f"import: {run['result']}")
    print(f"anchor (csv.reader only): {base_rate:,.0f} rows/s ({base['secs']:.2f}s, peak RSS {base['rss_mb']:.0f} MB)")
    print(f"hub import pass:          {run_rate:,.0f} rows/s ({run['secs']:.2f}s, peak RSS {run['rss_mb']:.0f} MB)")
    print(f"ratio: {run_rate / base_rate:.0%} of the anchor (target >= 35%); peak RSS {run['rss_mb']:.0f} MB "
          f"(target <= 200 MB)")
    # On a shared machine wall time swings with the load; CPU seconds (all threads) much less.
    print(f"cpu: anchor {base['cpu_secs']:.2f}s, import {run['cpu_secs']:.2f}s, "
          f"ratio {base['cpu_secs'] / run['cpu_secs']:.0%}")


if __name__ == "__main__":
    main()
