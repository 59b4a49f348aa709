"""The CRD has one source of truth (core/crd.py); every copy matches it and its schema is structural."""

from __future__ import annotations

import ast
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from monaco.core import crd
from monaco.core import resource as r
from monaco.core.models import CallbackState, CaseResult, Outcome, Status, Verdict
from monaco.operator import results
from monaco.operator.callbacks import callback_status

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("rel", crd.OUTPUTS, ids=[str(p) for p in crd.OUTPUTS])
def test_copies_match_the_generator(rel: Path) -> None:
    path = ROOT / rel
    assert path.exists(), f"{rel} is missing: run `make generate`"
    assert path.read_text() == crd.render_yaml(), f"{rel} drifted from core/crd.py: run `make generate`"


def test_write_creates_both_copies(tmp_path: Path) -> None:
    written = crd.write(tmp_path)
    assert [p.relative_to(tmp_path) for p in written] == list(crd.OUTPUTS)
    for path in written:
        assert yaml.safe_load(path.read_text()) == crd.render()


def _walk(schema: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    out = [(path or "/", schema)]
    for name, sub in (schema.get("properties") or {}).items():
        out += _walk(sub, f"{path}/{name}")
    if "items" in schema:
        out += _walk(schema["items"], f"{path}[]")
    return out


def schema() -> dict[str, Any]:
    version = crd.render()["spec"]["versions"][0]
    return dict(version["schema"]["openAPIV3Schema"])


def test_structural_every_node_has_a_type() -> None:
    for path, node in _walk(schema()):
        assert "type" in node, f"{path} has no type"
        if node["type"] == "string" and path.split("/")[-1] not in ("apiVersion", "kind", "language"):
            assert "maxLength" in node or node.get("format") == "date-time" or "enum" in node, path


def test_identity_and_printer_columns() -> None:
    doc = crd.render()
    assert doc["metadata"]["name"] == "codesubmissions.monaco.dev"
    spec = doc["spec"]
    assert spec["scope"] == "Namespaced"
    assert spec["names"]["kind"] == "CodeSubmission" and spec["names"]["shortNames"] == ["csub"]
    version = spec["versions"][0]
    assert version["name"] == "v1alpha1" and version["subresources"] == {"status": {}}
    columns = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}
    assert columns == {"Language": ".spec.language", "Status": ".status.phase", "Verdict": ".status.verdict",
                       "Time-ms": ".status.executionTimeMs", "Warm": ".status.warm",
                       "Age": ".metadata.creationTimestamp"}


def test_spec_is_immutable_and_bounded() -> None:
    spec = schema()["properties"]["spec"]
    assert {"rule": "self == oldSelf", "message": "spec is immutable"} in spec["x-kubernetes-validations"]
    assert spec["properties"]["code"]["maxLength"] == r.MAX_CODE
    assert spec["properties"]["input"]["maxLength"] == r.MAX_INPUT
    assert set(spec["properties"]["limits"]["properties"]) == {"timeoutSeconds", "memoryMb"}


def test_worst_case_object_fits_etcd() -> None:
    status = schema()["properties"]["status"]["properties"]
    strings = sum(n.get("maxLength", 64) for n in status.values() if n["type"] == "string")
    assert r.MAX_CODE + r.MAX_INPUT + strings < 1_000_000  # leaves room below 1.5 MiB for JSON escaping


def test_enums_come_from_the_models() -> None:
    status = schema()["properties"]["status"]["properties"]
    assert status["phase"]["enum"] == [s.value for s in Status]
    assert status["verdict"]["enum"] == [v.value for v in Verdict]


def test_status_declares_every_field_the_operator_writes() -> None:
    declared = set(schema()["properties"]["status"]["properties"])
    assert r.status_fields() == declared
    full = Outcome(verdict=Verdict.OK, output="o", stderr="e", compile_output="c", exit_code=0,
                   execution_ms=1.0, compile_ms=2.0, memory_kb=3, truncated=False, message="m", signal=9,
                   test_cases=[CaseResult(verdict=Verdict.OK, output="o")])
    now = datetime.now(UTC)
    written = set(results.finished_status(full, now).wire())
    written |= set(results.queued_status(now).wire()) | set(results.running_status(now, "pool-python-x", True).wire())
    written |= set(callback_status(CallbackState(), now).wire())
    assert written <= declared
    assert declared - written == set()  # and nothing declared is never written


def test_operator_writes_status_only_through_the_declared_model() -> None:
    """Every `status_ops(...)` call in the operator passes a SubmissionStatus's wire() dict."""
    for path in (ROOT / "operator").glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "status_ops":
                first = ast.unparse(node.args[0])
                assert first.endswith(".wire()") or first == "fields", f"{path.name}: status_ops({first}, ...)"
