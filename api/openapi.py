"""The OpenAPI document served at /openapi.json (written out, so it says exactly what the routes do)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from monaco.api.routes import MAX_BATCH
from monaco.core.models import CaseResult, Status, SubmitRequest, Verdict


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _id_param() -> dict[str, Any]:
    return {
        "name": "id",
        "in": "query",
        "required": True,
        "schema": {"type": "string", "maxLength": 128},
        "description": "the id returned by POST /submit",
    }


def json_of(ref: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}


def _nullable(node: Any) -> Any:
    """OpenAPI 3.1 (JSON Schema 2020-12, what pydantic emits) spells `nullable` as a type list."""
    if isinstance(node, dict):
        node = {k: _nullable(v) for k, v in node.items()}
        if node.pop("nullable", False) and isinstance(node.get("type"), str):
            node["type"] = [node["type"], "null"]
        return node
    if isinstance(node, list):
        return [_nullable(v) for v in node]
    return node


def _model_schema(model: type[BaseModel], nested: dict[str, Any]) -> dict[str, Any]:
    schema = model.model_json_schema(by_alias=True, ref_template="#/components/schemas/{model}")
    nested.update(schema.pop("$defs", {}))
    schema.pop("title", None)
    return schema


def build_openapi(version: str) -> dict[str, Any]:
    return dict(_nullable(_build(version)))


def _build(version: str) -> dict[str, Any]:
    nested: dict[str, Any] = {}  # the models the request and result schemas refer to, as components
    submit_schema = _model_schema(SubmitRequest, nested)
    status_props: dict[str, Any] = {
        "id": {"type": "string"},
        "status": {"type": "string", "enum": [s.value for s in Status]},
        "queuedAt": {"type": "string", "format": "date-time"},
        "startedAt": {"type": "string", "format": "date-time", "nullable": True},
        "completedAt": {"type": "string", "format": "date-time", "nullable": True},
        "executionTime": {
            "type": "integer",
            "nullable": True,
            "description": "whole milliseconds of the run, measured in the sandbox (as the original service)",
        },
        "executionTimeMs": {"type": "number", "nullable": True, "description": "the same, to the microsecond"},
        "verdict": {"type": "string", "enum": [v.value for v in Verdict]},
    }
    result_props = {
        **status_props,
        "language": {"type": "string"},
        "output": {"type": "string", "nullable": True},
        "executionTimeFormatted": {"type": "string", "nullable": True},
        "totalTime": {
            "type": "integer",
            "nullable": True,
            "description": "whole milliseconds from queuedAt to completedAt: the wait in the queue included",
        },
        "totalTimeFormatted": {"type": "string", "nullable": True},
        "compileTimeMs": {
            "type": "number",
            "nullable": True,
            "description": "milliseconds of the compile, measured in the sandbox; null without a compile",
        },
        "queueTimeMs": {"type": "number", "nullable": True, "description": "milliseconds, queuedAt to startedAt"},
        "stderr": {"type": "string", "nullable": True},
        "compileOutput": {"type": "string", "nullable": True},
        "exitCode": {"type": "integer", "nullable": True},
        "signal": {"type": "integer", "nullable": True, "description": "the signal that killed the program"},
        "signalName": {"type": "string", "nullable": True, "description": "its name, e.g. SIGSEGV"},
        "memoryKb": {"type": "integer", "nullable": True},
        "truncated": {"type": "boolean"},
        "message": {"type": "string"},
        "testCases": {
            "type": "array",
            "nullable": True,
            "description": "one result per test case; null without testCases",
            "items": _model_schema(CaseResult, nested),
        },
        "callback": {
            "type": "object",
            "nullable": True,
            "description": "the delivery to callbackUrl; null without one. A callback's own body says `pending` and "
            "the attempts made before it",
            "properties": {
                "state": {"type": "string", "enum": ["pending", "delivered", "failed"]},
                "attempts": {"type": "integer", "minimum": 0},
                "lastError": {"type": "string", "nullable": True, "description": "why the last attempt failed"},
            },
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Monaco",
            "version": version,
            "description": "Run untrusted programs (Python, Java, C, C++ and more) and read their results.",
        },
        "paths": {
            "/submit": {
                "post": {
                    "summary": "Queue a program to run",
                    "parameters": [
                        {
                            "name": "wait",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "number", "minimum": 0},
                            "description": "answer with the result if it is ready within this many seconds",
                        }
                    ],
                    "requestBody": {"required": True, "content": {"application/json": {"schema": submit_schema}}},
                    "responses": {
                        "200": {"description": "finished within `wait`", "content": json_of("Result")},
                        "202": {"description": "stored and queued", "content": json_of("Accepted")},
                        "400": _error(
                            "bad request: malformed JSON, wrong types, empty code, unknown language, limits, "
                            "a Host not in MONACO_ALLOWED_HOSTS, a callbackUrl refused (callbacks off, not http(s), "
                            "userinfo, too long, host not on MONACO_CALLBACK_ALLOW)"
                        ),
                        "408": _error("the request's head or body took too long to arrive"),
                        "413": _error("code or input over the size limit"),
                        "415": _error("the body is not declared as 'Content-Type: application/json'"),
                        "429": _error("the queue is full; see Retry-After"),
                        "503": _error("the store is unreachable"),
                    },
                }
            },
            "/status": {
                "get": {
                    "summary": "A submission's status",
                    "parameters": [_id_param()],
                    "responses": {
                        "200": {"description": "the status", "content": json_of("Status")},
                        "400": _error("no id"),
                        "404": _error("unknown id"),
                    },
                }
            },
            "/result": {
                "get": {
                    "summary": "A submission's result",
                    "parameters": [_id_param()],
                    "responses": {
                        "200": {"description": "the result so far", "content": json_of("Result")},
                        "400": _error("no id"),
                        "404": _error("unknown id"),
                    },
                }
            },
            "/submit/batch": {
                "post": {
                    "summary": f"Queue up to {MAX_BATCH} programs; each item is accepted or refused on its own",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": {
                            "type": "object",
                            "required": ["submissions"],
                            "properties": {"submissions": {
                                "type": "array", "minItems": 1, "maxItems": MAX_BATCH, "items": submit_schema,
                            }},
                        }}},
                    },
                    "responses": {
                        "202": {
                            "description": "one entry per item, in order: its id, or why it was refused",
                            "content": json_of("BatchAccepted"),
                        },
                        "400": _error("not a JSON object with a non-empty 'submissions' list"),
                        "413": _error(f"more than {MAX_BATCH} submissions, or a body over the limit"),
                        "415": _error("the body is not declared as 'Content-Type: application/json'"),
                    },
                }
            },
            "/results": {
                "get": {
                    "summary": f"The results of up to {MAX_BATCH} submissions",
                    "parameters": [{
                        "name": "ids", "in": "query", "required": True, "schema": {"type": "string"},
                        "description": "comma-separated ids from POST /submit or POST /submit/batch",
                    }],
                    "responses": {
                        "200": {
                            "description": "one entry per id, in order: its result, or not found",
                            "content": json_of("Results"),
                        },
                        "400": _error(f"no ids, more than {MAX_BATCH}, or an id too long to be one"),
                        "503": _error("the store is unreachable"),
                    },
                }
            },
            "/submissions/{id}": {
                "delete": {
                    "summary": "Cancel a queued or running submission",
                    "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}],
                    "responses": {
                        "200": {"description": "cancelled", "content": json_of("Status")},
                        "404": _error("unknown id"),
                        "409": _error("already finished"),
                    },
                }
            },
            "/queue-stats": {
                "get": {
                    "summary": "Queue length, workers, running jobs",
                    "responses": {"200": {"description": "stats", "content": json_of("QueueStats")}},
                }
            },
            "/languages": {
                "get": {
                    "summary": "Installed languages, versions and limits",
                    "responses": {"200": {"description": "the registry"}},
                }
            },
            "/healthz": {"get": {"summary": "Liveness", "responses": {"200": {"description": "alive"}}}},
            "/readyz": {
                "get": {
                    "summary": "Readiness",
                    "responses": {"200": {"description": "ready"}, "503": {"description": "not ready"}},
                }
            },
            "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "metrics"}}}},
        },
        "components": {
            "schemas": {
                **nested,
                "Accepted": {"type": "object", "required": ["id"], "properties": {"id": {"type": "string"}}},
                "Status": {"type": "object", "required": ["id", "status", "queuedAt"], "properties": status_props},
                "Result": {"type": "object", "required": ["id", "status", "language"], "properties": result_props},
                "QueueStats": {
                    "type": "object",
                    "properties": {
                        "queue_stats": {
                            "type": "object",
                            "properties": {
                                "queue_length": {"type": "integer"},
                                "max_workers": {"type": "integer"},
                                "running_jobs": {"type": "integer"},
                            },
                        },
                        "submissions": {"type": "integer"},
                    },
                },
                "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
                "BatchAccepted": {"type": "object", "properties": {"submissions": {"type": "array", "items": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "string"}, "error": {"type": "string"}, "status": {"type": "integer"},
                    },
                }}}},
                "Results": {"type": "object", "properties": {"results": {"type": "array", "items": {
                    "type": "object", "required": ["id"],
                    "properties": {
                        **result_props, "error": {"type": "string"}, "status": {"type": ["string", "integer"]},
                    },
                }}}},
            }
        },
    }
