"""Batched top-k selection: the block-maximum shortcut must agree with a full sort."""

from __future__ import annotations

import numpy as np
import pytest

from local_personalize.recipes.topk import map_row_chunks, top_k


@pytest.mark.parametrize("rows, columns, k", [(300, 20_000, 25), (64, 20_003, 25), (50, 5000, 10),
                                              (20, 100, 25), (5, 10, 3), (40, 8000, 60)])
def test_top_k_equals_a_full_sort(rows: int, columns: int, k: int) -> None:
    rng = np.random.default_rng(columns)
    scores = rng.random((rows, columns), dtype=np.float32)
    scores[0, :] = -np.inf  # nothing allowed
    scores[1, :-3] = -np.inf  # fewer allowed items than k
    scores[2, :] = 0.0  # all tied
    scores[3, columns // 2 : columns // 2 + 400] += 1.0  # neighbours that all score high
    index, values = top_k(scores, k)
    expected = np.sort(scores, axis=1)[:, ::-1][:, : min(k, columns)]
    assert np.array_equal(np.where(np.isfinite(expected), expected, -1), np.where(np.isfinite(values), values, -1))
    found = index >= 0
    assert np.array_equal(scores[np.nonzero(found)[0], index[found]], values[found])
    assert (index[0] == -1).all() and (index[1] >= 0).sum() == min(3, k)


def test_map_row_chunks_keeps_order() -> None:
    chunks = map_row_chunks(lambda start, stop: list(range(start, stop)), 2000, chunk_rows=300)
    assert [n for chunk in chunks for n in chunk] == list(range(2000))
