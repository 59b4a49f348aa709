"""What the routes need from a back end; the local and the Kubernetes back ends both provide it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from monaco.core.callback import Format
from monaco.core.languages import Language
from monaco.core.models import Limits, RunSpec, SubmissionView


class QueueFull(Exception):
    def __init__(self, queue_size: int, retry_after: int) -> None:
        super().__init__(f"the queue is full ({queue_size} submissions waiting); retry in {retry_after} s")
        self.retry_after = retry_after


class StoreUnavailable(Exception):
    """The store (SQLite, or the Kubernetes API server) cannot take or give submissions right now."""


class Invalid(ValueError):
    """The store refused the submission as invalid (the API server's validation of the resource, a 422);
    the message names the field and says why, and a retry of the same submission cannot succeed."""


class NotCancellable(Exception):
    """The submission has already finished."""


@dataclass(frozen=True)
class QueueStats:
    queue_length: int
    max_workers: int
    running_jobs: int
    submissions: int


class Backend(Protocol):
    name: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def submit(self, language: Language, code: str, stdin: str, limits: Limits,
                     spec: RunSpec | None = None, callback_url: str | None = None,
                     callback_format: Format = "monaco") -> SubmissionView:
        """Store the submission durably, then return it; raises QueueFull, StoreUnavailable or Invalid.
        `spec` holds the judge's fields, already checked (core/options.py); `callback_url` was checked
        against the settings' callback policy; `callback_format` says what it is sent (core/callback.py)."""
        ...

    async def get(self, submission_id: str) -> SubmissionView | None: ...

    async def wait(self, submission_id: str, timeout: float) -> SubmissionView | None:
        """The submission once finished, or as it is when `timeout` seconds have passed."""
        ...

    async def cancel(self, submission_id: str) -> SubmissionView | None:
        """Cancel a queued or running submission; None if unknown, NotCancellable if finished."""
        ...

    async def stats(self) -> QueueStats: ...

    def ready(self) -> tuple[bool, str]:
        """Whether the back end can take submissions now, and why not."""
        ...
