"""aws-similar-items: related items from co-interaction blended with item metadata, text included (docs/reference/personalize-api.md#recipes).

Metadata vectors are one-hot categorical values (`|`-separated, per field) plus scikit-learn TF-IDF over
the textual fields, L2-normalised, compared by cosine. An item's neighbour score is
`w·cooccurrence + (1-w)·cosine`, each scaled to [0, 1] per item, so an item without interactions
(cold) gets its neighbours from metadata alone and can itself be recommended next to warm ones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize

from local_personalize.recipes.base import Recipe, RecipeType, TrainingConfig, TrainingData
from local_personalize.recipes.selection import select_interactions
from local_personalize.recipes.sims import NEIGHBOURS_KEPT, SimsModel, neighbour_matrix
from local_personalize.recipes.topk import top_k

_QUERY_BLOCK = 1024
# Fields that are ids or times, not descriptions of the item.
_NOT_METADATA = frozenset({"ITEM_ID", "CREATION_TIMESTAMP"})
TFIDF_MAX_FEATURES = 50_000


def metadata_vectors(item_ids: Sequence[str], metadata: Mapping[str, Mapping[str, Any]],
                     textual: Sequence[str]) -> sp.csr_matrix | None:
    """One L2-normalised row per item (zero rows for items without metadata); None without any metadata."""
    text_fields = set(textual)
    tokens, texts = [], []
    for item_id in item_ids:
        row = metadata.get(item_id) or {}
        tokens.append([f"{name}={part.strip().lower()}" for name, value in row.items()
                       if name not in _NOT_METADATA and name not in text_fields and isinstance(value, str)
                       for part in value.split("|") if part.strip()])
        texts.append(" ".join(str(row[name]) for name in textual if row.get(name)))
    blocks = []
    vocabulary: dict[str, int] = {}
    rows, columns = [], []
    for position, item_tokens in enumerate(tokens):
        for token in item_tokens:
            rows.append(position)
            columns.append(vocabulary.setdefault(token, len(vocabulary)))
    if vocabulary:
        blocks.append(normalize(sp.csr_matrix((np.ones(len(rows), np.float32), (rows, columns)),
                                              shape=(len(item_ids), len(vocabulary)))))
    if any(texts):
        tfidf = TfidfVectorizer(sublinear_tf=True, stop_words="english", max_features=TFIDF_MAX_FEATURES,
                                dtype=np.float32)
        blocks.append(tfidf.fit_transform(texts))
    if not blocks:
        return None
    return normalize(sp.hstack(blocks, format="csr", dtype=np.float32))


COLD_NEIGHBOURS = 10  # warm items whose relevance a cold item borrows in user-personalization


def cold_transfer(item_ids: Sequence[str], metadata: Mapping[str, Mapping[str, Any]], textual: Sequence[str],
                  warm: np.ndarray) -> sp.csr_matrix | None:
    """Items × items weights carrying relevance from warm items to each cold one (its columns).

    Column j (a cold item, `warm[j]` False) holds its COLD_NEIGHBOURS most similar warm items by
    metadata cosine, normalised to sum 1, so `scores @ T` is a cold item's similarity-weighted average
    of its neighbours' relevance. None when there is no textual metadata or no cold item with metadata.
    """
    cold = np.flatnonzero(~warm)
    vectors = metadata_vectors(item_ids, metadata, textual) if textual and len(cold) else None
    if vectors is None or not warm.any():
        return None
    warm_positions = np.flatnonzero(warm)
    similarity = (vectors[cold] @ vectors[warm_positions].T).toarray().astype(np.float32)
    similarity[similarity <= 0.0] = -np.inf
    index, best = top_k(np.ascontiguousarray(similarity), min(COLD_NEIGHBOURS, len(warm_positions)))
    rows, columns, weights = [], [], []
    for row, (found, values) in enumerate(zip(index, best)):
        keep = found >= 0
        if keep.any():
            rows.extend(warm_positions[found[keep]])
            columns.extend([cold[row]] * int(keep.sum()))
            weights.extend(values[keep] / values[keep].sum())
    if not rows:
        return None
    return sp.csr_matrix((np.array(weights, np.float32), (rows, columns)), shape=(len(item_ids), len(item_ids)))


def _scaled_rows(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """Each row divided by its maximum, so both signals weigh in on the same [0, 1] scale."""
    matrix = sp.csr_matrix(matrix, dtype=np.float32)
    peaks = np.zeros(matrix.shape[0], np.float32)
    nonempty = np.diff(matrix.indptr) > 0
    peaks[nonempty] = np.maximum.reduceat(matrix.data, matrix.indptr[:-1][nonempty])
    peaks[peaks <= 0] = 1.0
    return sp.diags(1.0 / peaks) @ matrix


class SimilarItemsModel(SimsModel):
    """aws-sims' model shape (top neighbours per item, popular fallback) under its own recipe name."""

    recipe_name = "aws-similar-items"


class SimilarItems(Recipe):
    """Co-interaction (as aws-sims) and metadata cosine, blended; text through TF-IDF."""

    name = "aws-similar-items"
    recipe_type = RecipeType.RELATED_ITEMS
    description = "Similar items from interactions and item metadata, including text; works for cold items."
    model_class = SimilarItemsModel

    @classmethod
    def train(cls, data: TrainingData, config: TrainingConfig | None = None) -> SimilarItemsModel:
        config = config or TrainingConfig()
        # Share of the score from interactions; the rest from metadata (not a documented hyperparameter [U]).
        weight = config.float_param("interaction_weight", 0.7, 0.0, 1.0)
        histories = select_interactions(data, config)
        matrix = histories.user_items(binary=True)
        popularity = np.bincount(matrix.indices, minlength=histories.num_items)
        together = _scaled_rows(neighbour_matrix(matrix, 0.5, 1.0))
        vectors = metadata_vectors(data.item_ids, data.item_metadata, data.item_text_fields)
        if vectors is None or weight >= 1.0:
            return SimilarItemsModel(data.item_ids, together, popularity)
        return SimilarItemsModel(data.item_ids, _blend(together, vectors, weight), popularity)


def _blend(together: sp.csr_matrix, vectors: sp.csr_matrix, weight: float) -> sp.csr_matrix:
    num_items = together.shape[0]
    keep = min(NEIGHBOURS_KEPT, max(num_items - 1, 1))
    vectors_t = vectors.T.tocsc()
    counts, columns, values = [], [], []
    for start in range(0, num_items, _QUERY_BLOCK):
        stop = min(start + _QUERY_BLOCK, num_items)
        cosine = (vectors[start:stop] @ vectors_t).toarray()
        scores = weight * together[start:stop].toarray() + (1.0 - weight) * cosine
        scores[np.arange(stop - start), np.arange(start, stop)] = 0.0
        scores[scores <= 0.0] = -np.inf
        index, best = top_k(np.ascontiguousarray(scores, dtype=np.float32), keep)
        found = index >= 0
        counts.append(found.sum(axis=1))
        columns.append(index[found])
        values.append(best[found])
    indptr = np.concatenate([[0], np.cumsum(np.concatenate(counts))]).astype(np.int64)
    return sp.csr_matrix((np.concatenate(values), np.concatenate(columns).astype(np.int32), indptr),
                         shape=(num_items, num_items))
