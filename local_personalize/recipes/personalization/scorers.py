"""The two relevance models behind User-Personalization: EASE (small catalogues) and iALS (large).

Both score a user from nothing but their weighted item history, which is what lets a PutEvents
interaction change recommendations at once (fold-in) without retraining
(docs/reference/personalize-api.md#data-freshness):
* EASE (Steck 2019): closed-form item-item weights B = I − P·diag(1/diag(P)), P = (XᵀX + λI)⁻¹;
  scores = history · B. Exact and strong, but O(items³): used up to EASE_MAX_ITEMS.
* iALS (Hu, Koren, Volinsky 2008), trained with the `implicit` package (conjugate gradient, native
  threads); a user's factors are re-solved from their history in closed form for fold-in.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

EASE_MAX_ITEMS = 6000  # inverting a 6000² Gram matrix takes a few seconds on 2 cores; beyond, iALS


class Scorer(ABC):
    """Relevance of every catalogue item for a user described by a weighted history."""

    kind: str

    @abstractmethod
    def score_history(self, items: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Scores (items,) for one user from their history (item indices, weight per event)."""

    @abstractmethod
    def score_snapshot(self, users: np.ndarray, inputs: sp.csr_matrix, scale: float = 1.0) -> np.ndarray:
        """Scores × scale, (len(users), items) float32, for trained users; `inputs` are their weighted
        history rows. Scaling the small operand saves a pass over the large result."""

    @abstractmethod
    def score_user(self, user: int, items: np.ndarray, weights: np.ndarray, scale: float = 1.0) -> np.ndarray:
        """score_snapshot for one trained user whose snapshot row is (items, weights): GetRecommendations' path,
        without building a one-row sparse matrix (scipy's per-object checks were half its time)."""

    @abstractmethod
    def users_for_item(self, item: int, inputs: sp.csr_matrix) -> np.ndarray:
        """Score of one item for every trained user (rows of `inputs`)."""

    @abstractmethod
    def arrays(self) -> dict[str, np.ndarray]: ...

    @abstractmethod
    def header(self) -> dict[str, Any]: ...


class EaseScorer(Scorer):
    kind = "ease"

    def __init__(self, weights: np.ndarray) -> None:
        self.weights = np.ascontiguousarray(weights, dtype=np.float32)  # B, items × items, zero diagonal

    @classmethod
    def train(cls, user_items: sp.csr_matrix, l2: float) -> EaseScorer:
        gram = (user_items.T @ user_items).toarray().astype(np.float64)
        gram[np.diag_indices_from(gram)] += l2
        inverse = np.linalg.inv(gram)
        weights = -inverse / np.diag(inverse)
        weights[np.diag_indices_from(weights)] = 0.0
        return cls(weights)

    def score_history(self, items: np.ndarray, weights: np.ndarray) -> np.ndarray:
        return weights @ self.weights[items]

    def score_snapshot(self, users: np.ndarray, inputs: sp.csr_matrix, scale: float = 1.0) -> np.ndarray:
        return np.asarray((inputs * np.float32(scale)) @ self.weights, dtype=np.float32)

    def score_user(self, user: int, items: np.ndarray, weights: np.ndarray, scale: float = 1.0) -> np.ndarray:
        return (weights * np.float32(scale)) @ self.weights[items]

    def users_for_item(self, item: int, inputs: sp.csr_matrix) -> np.ndarray:
        return np.asarray(inputs @ self.weights[:, item]).ravel()

    def arrays(self) -> dict[str, np.ndarray]:
        return {"ease_weights": self.weights}

    def header(self) -> dict[str, Any]:
        return {}

    @classmethod
    def load(cls, header: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> EaseScorer:
        return cls(arrays["ease_weights"])


class AlsScorer(Scorer):
    """Confidence c = 1 + alpha · weight for observed (user, item) pairs, 1 elsewhere."""

    kind = "ials"

    def __init__(self, user_factors: np.ndarray, item_factors: np.ndarray, regularization: float, alpha: float):
        self.user_factors = np.ascontiguousarray(user_factors, dtype=np.float32)
        self.item_factors = np.ascontiguousarray(item_factors, dtype=np.float32)
        self.regularization = float(regularization)
        self.alpha = float(alpha)
        factors = self.item_factors.shape[1]
        self._gram = (self.item_factors.T.astype(np.float64) @ self.item_factors) + regularization * np.eye(factors)

    @classmethod
    def train(
        cls, user_items: sp.csr_matrix, factors: int, iterations: int, regularization: float, alpha: float,
        seed: int = 0,
    ) -> AlsScorer:
        from implicit.cpu.als import AlternatingLeastSquares  # heavy import, only when training

        confidence = user_items.copy()
        confidence.data = (1.0 + alpha * confidence.data).astype(np.float32)
        # implicit runs its own threads; a threaded BLAS underneath would oversubscribe the cores.
        with threadpool_limits(1, "blas"):
            model = AlternatingLeastSquares(
                factors=factors, iterations=iterations, regularization=regularization, alpha=1.0,
                random_state=seed, calculate_training_loss=False,
            )
            model.fit(confidence, show_progress=False)
        return cls(model.user_factors, model.item_factors, regularization, alpha)

    def fold_in(self, items: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Least-squares user factors for a history, given the item factors (one k×k solve)."""
        if len(items) == 0:
            return np.zeros(self.item_factors.shape[1], np.float32)
        summed = np.zeros(self.item_factors.shape[0], np.float64)
        np.add.at(summed, items, weights)
        touched = np.flatnonzero(summed)
        confidence = 1.0 + self.alpha * summed[touched]
        item_factors = self.item_factors[touched].astype(np.float64)
        matrix = self._gram + (item_factors.T * (confidence - 1.0)) @ item_factors
        return np.linalg.solve(matrix, item_factors.T @ confidence).astype(np.float32)

    def score_history(self, items: np.ndarray, weights: np.ndarray) -> np.ndarray:
        return self.item_factors @ self.fold_in(items, weights)

    def score_snapshot(self, users: np.ndarray, inputs: sp.csr_matrix, scale: float = 1.0) -> np.ndarray:
        return (self.user_factors[users] * np.float32(scale)) @ self.item_factors.T

    def score_user(self, user: int, items: np.ndarray, weights: np.ndarray, scale: float = 1.0) -> np.ndarray:
        return (self.user_factors[user] * np.float32(scale)) @ self.item_factors.T

    def users_for_item(self, item: int, inputs: sp.csr_matrix) -> np.ndarray:
        return self.user_factors @ self.item_factors[item]

    def arrays(self) -> dict[str, np.ndarray]:
        return {"als_user_factors": self.user_factors, "als_item_factors": self.item_factors}

    def header(self) -> dict[str, Any]:
        return {"regularization": self.regularization, "alpha": self.alpha}

    @classmethod
    def load(cls, header: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> AlsScorer:
        return cls(arrays["als_user_factors"], arrays["als_item_factors"], header["regularization"], header["alpha"])


SCORERS: dict[str, type[EaseScorer] | type[AlsScorer]] = {"ease": EaseScorer, "ials": AlsScorer}
