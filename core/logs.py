"""The one logging set-up of `monaco serve` and `monaco operator`: plain `key=value` lines or JSON lines
(MONACO_LOG_JSON), each naming the submission, worker and step, or the Kubernetes object it is about."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
}
# kopf's per-object loggers add the object's reference (k8s_ref, shown as `object`) and two internals.
_KOPF_INTERNAL = {"settings", "k8s_skip"}


def _extras(record: logging.LogRecord, structured: bool) -> dict[str, Any]:
    extras = {k: v for k, v in record.__dict__.items() if k not in _STANDARD and k not in _KOPF_INTERNAL}
    ref = extras.pop("k8s_ref", None)
    if isinstance(ref, dict):
        extras["object"] = ref if structured else "/".join(filter(None, (ref.get("namespace"), ref.get("name"))))
    return extras


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **_extras(record, structured=True),
        }
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


class PlainFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = " ".join(f"{k}={v}" for k, v in _extras(record, structured=False).items())
        return f"{line} {extras}" if extras else line


def configure(level: str = "INFO", json_lines: bool = False) -> None:
    """Send every log record to stderr, one line each, from `level` up (MONACO_LOG_LEVEL)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter() if json_lines else PlainFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
