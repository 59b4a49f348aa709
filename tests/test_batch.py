"""Monaco's own batches: POST /submit/batch and GET /results, over the real app and real runs."""

from __future__ import annotations

import httpx
import pytest

from monaco.api.routes import MAX_BATCH
from tests.conftest import wait_for_result


@pytest.mark.anyio
async def test_a_batch_with_a_bad_item_keeps_the_good_ones(client: httpx.AsyncClient) -> None:
    response = await client.post("/submit/batch", json={"submissions": [
        {"language": "python", "code": "print(6 * 7)"},
        {"language": "cobol", "code": "x"},
        {"code": ""},
        [],
        {"language": "python", "code": "print(input())", "input": "second"},
    ]})
    assert response.status_code == 202
    first, unknown, empty, not_object, last = response.json()["submissions"]
    assert unknown["status"] == 400 and "unknown language 'cobol'" in unknown["error"]
    assert empty == {"error": "'code' is empty; send the program's source code", "status": 400}
    assert not_object["status"] == 400 and "submissions[3]" in not_object["error"]
    assert (await wait_for_result(client, first["id"]))["output"] == "42\n"
    await wait_for_result(client, last["id"])
    results = (await client.get("/results", params={"ids": f"{first['id']},nope,{last['id']}"})).json()["results"]
    assert results[0]["output"] == "42\n" and results[2]["output"] == "second\n"
    assert results[1] == {"id": "nope", "error": "not found", "status": 404}
    metrics = (await client.get("/metrics")).text
    assert 'monaco_submissions_rejected_total{reason="bad_request"} 3.0' in metrics


@pytest.mark.anyio
async def test_item_limits_are_the_same_as_submit_s(client: httpx.AsyncClient) -> None:
    response = await client.post("/submit/batch", json={"submissions": [
        {"code": "x" * (65 * 1024)}, {"code": "print(1)", "timeoutSeconds": 999}]})
    big, slow = response.json()["submissions"]
    assert big["status"] == 413 and slow["status"] == 400 and "timeoutSeconds" in slow["error"]


@pytest.mark.anyio
@pytest.mark.parametrize("body", [{}, {"submissions": []}, {"submissions": {"code": "x"}}])
async def test_a_batch_must_be_a_non_empty_list(client: httpx.AsyncClient, body: object) -> None:
    response = await client.post("/submit/batch", json=body)
    assert response.status_code == 400 and "submissions" in response.json()["error"]


@pytest.mark.anyio
async def test_bounds(client: httpx.AsyncClient) -> None:
    too_many = await client.post("/submit/batch", json={"submissions": [{"code": "1"}] * (MAX_BATCH + 1)})
    assert too_many.status_code == 413 and f"at most {MAX_BATCH}" in too_many.json()["error"]
    ids = await client.get("/results", params={"ids": ",".join(["a"] * (MAX_BATCH + 1))})
    assert ids.status_code == 400
    assert (await client.get("/results")).status_code == 400
    assert (await client.get("/results", params={"ids": "x" * 129})).status_code == 400
    huge = await client.post("/submit/batch", content=b" " * (8 * 1024 * 1024),
                             headers={"content-type": "application/json"})
    assert huge.status_code == 413
    form = await client.post("/submit/batch", content=b"{}", headers={"content-type": "text/plain"})
    assert form.status_code == 415
