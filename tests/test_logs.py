"""One logging set-up (core/logs.py) for the API and the operator: both follow MONACO_LOG_JSON."""

from __future__ import annotations

import io
import json
import logging
from unittest import mock

import kopf
import pytest
import uvicorn
from kopf._core.actions.loggers import LocalObjectLogger

from monaco.api import server
from monaco.core.logs import JsonFormatter, PlainFormatter
from monaco.core.settings import Settings
from monaco.operator import main


def start(command: str, settings: Settings) -> None:
    """What `monaco serve` / `monaco operator` do, up to where they would start serving."""
    with mock.patch.object(uvicorn, "run"), mock.patch.object(kopf, "run"), mock.patch.object(main, "Cluster"):
        if command == "serve":
            server.serve(settings)
        else:
            main.run(settings)


@pytest.mark.parametrize("log_json", [True, False], ids=["json", "plain"])
@pytest.mark.parametrize("command", ["serve", "operator"])
def test_both_processes_log_as_the_settings_say(command: str, log_json: bool, settings: Settings) -> None:
    start(command, settings.model_copy(update={"log_json": log_json, "log_level": "WARNING"}))
    root = logging.getLogger()
    assert [type(h.formatter) for h in root.handlers] == [JsonFormatter if log_json else PlainFormatter]
    assert root.level == logging.WARNING


def kopf_object_line(formatter: logging.Formatter) -> str:
    """What `formatter` makes of a line that kopf logs about one object (with kopf's own adapter)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    target = logging.getLogger("monaco.test.kopf-objects")
    target.addHandler(handler)
    target.propagate = False
    target.setLevel(logging.INFO)
    body = kopf.Body({"apiVersion": "monaco.dev/v1alpha1", "kind": "CodeSubmission",
                      "metadata": {"name": "a", "namespace": "sandbox", "uid": "u-1"}})
    adapter = LocalObjectLogger(body=body, settings=kopf.OperatorSettings())
    adapter.logger = target
    try:
        adapter.info("Handler 'submission_event' succeeded.")
    finally:
        target.removeHandler(handler)
    return stream.getvalue()


def test_a_kopf_record_names_its_object_in_json() -> None:
    line = json.loads(kopf_object_line(JsonFormatter()))
    assert line["message"] == "Handler 'submission_event' succeeded."
    assert line["object"]["name"] == "a" and line["object"]["namespace"] == "sandbox"
    assert not {"settings", "k8s_skip", "k8s_ref"} & set(line)


def test_a_kopf_record_names_its_object_in_plain_text() -> None:
    line = kopf_object_line(PlainFormatter("%(levelname)s %(message)s"))
    assert line == "INFO Handler 'submission_event' succeeded. object=sandbox/a\n"
