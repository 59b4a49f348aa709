"""The resource's status has one mapping each way: what the operator writes reads back as it was written."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from monaco.core import resource as r
from monaco.core.models import Outcome, Status, Verdict, iso, parse_time
from monaco.operator import results

NOW = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)


def resource(status: dict[str, Any], **meta: Any) -> dict[str, Any]:
    return {"metadata": {"name": "a", **meta}, "spec": {"language": "python"}, "status": status}


def test_a_finished_status_reads_back_as_it_was_written() -> None:
    full = Outcome(verdict=Verdict.RUNTIME_ERROR, output="o", stderr="e", compile_output="c", exit_code=3,
                   execution_ms=1.5, compile_ms=2.5, memory_kb=3, truncated=True, message="m")
    status = results.queued_status(NOW).wire() | results.finished_status(full, NOW + timedelta(seconds=2)).wire()
    view = r.submission_view(resource(status))
    assert (view.id, view.language, view.status) == ("a", "python", Status.FAILED)
    assert view.outcome == full
    assert (view.queued_at, view.completed_at) == (NOW, NOW + timedelta(seconds=2))


def test_fields_this_version_does_not_know_are_ignored() -> None:
    status = r.SubmissionStatus.from_wire({"phase": "running", "startedAt": iso(NOW), "fromTheFuture": True})
    assert status == r.SubmissionStatus(phase="running", started_at=iso(NOW))


def test_a_field_of_the_wrong_type_is_left_out_and_named() -> None:
    view = r.submission_view(resource({"phase": "completed", "verdict": "ok", "exitCode": "zero", "message": "m"}))
    assert view.status is Status.COMPLETED and view.message == "m"
    assert view.outcome is not None and view.outcome.verdict is Verdict.SYSTEM_ERROR
    assert view.outcome.message.startswith("unreadable status: ")


def test_queued_at_falls_back_to_the_submit_time_then_the_creation_time() -> None:
    created = "2026-01-02T03:04:00Z"
    annotated = {"annotations": {r.SUBMITTED_AT_ANNOTATION: iso(NOW)}, "creationTimestamp": created}
    assert r.submission_view(resource({"queuedAt": iso(NOW + timedelta(seconds=1))}, **annotated)).queued_at == (
        NOW + timedelta(seconds=1)
    )
    assert r.submission_view(resource({}, **annotated)).queued_at == NOW
    assert r.submission_view(resource({}, creationTimestamp=created)).queued_at == parse_time(created)
    assert r.submitted_at({}) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-01-02T03:04:05.678Z", NOW),
        ("2026-01-02T03:04:05.678+00:00", NOW),
        ("2026-01-02T04:04:05.678+01:00", NOW),
        ("2026-01-02T03:04:05.678", NOW),  # no zone: UTC
        ("yesterday", None),
        ("", None),
        (None, None),
        (5, None),
    ],
)
def test_parse_time_reads_what_iso_and_kubernetes_write(text: object, expected: datetime | None) -> None:
    assert parse_time(text) == expected
