"""Static checks of deploy/grafana/genaiops.json and deploy/prometheus/alerts.yml.

The dashboard and the alert rules are checked against the metrics the gateway really
exports (``Metrics.exposition()``): every metric name they use must exist, every label in a
selector, ``by (...)`` / ``without (...)`` clause or ``label_values(...)`` must exist on the
metric it applies to, and every exported metric must be shown or alerted on somewhere.
No Prometheus, Grafana or gateway is needed.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import Histogram
from prometheus_client.metrics import MetricWrapperBase

from genaiops.monitoring.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "genaiops.json"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"

REQUIRED_ALERTS = {
    "GenaiopsHighErrorRate",
    "GenaiopsHighP95Latency",
    "GenaiopsSlowTimeToFirstToken",
    "GenaiopsQueueSaturated",
    "GenaiopsModelNotReady",
    "GenaiopsAuthFailureSpike",
    "GenaiopsRateLimitRejections",
}
# Exported but not worth a panel or an alert of its own.
NOT_REQUIRED = {"genaiops_build_info"}

METRIC = re.compile(r"\bgenaiops_[a-z0-9_]+")
STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
SELECTOR = re.compile(r"\b(genaiops_[a-z0-9_]+)\s*\{([^}]*)\}")
MATCHER_LABEL = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")
GROUPING = re.compile(r"\b(by|without)\s*\(([^()]*)\)")
LABEL_VALUES = re.compile(r"\blabel_values\(\s*(genaiops_[a-z0-9_]+)\s*,\s*(\w+)\s*\)")
TEMPLATE_VAR = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")
DURATION = re.compile(r"^\d+[smhdwy]$")


# --- what the gateway exports ----------------------------------------------------------


@dataclass(frozen=True)
class Family:
    """A metric family as exported: its ``# TYPE`` name and type, the sample names a query
    may use, and the label names of each of those samples."""

    name: str
    type: str
    labels: dict[str, frozenset[str]]  # sample name -> label names

    @property
    def samples(self) -> frozenset[str]:
        return frozenset(self.labels)


def sample_names(name: str, kind: str) -> set[str]:
    """Sample names of a family from its ``# TYPE`` line. prometheus_client's text format
    names counters ``x_total`` and info metrics ``x_info`` (typed gauge) already; the
    OpenMetrics spelling (``x`` counter, ``x`` info) is accepted too."""
    if kind == "counter":
        return {name.removesuffix("_total") + "_total"}
    if kind == "histogram":
        return {name + "_bucket", name + "_sum", name + "_count"}
    if kind == "summary":
        return {name, name + "_sum", name + "_count"}
    if kind == "info":
        return {name.removesuffix("_info") + "_info"}
    return {name}  # gauge, untyped


def parse_exposition(text: str) -> dict[str, Family]:
    types: dict[str, str] = {}
    labels: dict[str, set[str]] = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(maxsplit=3)
            types[name] = kind
        elif line and not line.startswith("#"):
            match = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s", line)
            assert match, f"unparsable sample line: {line!r}"
            names = re.findall(r'([a-zA-Z_]\w*)="', STRING.sub('""', match[2] or ""))
            labels.setdefault(match[1], set()).update(names)
    families = {}
    for name, kind in types.items():
        samples = sample_names(name, kind)
        families[name] = Family(name, kind, {s: frozenset(labels.get(s, set())) for s in samples})
    return families


@pytest.fixture(scope="module")
def families() -> dict[str, Family]:
    metrics = Metrics(lambda: {"m": {"queued": 0, "queue_size": 1, "running": 0, "state": "ready"}})
    # Labelled counters and histograms have no series until first used: give each one a
    # child so that its label names show in the exposition.
    for wrapper in vars(metrics).values():
        if isinstance(wrapper, MetricWrapperBase):
            child = wrapper.labels(*["x"] * len(wrapper._labelnames))
            if isinstance(wrapper, Histogram):
                child.observe(1.0)
            else:
                child.inc()
    exported = parse_exposition(metrics.exposition().decode())
    assert exported, "Metrics.exposition() exported no metric families"
    return exported


def sample_labels(families: dict[str, Family]) -> dict[str, frozenset[str]]:
    return {s: lbls for family in families.values() for s, lbls in family.labels.items()}


# --- the dashboard and the rules -------------------------------------------------------


def load_dashboard() -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return dashboard


def load_rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    return [rule for group in document["groups"] for rule in group["rules"]]


def all_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, including those nested in (collapsed) rows."""
    panels = []
    for panel in dashboard["panels"]:
        panels.append(panel)
        panels.extend(panel.get("panels", []))
    return panels


