"""The Kubernetes API client of the API's back end and of the operator, and how the API server's refusals read."""

from __future__ import annotations

import json
import os

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException


def api_client() -> client.ApiClient:
    """In a pod, the service account; elsewhere KUBECONFIG. Never the library's global default config."""
    configuration = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    except config.ConfigException:
        # Read KUBECONFIG now: the library reads it once, when it is imported.
        kubeconfig = os.environ.get("KUBECONFIG") or None
        config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)  # type: ignore[no-untyped-call]
    return client.ApiClient(configuration)


def api_message(exc: ApiException) -> str:
    """The API server's own words (a Status object), field by field when it names the fields."""
    try:
        body = json.loads(exc.body or "")
        causes = (body.get("details") or {}).get("causes") or []
        parts = [f"{c['field']}: {c.get('message', '')}" if c.get("field") else c.get("message", "") for c in causes]
        return "; ".join(p for p in parts if p) or str(body.get("message") or exc.reason or exc.status)
    except (ValueError, AttributeError, TypeError, KeyError):
        return str(exc.reason or exc.status)
