"""The Grafana dashboard (helm/monaco/files/dashboards/monaco.json) asks only for metrics that exist.

Every PromQL expression of the dashboard, its panels' queries and its variables' alike, is reduced to the
metric names it reads; each must be one that GET /metrics of the real app exposes, after one program
has run so that the labelled series exist. The chart's side (the ConfigMap, the ServiceMonitor) is in
tests/test_helm_chart.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from monaco.core.settings import Settings
from monaco.operator.metrics import Health, HealthCollector, PoolCollector
from monaco.operator.pool import Pool
from tests.conftest import run_program

DASHBOARD = Path(__file__).resolve().parents[1] / "helm" / "monaco" / "files" / "dashboards" / "monaco.json"

# What PromQL spells with identifiers that are not metric names.
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless",
            "offset", "inf", "nan"}
_IGNORED = [
    re.compile(r"(?<=label_values\()([^,()]*),[^)]*"),  # Grafana's label_values(metric, label): the label
    re.compile(r'"(?:[^"\\]|\\.)*"'),  # strings (label values, regexes)
    re.compile(r"\{[^}]*\}"),  # label matchers (after the strings, which may hold braces)
    re.compile(r"\[[^\]]*\]"),  # range selectors: [5m], [$__rate_interval]
    re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)"),  # label lists
    re.compile(r"\$\{[^}]*\}|\$\w+"),  # Grafana variables
]
_IDENTIFIER = re.compile(r"(?<![\w.])([a-zA-Z_:][\w:]*)(\s*\()?")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (functions, keywords and labels left out)."""
    for pattern in _IGNORED:
        expr = pattern.sub(r"\1" if pattern.groups else " ", expr)
    return {m.group(1) for m in _IDENTIFIER.finditer(expr) if not m.group(2) and m.group(1).lower() not in KEYWORDS}


def test_metric_names_reads_promql() -> None:
    expr = ('histogram_quantile(0.9, sum by (language, le) (rate(monaco_execution_seconds_bucket{job=~"$job",'
            ' language=~"a|b"}[$__rate_interval]))) / clamp_min(sum(monaco_queue_length offset 5m), 1e-3)'
            " + vector($max_workers) + on(job) group_left up")
    assert metric_names(expr) == {"monaco_execution_seconds_bucket", "monaco_queue_length", "up"}
    assert metric_names("label_values(monaco_submissions_received_total, language)") == {
        "monaco_submissions_received_total"}


def dashboard_queries() -> dict[str, str]:
    """Every PromQL expression of the dashboard, by where it is: panels (rows included) and variables."""
    board: dict[str, Any] = json.loads(DASHBOARD.read_text())
    queries: dict[str, str] = {}
    panels = [*board["panels"], *(p for row in board["panels"] for p in row.get("panels", []))]
    for panel in panels:
        for target in panel.get("targets", []):
            queries[f"panel {panel['title']!r} {target['refId']}"] = target["expr"]
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            queries[f"variable {variable['name']}"] = query["query"] if isinstance(query, dict) else query
    return queries


def exposed_names(text: str) -> set[str]:
    """The names GET /metrics exposes: every sample's, and those of families declared without samples yet
    (a labelled counter such as the rejections has none until the first one)."""
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        names |= {sample.name for sample in family.samples}
        names |= {family.name + suffix for suffix in {"counter": ("_total",),
                                                       "histogram": ("_bucket", "_sum", "_count")}.get(
            family.type, ("",))}
    return names


# Series Prometheus itself adds to every scrape target, which no /metrics exposes.
SCRAPE_SERIES = {"up"}


def operator_names(settings: Settings) -> set[str]:
    """What the operator's own /metrics (operator.metricsPort) exposes: its health's and the warm pools' families."""
    pool = Pool(settings.model_copy(update={"warm_pool": {"python": 1}}), None)  # type: ignore[arg-type]
    registry = CollectorRegistry()
    registry.register(PoolCollector(pool, lambda: ({}, {})))
    registry.register(HealthCollector(lambda: Health(1.0, {"warm": 1, "cold": 1}, 1, 0)))
    return exposed_names(generate_latest(registry).decode())


@pytest.mark.anyio
async def test_every_panel_queries_metrics_that_metrics_exposes(client: httpx.AsyncClient, settings: Settings) -> None:
    """The API's /metrics, and for the warm-pool row the operator's: each name must be one of them."""
    result = await run_program(client, "python", "print('hi')")
    assert result["verdict"] == "ok", result
    operator = operator_names(settings)
    assert {"monaco_pool_idle", "monaco_pool_claims_total", "monaco_pool_claim_seconds_bucket"} <= operator
    exposed = exposed_names((await client.get("/metrics")).text) | operator | SCRAPE_SERIES
    queries = dashboard_queries()
    assert len([q for q in queries if q.startswith("panel")]) >= 8
    for where, expr in queries.items():
        names = metric_names(expr)
        assert names, f"{where}: no metric in {expr!r}"
        assert names <= exposed, f"{where}: {sorted(names - exposed)} not in GET /metrics ({sorted(exposed)})"


