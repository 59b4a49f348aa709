"""The CodeSubmission resource's names, size bounds and status shape, shared by the CRD and the operator.

`core/crd.py` renders the CRD from these; the operator writes only `SubmissionStatus` fields; the API's
Kubernetes back end may read them with the same names.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

GROUP = "monaco.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "CodeSubmission"
PLURAL = "codesubmissions"
SINGULAR = "codesubmission"
SHORT_NAMES = ["csub"]
CRD_NAME = f"{PLURAL}.{GROUP}"

# The API writes this annotation (ISO-8601 with ms) at submit time: creationTimestamp has whole seconds,
# so FIFO order and queuedAt come from here when it is present.
SUBMITTED_AT_ANNOTATION = "monaco.dev/submitted-at"

# Size bounds. The whole object (spec + status) must fit etcd's 1.5 MiB request limit, and the API
# server escapes some characters in JSON, so the bounds leave a wide margin.
MAX_CODE = 65536
MAX_INPUT = 524288
MAX_OUTPUT = 131072
MAX_STDERR = 65536
MAX_COMPILE_OUTPUT = 65536
MAX_MESSAGE = 4096
MAX_TIMEOUT_SECONDS = 300
MAX_MEMORY_MB = 65536


class SubmissionStatus(BaseModel):
    """Every field the operator writes into `.status` (camelCase on the wire)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    phase: str | None = None
    verdict: str | None = None
    queued_at: str | None = None
    started_at: str | None = None
    completed_at: str | None = None
    execution_time_ms: float | None = None
    compile_time_ms: float | None = None
    total_time_ms: float | None = None
    output: str | None = None
    stderr: str | None = None
    compile_output: str | None = None
    exit_code: int | None = None
    memory_kb: int | None = None
    truncated: bool | None = None
    job_name: str | None = None
    warm: bool | None = None  # it ran in an idle pool sandbox (operator/pool.py)
    message: str | None = None

    def wire(self) -> dict[str, Any]:
        """The fields that are set, as they go into a patch."""
        return self.model_dump(by_alias=True, exclude_none=True)


def status_fields() -> set[str]:
    """The camelCase names of every status field."""
    return {field.alias or name for name, field in SubmissionStatus.model_fields.items()}
