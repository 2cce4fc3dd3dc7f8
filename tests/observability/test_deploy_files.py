"""The Grafana dashboard and the Prometheus alert rules in deploy/ name only metrics
and labels the engine exports (a renamed metric fails here, not on a quiet graph)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from ivr.observability.registry import Metrics

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "arspay.json"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
NAME = re.compile(r"\b(arspay_[a-z_]+)")
BY = re.compile(r"\bby \(([^)]*)\)")
SELECTOR_LABEL = re.compile(r"[{,]\s*([a-z_]+)\s*(?:=~|!=|!~|=)")
TARGET_LABELS = {"instance", "job", "le"}  # added by Prometheus or by histograms


def exported() -> tuple[set[str], set[str]]:
    """Every sample name the registry can expose, and every label name."""
    names: set[str] = set()
    labels: set[str] = set()
    for family in Metrics().registry.collect():
        suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"]}
        names |= {family.name + s for s in suffixes.get(family.type, [""])}
        for sample in family.samples:
            labels |= set(sample.labels)
    registry = Metrics()
    for attr in vars(registry).values():  # labelled metrics with no child yet
        labels |= set(getattr(attr, "_labelnames", ()))
    return names, labels


def expressions() -> list[str]:
    dash = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    exprs.append(dash["templating"]["list"][1]["definition"])
    rules = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    exprs += [r["expr"] for g in rules["groups"] for r in g["rules"]]
    return exprs


def test_dashboard_and_alerts_use_exported_names_and_labels() -> None:
    names, labels = exported()
    exprs = expressions()
    assert len(exprs) > 30
    used = {n for e in exprs for n in NAME.findall(e)}
    assert used - names == set()
    grouped = {label.strip() for e in exprs for g in BY.findall(e) for label in g.split(",")}
    selected = {label for e in exprs for label in SELECTOR_LABEL.findall(e)}
    assert (grouped | selected) - labels - TARGET_LABELS == set()


def test_every_alert_has_a_severity_and_a_summary() -> None:
    rules = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    for group in rules["groups"]:
        for rule in group["rules"]:
            assert rule["labels"]["severity"] in ("page", "ticket"), rule["alert"]
            assert rule["annotations"]["summary"], rule["alert"]
