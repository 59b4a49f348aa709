"""The Kubernetes calls: idempotent creates and deletes, compare-and-set status patches, bounded log reads."""

from __future__ import annotations

from typing import Any
from unittest import mock

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from monaco.operator.cluster import JSON_PATCH, Cluster, Rejected, status_ops
from tests.operator.conftest import NS, FakeCluster, PatchFailed, apply_json_patch


def fake_cluster() -> Cluster:
    cluster = Cluster(NS, api=client.ApiClient(client.Configuration()))
    cluster.core = mock.MagicMock()
    cluster.batch = mock.MagicMock()
    cluster.networking = mock.MagicMock()
    cluster.custom = mock.MagicMock()
    return cluster


def conflict(status: int) -> ApiException:
    return ApiException(status=status, reason="x")


def test_status_ops_test_then_add() -> None:
    ops = status_ops({"phase": "running", "jobName": "csub-a"}, phase="queued")
    assert ops == [
        {"op": "test", "path": "/status/phase", "value": "queued"},
        {"op": "add", "path": "/status/phase", "value": "running"},
        {"op": "add", "path": "/status/jobName", "value": "csub-a"},
    ]
    ops = status_ops({"phase": "queued"}, resource_version="7", whole=True)
    assert ops == [{"op": "test", "path": "/metadata/resourceVersion", "value": "7"},
                   {"op": "add", "path": "/status", "value": {"phase": "queued"}}]


def test_status_ops_are_all_or_nothing() -> None:
    body = {"metadata": {"resourceVersion": "7"}, "status": {"phase": "completed", "verdict": "ok"}}
    with pytest.raises(PatchFailed):
        apply_json_patch(body, status_ops({"phase": "failed", "verdict": "timeout"}, phase="running"))
    assert body["status"] == {"phase": "completed", "verdict": "ok"}


@pytest.mark.anyio
async def test_patch_status_sends_a_json_patch_to_the_status_subresource() -> None:
    """Through the real generated client, down to the HTTP request it would send."""
    api = client.ApiClient(client.Configuration())
    sent: dict[str, Any] = {}

    def request(method: str, url: str, headers: Any = None, body: Any = None, **_: Any) -> Any:
        sent.update(method=method, url=url, headers=headers, body=body)
        raise ApiException(status=422, reason="test failed")

    api.rest_client.request = request  # type: ignore[method-assign, assignment]
    cluster = Cluster(NS, api=api)
    ops = status_ops({"phase": "failed"}, phase="running")
    assert await cluster.patch_status("a", ops) is False
    assert sent["method"] == "PATCH"
    assert sent["url"].endswith(f"/apis/monaco.dev/v1alpha1/namespaces/{NS}/codesubmissions/a/status")
    assert sent["headers"]["Content-Type"] == JSON_PATCH
    assert sent["body"] == ops


@pytest.mark.anyio
@pytest.mark.parametrize("code", [404, 409, 422])
async def test_a_lost_compare_and_set_is_false_not_an_error(code: int) -> None:
    cluster = fake_cluster()
    cluster.custom.patch_namespaced_custom_object_status.side_effect = conflict(code)
    assert await cluster.patch_status("a", []) is False


@pytest.mark.anyio
async def test_other_api_errors_propagate() -> None:
    cluster = fake_cluster()
    cluster.custom.patch_namespaced_custom_object_status.side_effect = conflict(500)
    with pytest.raises(ApiException):
        await cluster.patch_status("a", [])


@pytest.mark.anyio
async def test_creates_tolerate_already_exists() -> None:
    cluster = fake_cluster()
    for call in (cluster.core.create_namespaced_config_map, cluster.networking.create_namespaced_network_policy,
                 cluster.batch.create_namespaced_job):
        call.side_effect = conflict(409)
    cluster.batch.read_namespaced_job.return_value = {"metadata": {"name": "csub-a"}}
    body = {"metadata": {"name": "csub-a"}}
    await cluster.create_configmap(body)
    await cluster.create_network_policy(body)
    assert await cluster.create_job(body) == {"metadata": {"name": "csub-a"}}
    cluster.core.create_namespaced_config_map.assert_called_once_with(NS, body)


@pytest.mark.anyio
async def test_create_job_returns_none_when_it_created_it() -> None:
    cluster = fake_cluster()
    assert await cluster.create_job({"metadata": {"name": "csub-a"}}) is None
    cluster.batch.read_namespaced_job.assert_not_called()


@pytest.mark.anyio
async def test_an_invalid_object_is_rejected_with_the_api_servers_message() -> None:
    cluster = fake_cluster()
    exc = ApiException(status=422, reason="Unprocessable Entity")
    exc.body = '{"kind": "Status", "message": "Job.batch \\"csub-a\\" is invalid: spec.template: Required value"}'
    cluster.batch.create_namespaced_job.side_effect = exc
    with pytest.raises(Rejected, match=r"is invalid: spec\.template: Required value"):
        await cluster.create_job({"kind": "Job", "metadata": {"name": "csub-a"}})


@pytest.mark.anyio
async def test_create_errors_other_than_409_propagate() -> None:
    cluster = fake_cluster()
    cluster.core.create_namespaced_config_map.side_effect = conflict(403)
    with pytest.raises(ApiException):
        await cluster.create_configmap({"metadata": {"name": "x"}})


@pytest.mark.anyio
async def test_delete_children_in_background_and_tolerates_missing() -> None:
    cluster = fake_cluster()
    cluster.core.delete_namespaced_config_map.side_effect = conflict(404)
    await cluster.delete_children("a")
    cluster.networking.delete_namespaced_network_policy.assert_called_once_with("csub-a", NS)
    cluster.batch.delete_namespaced_job.assert_called_once_with("csub-a", NS, propagation_policy="Background")


@pytest.mark.anyio
async def test_delete_submission_is_guarded_by_uid() -> None:
    cluster = fake_cluster()
    await cluster.delete_submission("a", "uid-a")
    args, kwargs = cluster.custom.delete_namespaced_custom_object.call_args
    assert args == ("monaco.dev", "v1alpha1", NS, "codesubmissions", "a")
    assert kwargs["body"]["preconditions"] == {"uid": "uid-a"}


@pytest.mark.anyio
async def test_read_log_is_bounded_and_returns_bytes() -> None:
    cluster = fake_cluster()
    response = mock.MagicMock()
    response.data = b"envelope\xff"
    cluster.core.read_namespaced_pod_log.return_value = response
    assert await cluster.read_log("p", "run", 26, 500_000) == b"envelope\xff"
    _, kwargs = cluster.core.read_namespaced_pod_log.call_args
    assert kwargs["tail_lines"] == 26 and kwargs["limit_bytes"] == 500_000 and kwargs["container"] == "run"
    response.release_conn.assert_called_once()


@pytest.mark.anyio
async def test_read_log_of_a_container_that_never_ran_is_none() -> None:
    cluster = fake_cluster()
    cluster.core.read_namespaced_pod_log.side_effect = conflict(400)
    assert await cluster.read_log("p", "run", 26, 1000) is None


@pytest.mark.anyio
async def test_get_missing_objects_is_none() -> None:
    cluster = fake_cluster()
    cluster.custom.get_namespaced_custom_object.side_effect = conflict(404)
    cluster.batch.read_namespaced_job.side_effect = conflict(404)
    assert await cluster.get_submission("a") is None
    assert await cluster.get_job("csub-a") is None


def test_the_fake_cluster_mirrors_the_real_one() -> None:
    real = {n for n in dir(Cluster) if not n.startswith("_")}
    assert real <= set(dir(FakeCluster))
