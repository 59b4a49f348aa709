"""The one Kubernetes client factory and the one reading of the API server's refusals (core/kube.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kubernetes.client.exceptions import ApiException

from monaco.core.kube import api_client, api_message


def test_the_client_follows_a_kubeconfig_set_after_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "here",
        "clusters": [{"name": "here", "cluster": {"server": "https://192.0.2.7:6443"}}],
        "users": [{"name": "here", "user": {"token": "t"}}],
        "contexts": [{"name": "here", "context": {"cluster": "here", "user": "here"}}],
    }))  # fmt: skip
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with api_client() as made:
        assert made.configuration.host == "https://192.0.2.7:6443"


def _refusal(body: object, status: int = 422, reason: str = "Unprocessable Entity") -> ApiException:
    exc = ApiException(status=status, reason=reason)
    exc.body = body if isinstance(body, str) else json.dumps(body)
    return exc


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"message": 'CodeSubmission "a" is invalid: spec.code: Too long',
          "details": {"causes": [{"field": "spec.code", "message": "Too long"}, {"message": "and more"}]}},
         "spec.code: Too long; and more"),
        ({"message": 'Job.batch "csub-a" is invalid: spec.template: Required value'},
         'Job.batch "csub-a" is invalid: spec.template: Required value'),
        ({}, "Unprocessable Entity"),
        ("<html>a proxy's page</html>", "Unprocessable Entity"),
    ],
)
def test_a_refusal_reads_in_the_api_servers_words(body: object, message: str) -> None:
    assert api_message(_refusal(body)) == message


def test_a_refusal_without_words_says_its_status() -> None:
    assert api_message(_refusal("", reason="")) == "422"
