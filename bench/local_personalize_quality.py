"""Recommendation quality of local_personalize's recipes on MovieLens-100k, Personalize's split (docs/reference/personalize-api.md#solution-metrics).

Prints every GetSolutionMetrics value for aws-popularity-count (the anchor), aws-sims and
aws-user-personalization side by side, and the NDCG@10 ratio of user-personalization to popularity.
Exits 1 if that ratio is below 2 or user-personalization's NDCG@10 below 0.18. Then the domain use
cases (every rating a VIDEO_ON_DEMAND `Watch`; for ECOMMERCE ratings of 4+ a `Purchase`, the others a
`View`) and aws-similar-items with the movies' genres and titles as item metadata (titles as
`textual` text), each with its NDCG@10 ratio to popularity-count's. Popularity-Count returns one list for everyone, including movies
the user already rated; for a fairer view it also prints popularity with each user's own items removed
(what an Interactions EXCLUDE filter gives), and the ratio against that.

The data set is not part of this repository (its licence forbids redistribution): it ships inside the
`recbole` wheel, which this script reads in place. Install it with `pip install --no-deps recbole`.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import sys
import time
from pathlib import Path

import numpy as np

from local_personalize.metrics import evaluate, metric_names, personalize_split, ranking_metrics
from local_personalize.recipes import RECIPES, TrainingConfig, TrainingData

REQUIRED_NDCG10_RATIO = 2.0
REQUIRED_PERSONALIZATION_NDCG10 = 0.18
RECIPE_NAMES = ("aws-popularity-count", "aws-sims", "aws-user-personalization")
VOD_USE_CASES = ("aws-vod-most-popular", "aws-vod-trending-now", "aws-vod-top-picks", "aws-vod-because-you-watched-x",
                 "aws-vod-more-like-x")
ECOMMERCE_USE_CASES = ("aws-ecomm-popular-items-by-views", "aws-ecomm-popular-items-by-purchases",
                       "aws-ecomm-recommended-for-you", "aws-ecomm-customers-who-viewed-x-also-viewed",
                       "aws-ecomm-frequently-bought-together")
PURCHASE_STARS = 4.0  # ECOMMERCE reading of a rating: 4 or 5 stars is a purchase
NDCG10 = "normalized_discounted_cumulative_gain_at_10"


def find_movielens() -> Path | None:
    """recbole/dataset_example/ml-100k/ml-100k.inter inside the installed recbole package."""
    spec = importlib.util.find_spec("recbole")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "dataset_example" / "ml-100k" / "ml-100k.inter"
    return path if path.is_file() else None


def read_ratings(path: Path) -> list[tuple[str, str, float, float]]:
    with path.open(newline="") as handle:
        rows = csv.reader(handle, delimiter="\t")
        next(rows)  # header: user_id:token item_id:token rating:float timestamp:float
        return [(user, item, float(stars), float(ts)) for user, item, stars, ts in rows]


def load_interactions(path: Path) -> TrainingData:
    """Every rating is an interaction (EVENT_TYPE "rating", EVENT_VALUE the stars), as a Personalize import would be."""
    return TrainingData.from_rows(
        {"USER_ID": user, "ITEM_ID": item, "TIMESTAMP": ts, "EVENT_TYPE": "rating", "EVENT_VALUE": stars}
        for user, item, stars, ts in read_ratings(path))


def read_movies(path: Path) -> list[dict[str, str]]:
    """ml-100k.item as Items rows: GENRES categorical (`|`-separated), TITLE textual."""
    movies = path.with_suffix(".item")
    if not movies.is_file():
        return []
    with movies.open(newline="", encoding="latin-1") as handle:
        rows = csv.reader(handle, delimiter="\t")
        next(rows)  # header: item_id:token movie_title:token_seq release_year:token class:token_seq
        return [{"ITEM_ID": item, "TITLE": title, "GENRES": "|".join(genres.split())}
                for item, title, _year, genres, *_ in rows]


def domain_data(path: Path, domain: str) -> TrainingData:
    """The ratings as a domain dataset group's interactions (see the module docstring), movies as Items."""
    def rows():
        for user, item, stars, ts in read_ratings(path):
            if domain == "VIDEO_ON_DEMAND":
                yield {"USER_ID": user, "ITEM_ID": item, "TIMESTAMP": ts, "EVENT_TYPE": "Watch"}
                continue
            kind = "Purchase" if stars >= PURCHASE_STARS else "View"
            yield {"USER_ID": user, "ITEM_ID": item, "TIMESTAMP": ts, "EVENT_TYPE": kind}
    data = TrainingData.from_rows(rows(), read_movies(path))
    data.item_text_fields = ["TITLE"]
    return data


