"""Retry policy: capped exponential backoff with full jitter, bounded by attempts and elapsed time."""

from __future__ import annotations

import random
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field


class RetryConfig(BaseModel):
    """The one retry budget: how long a destination retries a batch before it settles RETRY, and how long a
    pulling source (Kafka) redelivers a record that keeps ending RETRY before it dead-letters it."""

    model_config = ConfigDict(extra="forbid")

    base_delay_secs: float = Field(0.1, gt=0, description="First backoff ceiling.")
    max_delay_secs: float = Field(10.0, gt=0, description="Largest single backoff.")
    max_attempts: int = Field(8, ge=1, description="Sends per batch, first one included.")
    max_elapsed_secs: float = Field(
        60.0, gt=0, description="Give up a batch's sends (outcome RETRY) after this long; a Kafka record still "
                                "unsettled this long after its first emit is dead-lettered (retries_exhausted).")

    def policy(self) -> RetryPolicy:
        return RetryPolicy(**self.model_dump())


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Full-jitter exponential backoff ("Exponential Backoff And Jitter", AWS Architecture Blog, 2015).

    Full jitter spreads retries of many clients over the whole window, which is what drains a
    throttled quota fastest without synchronised bursts.
    """

    base_delay_secs: float = 0.1
    max_delay_secs: float = 10.0
    max_attempts: int = 8
    max_elapsed_secs: float = 60.0

    def backoff_secs(self, attempt: int, rng: random.Random | None = None) -> float:
        """Delay before send number `attempt + 1`, given that send number `attempt` (1-based) failed."""
        ceiling = min(self.max_delay_secs, self.base_delay_secs * 2 ** (attempt - 1))
        return (rng or random).uniform(0, ceiling)

    def in_time(self, elapsed_secs: float, next_delay_secs: float = 0.0) -> bool:
        """Whether another try fits in the time budget (what a source's redeliveries of a record share)."""
        return elapsed_secs + next_delay_secs <= self.max_elapsed_secs

    def may_retry(self, attempts: int, elapsed_secs: float, next_delay_secs: float = 0.0) -> bool:
        """Whether another send fits in both the attempt budget and the time budget."""
        return attempts < self.max_attempts and self.in_time(elapsed_secs, next_delay_secs)
