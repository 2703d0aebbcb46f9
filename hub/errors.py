"""The error vocabulary shared by config, sources, stages and destinations."""

from __future__ import annotations

from collections.abc import Mapping


class HubError(Exception):
    """Base class of every error personalize-hub raises on purpose."""


class ConfigError(HubError):
    """The configuration is invalid; `problems` lists every problem found, each with its path."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid configuration:\n" + "\n".join(f"  - {p}" for p in problems))


class RetryableError(HubError):
    """A send failed in a way that may succeed later (throttling, 5xx, connection errors)."""

    def __init__(self, message: str, *, throttled: bool = False, retry_after_secs: float | None = None):
        super().__init__(message)
        self.throttled = throttled
        self.retry_after_secs = retry_after_secs


class RejectedError(HubError):
    """Input that can never succeed as it is: goes to the dead letter with a reason code."""

    def __init__(self, reason: str, message: str):
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


class PartialFailure(HubError):
    """Some members of a batch were rejected and/or need a retry; the rest were delivered.

    Keys are indexes into the batch that was sent.
    """

    def __init__(
        self,
        rejected: Mapping[int, RejectedError] | None = None,
        retry: Mapping[int, RetryableError] | None = None,
    ):
        self.rejected = dict(rejected or {})
        self.retry = dict(retry or {})
        super().__init__(f"{len(self.rejected)} rejected, {len(self.retry)} to retry")