def domain_report(path: Path, anchor: float, seed: int) -> None:
    """NDCG@10 of every domain use case and of aws-similar-items, each as a ratio to popularity-count's."""
    print(f"\n{'use case / recipe':<46} {'NDCG@10':>8} {'/ popularity':>13} {'seconds':>8}")
    runs = [("VIDEO_ON_DEMAND", name) for name in VOD_USE_CASES] + \
        [("ECOMMERCE", name) for name in ECOMMERCE_USE_CASES] + [("VIDEO_ON_DEMAND", "aws-similar-items")]
    cache: dict[str, TrainingData] = {}
    for domain, name in runs:
        data = cache.setdefault(domain, domain_data(path, domain))
        started = time.perf_counter()
        ndcg = evaluate(RECIPES[name], data, TrainingConfig(), seed=seed)[NDCG10]
        print(f"{name:<46} {ndcg:>8.4f} {ndcg / anchor if anchor else float('inf'):>12.2f}x "
              f"{time.perf_counter() - started:>8.1f}")


def popularity_without_seen_ndcg10(data: TrainingData, seed: int) -> float:
    """NDCG@10 of the popular items minus each held-out user's already-rated ones."""
    split = personalize_split(data, seed=seed)
    model = RECIPES["aws-popularity-count"].train(split.train, TrainingConfig())
    position = {user_id: u for u, user_id in enumerate(data.user_ids)}
    lists = []
    for user_id in split.test_users:
        allowed = np.ones(len(data.item_ids), bool)
        allowed[split.train.item_index[split.train.user_index == position[user_id]]] = False
        lists.append([r.item_id for r in model.recommend(user_id, None, 25, candidates=allowed)])
    return ranking_metrics(lists, split.relevant, len(data.item_ids))["normalized_discounted_cumulative_gain_at_10"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0, help="seed of the held-out user draw")
    args = parser.parse_args()

    path = find_movielens()
    if path is None:
        print("MovieLens-100k not found. Install the recbole wheel, which carries it:\n"
              "    .venv/bin/pip install --no-deps recbole", file=sys.stderr)
        return 2
    data = load_interactions(path)
    print(f"MovieLens-100k: {data.num_interactions} interactions, {len(data.user_ids)} users, "
          f"{len(data.item_ids)} items (from {path})")

    results, seconds = {}, {}
    for name in RECIPE_NAMES:
        started = time.perf_counter()
        results[name] = evaluate(RECIPES[name], data, TrainingConfig(), seed=args.seed)
        seconds[name] = time.perf_counter() - started

    width = max(map(len, metric_names()))
    print(f"\n{'metric':<{width}}  " + "  ".join(f"{n:>24}" for n in RECIPE_NAMES))
    for metric in metric_names():
        print(f"{metric:<{width}}  " + "  ".join(f"{results[n][metric]:>24.4f}" for n in RECIPE_NAMES))
    print(f"{'split + train + score (s)':<{width}}  " + "  ".join(f"{seconds[n]:>24.2f}" for n in RECIPE_NAMES))

    anchor = results["aws-popularity-count"][NDCG10]
    personal = results["aws-user-personalization"][NDCG10]
    ratio = personal / anchor if anchor else float("inf")
    unseen = popularity_without_seen_ndcg10(data, args.seed)
    verdict = "ok" if ratio >= REQUIRED_NDCG10_RATIO else "FAILED"
    print(f"\nNDCG@10 user-personalization / popularity-count = {personal:.4f} / {anchor:.4f} = {ratio:.2f}x "
          f"(required >= {REQUIRED_NDCG10_RATIO}x): {verdict}")
    print(f"NDCG@10 user-personalization / popularity without the user's own items = {personal:.4f} / "
          f"{unseen:.4f} = {personal / unseen if unseen else float('inf'):.2f}x (information)")
    print(f"NDCG@10 user-personalization = {personal:.4f} (required >= {REQUIRED_PERSONALIZATION_NDCG10})")
    domain_report(path, anchor, args.seed)
    return 0 if ratio >= REQUIRED_NDCG10_RATIO and personal >= REQUIRED_PERSONALIZATION_NDCG10 else 1


if __name__ == "__main__":
    sys.exit(main())