def variable_query(variable: dict[str, Any]) -> str:
    query = variable.get("query", "")
    return str(query.get("query", "") if isinstance(query, dict) else query)


def dashboard_expressions(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, expression) for every panel target and every query variable."""
    found = []
    for panel in all_panels(dashboard):
        for target in panel.get("targets", []):
            where = f"panel {panel['id']} {panel.get('title')!r} target {target.get('refId')}"
            found.append((where, target.get("expr", "")))
    for variable in dashboard["templating"]["list"]:
        if variable.get("type") == "query":
            found.append((f"variable {variable['name']}", variable_query(variable)))
    return found


def alert_expressions() -> list[tuple[str, str]]:
    return [(f"alert {rule.get('alert')}", str(rule.get("expr", ""))) for rule in load_rules()]


def all_expressions() -> list[tuple[str, str]]:
    return dashboard_expressions(load_dashboard()) + alert_expressions()


# --- PromQL checks: each returns a list of problems, empty when the expression is fine ---


def strip_strings(expr: str) -> str:
    """The expression with every string literal emptied, so that label values such as
    ``"5.."`` or ``"$model"`` are not taken for syntax or metric names."""
    return STRING.sub('""', expr)


def balance_problems(expr: str) -> list[str]:
    closing = {")": "(", "]": "[", "}": "{"}
    stack: list[str] = []
    i = 0
    while i < len(expr):
        char = expr[i]
        if char in "\"'`":
            match = STRING.match(expr, i)
            if not match:
                return [f"unterminated {char} string at offset {i}"]
            i = match.end()
            continue
        if char in "([{":
            stack.append(char)
        elif char in closing and (not stack or stack.pop() != closing[char]):
            return [f"unbalanced {char!r} at offset {i}"]
        i += 1
    return [f"unclosed {''.join(stack)!r}"] if stack else []


def unknown_metric_problems(expr: str, labels: dict[str, frozenset[str]]) -> list[str]:
    used = set(METRIC.findall(strip_strings(expr)))
    return [f"{name} is not exported" for name in sorted(used - labels.keys())]


def group_after(code: str, pos: int) -> str | None:
    """The parenthesised group starting at the first non-blank character from ``pos``."""
    start = len(code) - len(code[pos:].lstrip())
    if start >= len(code) or code[start] != "(":
        return None
    depth = 0
    for end in range(start, len(code)):
        depth += {"(": 1, ")": -1}.get(code[end], 0)
        if depth == 0:
            return code[start : end + 1]
    return None


def group_before(code: str, pos: int) -> str | None:
    """The parenthesised group ending at the last non-blank character before ``pos``."""
    end = len(code[:pos].rstrip()) - 1
    if end < 0 or code[end] != ")":
        return None
    depth = 0
    for start in range(end, -1, -1):
        depth += {")": 1, "(": -1}.get(code[start], 0)
        if depth == 0:
            return code[start : end + 1]
    return None


def label_problems(expr: str, labels: dict[str, frozenset[str]]) -> list[str]:
    code = strip_strings(expr)
    problems = []
    # genaiops_x{label="..."}
    for metric, matchers in SELECTOR.findall(code):
        for label in MATCHER_LABEL.findall(matchers):
            if metric in labels and label not in labels[metric]:
                problems.append(f"{metric} has no label {label!r}")
    # sum by (a, b) (expr) and sum (expr) by (a, b): the labels must exist on every
    # genaiops metric aggregated.
    for match in GROUPING.finditer(code):
        argument = group_after(code, match.end()) or group_before(code, match.start()) or ""
        grouped = {label.strip() for label in match[2].split(",") if label.strip()}
        for metric in sorted(set(METRIC.findall(argument)) & labels.keys()):
            for label in sorted(grouped - labels[metric]):
                problems.append(f"{match[1]} ({label}) over {metric}, which has no {label!r}")
    # Grafana's label_values(genaiops_x, label)
    for metric, label in LABEL_VALUES.findall(code):
        if metric in labels and label not in labels[metric]:
            problems.append(f"label_values: {metric} has no label {label!r}")
    return problems


def expression_problems(expr: str, labels: dict[str, frozenset[str]]) -> list[str]:
    if not expr.strip():
        return ["empty expression"]
    # Names and labels are only looked for once the brackets and quotes are sound.
    unbalanced = balance_problems(expr)
    if unbalanced:
        return unbalanced
    return unknown_metric_problems(expr, labels) + label_problems(expr, labels)


# --- the checkers catch mistakes ---------------------------------------------------------


@pytest.mark.parametrize(
    "expr",
    [
        "sum(rate(genaiops_request_total[5m]))",  # misspelt counter
        "genaiops_requests",  # counter without _total
        "rate(genaiops_request_duration_seconds[5m])",  # histogram without a suffix
        'genaiops_requests_total{modle="x"}',
        'genaiops_request_duration_seconds_count{le="1"}',  # le is on _bucket only
        "sum by (reason) (rate(genaiops_requests_total[5m]))",
        "sum(rate(genaiops_requests_total[5m])) by (le)",
        "label_values(genaiops_model_ready, tenant)",
        "sum(rate(genaiops_requests_total[5m])",
        "sum(rate(genaiops_requests_total[5m)))",
        'genaiops_requests_total{status="5..}',
        "",
    ],
)
def test_checkers_reject_broken_expressions(expr: str, families: dict[str, Family]) -> None:
    assert expression_problems(expr, sample_labels(families))


def test_checkers_accept_valid_expressions(families: dict[str, Family]) -> None:
    labels = sample_labels(families)
    for expr in [
        'sum by (model, status) (rate(genaiops_requests_total{status=~"5..", model!=""}[5m]))',
        "histogram_quantile(0.9, sum by (le, model) "
        "(rate(genaiops_request_duration_seconds_bucket[5m])))",
        "sum(rate(genaiops_time_to_first_token_seconds_count[5m])) by (model)",
        'genaiops_build_info{version=~".+"}',
        "label_values(genaiops_requests_total, tenant)",
    ]:
        assert expression_problems(expr, labels) == [], expr


def test_exposition_families(families: dict[str, Family]) -> None:
    labels = sample_labels(families)
    assert labels["genaiops_requests_total"] == {"model", "status", "tenant"}
    assert labels["genaiops_request_duration_seconds_bucket"] == {"model", "le"}
    assert labels["genaiops_request_duration_seconds_count"] == {"model"}
    assert labels["genaiops_queue_depth"] == {"model"}
    assert labels["genaiops_build_info"] == {"version"}


# --- the dashboard ---------------------------------------------------------------------


def test_dashboard_structure() -> None:
    dashboard = load_dashboard()
    assert dashboard["title"] == "genaiops gateway"
    assert dashboard["uid"] == "genaiops"
    assert isinstance(dashboard["schemaVersion"], int) and dashboard["schemaVersion"] >= 36
    panels = all_panels(dashboard)
    assert panels
    ids = [panel.get("id") for panel in panels]
    assert all(isinstance(i, int) for i in ids), ids
    assert len(ids) == len(set(ids)), f"duplicate panel ids: {sorted(ids)}"
    for panel in panels:
        name = f"panel {panel['id']} {panel.get('title')!r}"
        assert panel.get("title"), name
        assert set(panel.get("gridPos", {})) >= {"x", "y", "w", "h"}, name
        if panel.get("type") == "row":
            continue
        assert panel.get("type") in {"timeseries", "stat", "gauge", "table", "bargauge"}, name
        assert panel.get("targets"), name
        for target in panel["targets"]:
            assert target.get("expr", "").strip(), f"{name}: target without expr"
        refs = [target.get("refId") for target in panel["targets"]]
        assert len(refs) == len(set(refs)), f"{name}: duplicate refIds {refs}"


def test_dashboard_layout_has_no_overlaps() -> None:
    cells: dict[tuple[int, int], str] = {}
    for panel in load_dashboard()["panels"]:
        grid = panel["gridPos"]
        name = f"panel {panel['id']} {panel.get('title')!r}"
        assert grid["x"] >= 0 and grid["w"] > 0 and grid["x"] + grid["w"] <= 24, name
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{name} overlaps {cells[(x, y)]}"
                cells[(x, y)] = name


def test_dashboard_variables_and_datasource() -> None:
    dashboard = load_dashboard()
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    inputs = {i.get("name") for i in dashboard.get("__inputs", [])}
    datasource = variables.get("datasource", {})
    assert "DS_PROMETHEUS" in inputs or (
        datasource.get("type") == "datasource" and datasource.get("query") == "prometheus"
    )
    for name in ("model", "tenant"):
        assert name in variables, f"missing template variable {name}"
        assert variable_query(variables[name]).startswith("label_values("), name
    for panel in all_panels(dashboard):
        if panel.get("type") != "row":
            uid = panel.get("datasource", {}).get("uid")
            assert uid in {"${datasource}", "$datasource", "${DS_PROMETHEUS}"}, panel["title"]


def test_dashboard_uses_only_defined_variables() -> None:
    dashboard = load_dashboard()
    defined = {v["name"] for v in dashboard["templating"]["list"]}
    problems = []
    for where, expr in dashboard_expressions(dashboard):
        for braced, bare in TEMPLATE_VAR.findall(expr):
            name = braced or bare
            if not name.startswith("__") and name not in defined:
                problems.append(f"{where}: undefined variable ${name}")
    assert not problems, "\n".join(problems)


# --- the alert rules -------------------------------------------------------------------


def test_alert_rules_structure() -> None:
    rules = load_rules()
    names = [rule.get("alert") for rule in rules]
    assert len(names) == len(set(names)), f"duplicate alert names: {names}"
    assert set(names) >= REQUIRED_ALERTS, f"missing: {REQUIRED_ALERTS - set(names)}"
    for rule in rules:
        name = rule.get("alert")
        assert name and str(name).startswith("Genaiops"), rule
        assert str(rule.get("expr", "")).strip(), name
        assert DURATION.match(str(rule.get("for", ""))), f"{name}: bad 'for'"
        assert rule.get("labels", {}).get("severity") in {"warning", "critical"}, name
        assert str(rule.get("annotations", {}).get("summary", "")).strip(), name
        assert str(rule.get("annotations", {}).get("description", "")).strip(), name


# --- every expression, dashboard and alerts ---------------------------------------------


def test_expressions_are_valid(families: dict[str, Family]) -> None:
    labels = sample_labels(families)
    problems = [
        f"{where}: {problem}\n    {expr}"
        for where, expr in all_expressions()
        for problem in expression_problems(expr, labels)
    ]
    assert not problems, "\n".join(problems)


def test_every_exported_metric_is_used(families: dict[str, Family]) -> None:
    used = {name for _, expr in all_expressions() for name in METRIC.findall(strip_strings(expr))}
    unused = [
        family.name
        for family in families.values()
        if not family.samples & used and not family.samples & NOT_REQUIRED
    ]
    assert not unused, f"exported but on no dashboard panel or alert: {unused}"
