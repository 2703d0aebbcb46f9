"""Fast top-k selection over score matrices, chunked across cores for batch inference."""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import TypeVar

import numpy as np
from numpy.lib.stride_tricks import as_strided
from threadpoolctl import threadpool_limits

_BLOCKS = 512  # strided blocks per row for the block-maximum threshold (k must stay below half)
_MIN_COLUMNS_FOR_BLOCKS = 4096
_CHUNK_ROWS = 512  # rows scored at once: 512 × 20k float32 = 40 MB per worker

T = TypeVar("T")


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the column indices and values of the k largest finite scores, best first.

    Rows with fewer than k finite scores are padded with index -1 and value -inf. Wide rows use a
    block-maximum threshold: the k-th largest of B block maxima is a lower bound of the row's k-th
    largest value, so one comparison pass leaves a few dozen candidates to sort instead of a full
    argpartition, which is several times slower and holds the GIL.
    """
    rows, columns = scores.shape
    k = min(k, columns)
    if k <= 0 or rows == 0:
        return np.full((rows, max(k, 0)), -1, np.int64), np.full((rows, max(k, 0)), -np.inf, np.float32)
    if columns >= _MIN_COLUMNS_FOR_BLOCKS and k < _BLOCKS // 2 and scores.flags.c_contiguous:
        result = _top_k_by_blocks(scores, k)
        if result is not None:
            return result
    return _top_k_by_partition(scores, k)


def _top_k_by_partition(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    rows, columns = scores.shape
    part = np.argpartition(scores, columns - k, axis=1)[:, columns - k :] if k < columns else (
        np.broadcast_to(np.arange(columns), (rows, columns)).copy()
    )
    values = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-values, axis=1, kind="stable")
    index = np.take_along_axis(part, order, axis=1).astype(np.int64)
    values = np.take_along_axis(values, order, axis=1).astype(np.float32)
    index[~np.isfinite(values)] = -1
    values[index < 0] = -np.inf
    return index, values


def _top_k_by_blocks(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray] | None:
    rows, columns = scores.shape
    per_block = columns // _BLOCKS
    covered = per_block * _BLOCKS
    size = scores.itemsize
    # Block b holds items b, b+B, b+2B, ...: strided, so items stored next to each other (often
    # alike, e.g. one category) spread over all blocks and the threshold stays tight. Viewed as
    # (rows, per_block, B), the maximum runs over axis 1: whole contiguous rows of B at a time.
    view = as_strided(scores, (rows, per_block, _BLOCKS), (columns * size, _BLOCKS * size, size))
    block_max = view.max(axis=1)
    threshold = np.partition(block_max, _BLOCKS - k, axis=1)[:, _BLOCKS - k]
    threshold = np.where(np.isfinite(threshold), threshold, np.finfo(np.float32).min)
    # Only blocks whose maximum reaches the threshold can hold candidates: gather just those.
    block_row, block = np.nonzero(block_max >= threshold[:, None])
    if len(block_row) > 3 * k * rows:  # at least k blocks per row qualify; far more means massive ties
        return None
    values = view[block_row, :, block]  # (qualifying blocks, per_block)
    hit_block, hit_offset = np.nonzero(values >= threshold[block_row][:, None])
    row_index = block_row[hit_block]
    column_index = block[hit_block] + _BLOCKS * hit_offset
    values = values[hit_block, hit_offset]
    if covered < columns:
        tail = scores[:, covered:]
        tail_row, tail_column = np.nonzero(tail >= threshold[:, None])
        row_index = np.concatenate([row_index, tail_row])
        column_index = np.concatenate([column_index, tail_column + covered])
        values = np.concatenate([values, tail[tail_row, tail_column]])
    order = np.lexsort((-values, row_index))
    row_index, column_index, values = row_index[order], column_index[order], values[order]
    rank = np.arange(len(row_index)) - np.searchsorted(row_index, np.arange(rows))[row_index]
    keep = rank < k
    index = np.full((rows, k), -1, np.int64)
    best = np.full((rows, k), -np.inf, np.float32)
    index[row_index[keep], rank[keep]] = column_index[keep]
    best[row_index[keep], rank[keep]] = values[keep]
    index[~np.isfinite(best)] = -1
    return index, best


@lru_cache(maxsize=1)
def _executor() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1)), thread_name_prefix="topk")


def map_row_chunks(work: Callable[[int, int], T], num_rows: int, chunk_rows: int = _CHUNK_ROWS) -> list[T]:
    """Run `work(start, stop)` over consecutive row chunks on all cores, results in order.

    BLAS is held to one thread per worker so matrix products and selections share the cores
    instead of fighting over them (a busy-waiting BLAS pool slows numpy's selection several-fold).
    """
    chunks = [(start, min(start + chunk_rows, num_rows)) for start in range(0, num_rows, chunk_rows)]
    if len(chunks) <= 1:
        return [work(*bounds) for bounds in chunks]
    with threadpool_limits(1, "blas"):
        return list(_executor().map(lambda bounds: work(*bounds), chunks))
