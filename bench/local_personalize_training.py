"""Training time and batch-inference rate of aws-user-personalization at 100k users × 20k items × 5M events.

Targets (issue 3): training ≤ 60 s and batch top-25 ≥ 10,000 users/s on 2 cores. Anchors measured
in the same run: aws-popularity-count training time on the same data, and a plain numpy top-25
(argpartition + sort) over random scores for the same users, i.e. the selection step alone with no
model. Also prints how many recommendations stay in the user's planted topic (a quality sanity check).
Exits 1 if a target is missed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

from local_personalize.recipes import RECIPES, TrainingConfig
from local_personalize.synthetic import generate

TRAINING_TARGET_SECS = 60.0
BATCH_TARGET_USERS_PER_SEC = 10_000.0
TOP = 25
IN_TOPIC_SHARE = 0.8  # planted: share of a user's events inside their topic


def numpy_top25_rate(num_users: int, num_items: int, chunk: int = 512) -> float:
    """Users/s of argpartition + sort over random float32 scores, chunked like a batch job would."""
    rng = np.random.default_rng(1)
    started = time.perf_counter()
    for start in range(0, num_users, chunk):
        scores = rng.random((min(chunk, num_users - start), num_items), dtype=np.float32)
        part = np.argpartition(scores, num_items - TOP, axis=1)[:, num_items - TOP :]
        np.take_along_axis(part, np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1), axis=1)
    return num_users / (time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--interactions", type=int, default=5_000_000)
    parser.add_argument("--batch-users", type=int, default=30_000, help="users scored in the batch test")
    args = parser.parse_args()

    started = time.perf_counter()
    shop = generate(args.users, args.items, args.interactions, num_topics=50, in_topic_share=IN_TOPIC_SHARE, seed=0)
    data = shop.data
    print(f"synthetic data: {args.users} users × {args.items} items × {args.interactions} interactions "
          f"generated in {time.perf_counter() - started:.1f} s")

    started = time.perf_counter()
    RECIPES["aws-popularity-count"].train(data, TrainingConfig())
    popularity_secs = time.perf_counter() - started

    started = time.perf_counter()
    model = RECIPES["aws-user-personalization"].train(data, TrainingConfig())
    training_secs = time.perf_counter() - started
    print(f"training: user-personalization ({model.scorer.kind}) {training_secs:.1f} s, "
          f"popularity-count {popularity_secs:.2f} s (ratio {training_secs / popularity_secs:.0f}x); "
          f"target <= {TRAINING_TARGET_SECS:.0f} s")

    users = np.random.default_rng(2).choice(args.users, min(args.batch_users, args.users), replace=False)
    user_ids = [data.user_ids[u] for u in users]
    model.recommend_batch(user_ids[:1024], TOP)  # warm-up: thread pool, page faults
    started, cpu_started = time.perf_counter(), time.process_time()
    lists = model.recommend_batch(user_ids, TOP)
    batch_secs, batch_cpu_secs = time.perf_counter() - started, time.process_time() - cpu_started
    batch_rate = len(user_ids) / batch_secs
    anchor_rate = numpy_top25_rate(len(user_ids), args.items)
    print(f"batch top-{TOP}: {batch_rate:,.0f} users/s on {os.cpu_count()} cores "
          f"({len(user_ids) / batch_cpu_secs:,.0f} users per CPU-second); numpy argpartition top-{TOP} over "
          f"random scores {anchor_rate:,.0f} users/s on one core (ratio {batch_rate / anchor_rate:.2f}); "
          f"target >= {BATCH_TARGET_USERS_PER_SEC:,.0f}")
    print(f"load average while measuring: {os.getloadavg()[0]:.1f} (other processes share the cores)")

    item_position = {item_id: i for i, item_id in enumerate(data.item_ids)}
    in_topic = np.mean([
        np.mean([shop.item_topic[item_position[r.item_id]] == shop.user_topic[u] for r in recs])
        for u, recs in zip(users[:2000], lists[:2000])
    ])
    print(f"quality sanity: {in_topic:.1%} of recommendations are in the user's planted topic "
          f"(planted: {IN_TOPIC_SHARE:.0%} of a user's events, 2 % by chance)")

    ok = training_secs <= TRAINING_TARGET_SECS and batch_rate >= BATCH_TARGET_USERS_PER_SEC
    print("targets met" if ok else "TARGET MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