# Labels Prometheus adds to every series it scrapes through a ServiceMonitor or PodMonitor.
TARGET_LABELS = {"job", "instance", "namespace", "pod", "service", "container", "endpoint"}


def labels_used(expr: str, legend: str = "") -> set[str]:
    """The label names an expression groups, matches or (in its legend) prints by."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    used = {name for group in re.findall(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)", expr)
            for name in re.findall(r"\w+", group)}
    used |= {name for matchers in re.findall(r"\{([^}]*)\}", expr)
             for name in re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", matchers)}
    label_values = re.search(r"label_values\(\s*[\w:]+\s*,\s*(\w+)\s*\)", expr)
    return used | set(re.findall(r"\{\{\s*(\w+)\s*\}\}", legend)) | ({label_values[1]} if label_values else set())


def series_labels(text: str) -> dict[str, set[str]]:
    labels: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels.setdefault(sample.name, set()).update(sample.labels)
    return labels


@pytest.mark.anyio
async def test_every_label_a_panel_uses_is_on_its_metrics(client: httpx.AsyncClient, settings: Settings) -> None:
    """A `by (verdict)`, a `{language=~...}` or a legend's {{reason}} that names a label its metrics lack
    draws nothing: each must be on the series of a metric of that query (or added by the scrape)."""
    assert (await run_program(client, "python", "print('hi')"))["verdict"] == "ok"
    assert (await client.post("/submit", json={"language": "python", "code": ""})).status_code == 400  # a rejection
    pool = Pool(settings.model_copy(update={"warm_pool": {"python": 1}}), None)  # type: ignore[arg-type]
    pool.stats.claims["python"] = 1
    pool.stats.misses[("python", "empty")] = 1
    registry = CollectorRegistry()
    registry.register(PoolCollector(pool, lambda: ({}, {})))
    registry.register(HealthCollector(lambda: Health(1.0, {"warm": 1, "cold": 1}, 1, 0)))
    labels = series_labels((await client.get("/metrics")).text) | series_labels(generate_latest(registry).decode())
    assert labels["monaco_submissions_rejected_total"] == {"reason"}
    board = json.loads(DASHBOARD.read_text())
    panels = [*board["panels"], *(p for row in board["panels"] for p in row.get("panels", []))]
    checked = 0
    for where, expr, legend in [*((f"panel {p['title']!r} {t['refId']}", t["expr"], t.get("legendFormat", ""))
                                  for p in panels for t in p.get("targets", [])),
                                *((f"variable {name}", expr, "") for name, expr in dashboard_queries().items()
                                  if name.startswith("variable"))]:
        names = metric_names(expr) - SCRAPE_SERIES
        have = set().union(*(labels.get(n, set()) for n in names)) | TARGET_LABELS
        missing = labels_used(expr, legend) - have
        assert not missing, f"{where}: {sorted(missing)} on none of {names}"
        checked += 1
    assert checked >= 15
    assert labels_used('sum by (language, le) (rate(x{job=~"$job", verdict!="ok"}[5m]))', "{{ pod }}") == {
        "language", "le", "job", "verdict", "pod"}


def test_the_panels_the_issue_asks_for_are_there_and_grafana_can_import_it() -> None:
    board = json.loads(DASHBOARD.read_text())
    assert board["uid"] and isinstance(board["schemaVersion"], int) and board["schemaVersion"] >= 36
    assert board.get("id") is None  # an id would collide on import
    [source] = [v for v in board["templating"]["list"] if v["type"] == "datasource"]
    assert source["query"] == "prometheus"
    panels = [*board["panels"], *(p for row in board["panels"] for p in row.get("panels", []))]
    assert len({p["id"] for p in panels}) == len(panels)
    exprs = {p["title"]: " ".join(t["expr"] for t in p.get("targets", [])) for p in panels}
    wanted = {  # what an operator asked for: the metric (and grouping) that answers it
        "submissions/s by language and verdict": ("rate(monaco_submissions_total", "by (language, verdict)"),
        "queue length": ("monaco_queue_length",),
        "queue wait": ("monaco_queue_wait_seconds_bucket", "histogram_quantile"),
        "running sandboxes against MAX_WORKERS": ("monaco_running_jobs", "monaco_max_workers"),
        "execution time percentiles": ("histogram_quantile(0.99", "monaco_execution_seconds_bucket"),
        "rejections": ("monaco_submissions_rejected_total", "by (reason)"),
        "pool health": ("monaco_pool_idle", "monaco_pool_size"),
        "operator health": ("up{",),
    }
    for what, parts in wanted.items():
        assert any(all(part in expr for part in parts) for expr in exprs.values()), what


def test_every_panel_says_what_it_shows() -> None:
    board = json.loads(DASHBOARD.read_text())
    for panel in board["panels"]:
        if panel["type"] != "row":
            assert panel.get("description"), panel["title"]
            assert all(t["datasource"] == {"type": "prometheus", "uid": "${datasource}"} for t in panel["targets"])
    assert {v["name"] for v in board["templating"]["list"]} >= {"datasource", "job", "operator_job", "language"}
