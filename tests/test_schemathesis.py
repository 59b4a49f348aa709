"""Property-based fuzzing of every operation in /openapi.json against a real server: never a 5xx."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err
from schemathesis.generation.case import Case

from tests.support import served

pytestmark = [pytest.mark.slow]


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with served(MAX_WORKERS="2", QUEUE_SIZE="20") as url:
        yield url


def test_no_server_errors(base_url: str) -> None:
    # schemathesis' own pytest plugin does not load under pytest 9, so each operation's strategy is
    # driven by hypothesis here instead.
    api = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    results = list(api.get_all_operations())
    for result in results:
        if isinstance(result, Err):
            raise result.err()
    operations = [result.ok() for result in results if not isinstance(result, Err)]
    assert len(operations) >= 9

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case: Case[Any]) -> None:
            response = case.call(base_url=base_url, timeout=30)
            case.validate_response(response, checks=[not_a_server_error])

        check()
