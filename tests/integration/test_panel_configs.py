"""The operations configs: Prometheus scrape config and alerts (promtool when installed),
the Grafana dashboard and its provisioning, docker-compose.yml (`docker compose config`),
and that every metric they use is one the code exports."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from abuse.metrics import AbuseMetrics
from abuse.sip_guard import GuardMetrics
from cdr.metrics import CdrMetrics
from panel_api.metrics import PanelMetrics
from switch.asterisk_metrics import AsteriskCollector
from tollgate.metrics import Metrics
from tollgate.scheduler import SchedulerMetrics

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "configs" / "prometheus"
GRAFANA = ROOT / "configs" / "grafana"
METRIC = re.compile(r"\btollgate_[a-z0-9_]+")
SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("_sum", "_count", "_created", ""),
    "gauge": ("",),
}


def exported_metrics() -> set[str]:
    """Every sample name the processes' registries can expose (metric families without
    samples yet included)."""
    names: set[str] = set()
    # the Asterisk relay with no Asterisk behind it (port 9: nothing listens) still says so
    relay = CollectorRegistry()
    relay.register(AsteriskCollector("http://127.0.0.1:9/metrics", timeout_s=1))
    for registry in (
        relay,
        Metrics().registry,
        CdrMetrics().registry,
        AbuseMetrics().registry,
        PanelMetrics().registry,
        SchedulerMetrics().registry,
        GuardMetrics().registry,
    ):
        for family in registry.collect():
            names.update(family.name + s for s in SUFFIXES.get(family.type, ("",)))
    return names


def alert_rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((GRAFANA / "dashboards" / "tollgate.json").read_text())
    return data


def dashboard_exprs() -> list[str]:
    return [t["expr"] for p in dashboard()["panels"] for t in p.get("targets", [])]


def test_every_metric_the_dashboard_and_alerts_use_is_exported() -> None:
    exported = exported_metrics()
    assert "tollgate_panel_requests_total" in exported
    used = {
        name
        for expr in dashboard_exprs() + [r["expr"] for r in alert_rules()]
        for name in METRIC.findall(expr)
    }
    assert used - exported == set()
    # and what the brief asks to watch is there
    for name in (
        "tollgate_authorizations_total",
        "tollgate_authorize_duration_seconds_bucket",
        "tollgate_sessions_active",
        "tollgate_session_events_total",
        "tollgate_cdr_stream_backlog",
        "tollgate_cdr_oldest_pending_seconds",
        "tollgate_abuse_findings_total",
        "tollgate_abuse_suspensions_total",
        "tollgate_panel_requests_total",
        "tollgate_panel_request_duration_seconds_bucket",
    ):
        assert any(name in expr for expr in dashboard_exprs()), name


def test_alert_rules_have_the_expected_shape() -> None:
    rules = alert_rules()
    names = {r["alert"] for r in rules}
    for wanted in (
        "TollgateDown",
        "TollgateAuthorizationLatencyHigh",
        "CdrWriterLagging",
        "FraudFinding",
        "TollgateReservationsExpiring",
        "CdrWriterDown",
        "AbuseDetectorDown",
        "AbuseWebhookFailing",
        "CdrsRejected",
        "CdrStreamsSkipped",
        "TollgateAgiConnectionsRejected",
    ):
        assert wanted in names
    for rule in rules:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        assert rule["labels"]["severity"] and rule["annotations"]["summary"], rule["alert"]
        assert re.fullmatch(r"[A-Z][A-Za-z]+", rule["alert"])


def test_known_label_sets_are_exported_at_zero_before_the_first_event() -> None:
    """A labelled counter first seen at 1 is invisible to increase(): the first finding or
    over-budget authorization would raise no alert."""
    from abuse.detectors import DETECTORS
    from rating.ledger import Reason

    abuse = AbuseMetrics(rules=DETECTORS).registry
    for rule in DETECTORS:
        for severity in ("info", "warning", "critical"):
            labels = {"rule": rule, "severity": severity}
            assert abuse.get_sample_value("tollgate_abuse_findings_total", labels) == 0
    serve = Metrics().registry
    for script in ("authorize", "finish"):
        labels = {"kind": "budget_exceeded", "script": script}
        assert serve.get_sample_value("tollgate_agi_events_total", labels) == 0
    # FastAGI connections refused by the allow-list / per-peer cap / total cap
    for kind in ("rejected_peer", "rejected_peer_limit", "rejected_overload"):
        labels = {"kind": kind, "script": "other"}
        assert serve.get_sample_value("tollgate_agi_events_total", labels) == 0
    for switch in ("fastagi", "ari"):
        for reason, decision in ((Reason.INSUFFICIENT_CREDIT, "DENY"), (Reason.OK, "ALLOW")):
            labels = {"switch": switch, "decision": decision, "reason": reason.value}
            assert serve.get_sample_value("tollgate_authorizations_total", labels) == 0
    writer = CdrMetrics().registry
    for service in ("redis", "postgresql"):
        labels = {"service": service}
        assert writer.get_sample_value("tollgate_cdr_write_errors_total", labels) == 0
    assert writer.get_sample_value("tollgate_cdr_streams_skipped") == 0


def test_the_separate_processes_are_scraped_and_watched() -> None:
    """In compose the CDR writer and the abuse detector are processes of their own: each is
    a scrape job, and an alert says when it is down."""
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    exprs = {r["alert"]: r["expr"] for r in alert_rules()}
    for job, alert in (("cdr-writer", "CdrWriterDown"), ("abuse-detector", "AbuseDetectorDown")):
        assert job in jobs
        assert f'up{{job="{job}"}} == 0' in exprs[alert]
        assert f'absent(up{{job="{job}"}})' in exprs[alert]


def test_prometheus_scrapes_tollgate_cdr_writer_and_panel() -> None:
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    assert config["rule_files"] == ["alerts.yml"]
    jobs = {
        job["job_name"]: [t for sc in job["static_configs"] for t in sc["targets"]]
        for job in config["scrape_configs"]
    }
    # serve shares Asterisk's network namespace; its FastAGI worker exports on the next port
    assert jobs["tollgate"] == ["asterisk:9464", "asterisk:9465"]
    assert jobs["cdr-writer"] == ["cdr-writer:9464"]
    assert jobs["panel"] == ["panel:9465"]


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian: prometheus)")
def test_promtool_accepts_the_config_and_the_alerts_pass_their_unit_tests() -> None:
    for args in (
        ["check", "config", "prometheus.yml"],
        ["check", "rules", "alerts.yml"],
        ["test", "rules", "alerts_test.yml"],
    ):
        done = subprocess.run(
            ["promtool", *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stdout + done.stderr


def test_grafana_dashboard_and_provisioning_fit_together() -> None:
    board = dashboard()
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids)) and board["uid"] == "tollgate"
    datasources = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )["datasources"]
    uid = datasources[0]["uid"]
    for p in board["panels"]:
        if p["type"] != "row":
            assert p["datasource"]["uid"] == uid and p["targets"], p["title"]
    provider = yaml.safe_load(
        (GRAFANA / "provisioning" / "dashboards" / "tollgate.yml").read_text()
    )["providers"][0]
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"


def compose_command() -> list[str] | None:
    if shutil.which("docker") is not None:
        plugin = subprocess.run(
            ["docker", "compose", "version"], capture_output=True, text=True, timeout=60
        )
        if plugin.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose") is not None:
        return ["docker-compose"]
    return None


@pytest.mark.skipif(compose_command() is None, reason="no docker compose (plugin or v1) installed")
def test_docker_compose_config_has_the_whole_stack() -> None:
    command = compose_command()
    assert command is not None
    env = {
        **os.environ,
        "POSTGRES_PASSWORD": "pg-secret",
        "REDIS_PASSWORD": "redis-secret",
        "ARI_PASSWORD": "ari-secret",
        "GRAFANA_ADMIN_PASSWORD": "grafana-secret",
        "PANEL_TLS_DIR": "/srv/tls",
        "EXTERNAL_ADDRESS": "203.0.113.5",
        "CARRIER_HOST": "sip.carrier.example",
        "CARRIER_MATCH": "198.51.100.0/24",
    }
    done = subprocess.run(
        [*command, "-f", "docker-compose.yml", "config"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    config = yaml.safe_load(done.stdout)
    services = config["services"]
    assert set(services) >= {
        "asterisk",
        "redis",
        "postgres",
        "tollgate",
        "cdr-writer",
        "panel",
        "proxy",
        "prometheus",
        "grafana",
    }
    # the panel is reached through the TLS proxy only; port 80 is the proxy's redirect
    assert not services["panel"].get("ports")
    published = {int(p["published"]) for p in services["proxy"]["ports"]}
    assert published == {80, 443}
    proxy_ip = services["proxy"]["networks"]["default"]["ipv4_address"]
    assert services["panel"]["environment"]["TOLLGATE_PANEL_TRUSTED_PROXIES"] == proxy_ip
    assert "--appendonly" in services["redis"]["command"]
    assert services["redis"]["command"][services["redis"]["command"].index("--appendonly") + 1] == (
        "yes"
    )
    for name in ("tollgate", "cdr-writer", "panel"):
        build = services[name]["build"]
        assert build["target"] == "tollgate" and Path(build["context"]).resolve() == ROOT
    assert services["tollgate"]["command"] == ["serve"]
    assert services["cdr-writer"]["command"] == ["cdr-writer"]
    assert services["panel"]["command"] == ["panel"]
    assert services["asterisk"]["build"]["target"] == "asterisk"
    # the ledger's Redis: no passwordless user; every client comes with the password
    redis_cmd = services["redis"]["command"]
    assert redis_cmd[redis_cmd.index("default") + 1] == "off"
    assert ">redis-secret" in redis_cmd
    for name in ("tollgate", "cdr-writer", "abuse-detector", "panel", "migrate"):
        url = services[name]["environment"]["TOLLGATE_REDIS_URL"]
        assert url.startswith("redis://tollgate:redis-secret@"), (name, url)
    # ARI (and AMI) stay on the Asterisk container's loopback: nothing else holds ARI secrets
    assert "TOLLGATE_ARI_URL" not in services["panel"]["environment"]
    assert services["tollgate"]["network_mode"] == "service:asterisk"
    asterisk_stage = (ROOT / "Dockerfile").read_text().split("AS asterisk", 1)[1]
    assert "\nUSER asterisk\n" in asterisk_stage and "bindaddr" not in asterisk_stage
    assert "8088" not in asterisk_stage.split("EXPOSE", 1)[1]

    def mounts(service: str) -> dict[str, str]:
        out = {}
        for volume in services[service]["volumes"]:
            if isinstance(volume, str):
                source, target = volume.split(":")[:2]
            else:
                source, target = volume["source"], volume["target"]
            out[target] = source
        return out

    assert Path(mounts("asterisk")["/etc/tollgate/asterisk"]).resolve() == ROOT / "configs/asterisk"
    assert Path(mounts("prometheus")["/etc/prometheus"]).resolve() == PROMETHEUS
    assert (
        Path(mounts("proxy")["/etc/nginx/nginx.conf"]).resolve()
        == ROOT / "configs/nginx/nginx.conf"
    )
    assert mounts("proxy")["/etc/nginx/tls"] == "/srv/tls"
    grafana = mounts("grafana")
    assert Path(grafana["/etc/grafana/provisioning"]).resolve() == GRAFANA / "provisioning"
    assert Path(grafana["/var/lib/grafana/dashboards"]).resolve() == GRAFANA / "dashboards"
    # every service has a healthcheck but the one-shot migration job
    for name, service in services.items():
        assert name == "migrate" or "healthcheck" in service, name
    # the production Asterisk gets its site values; the scheduler and the SIP guard run
    asterisk_env = services["asterisk"]["environment"]
    assert asterisk_env["EXTERNAL_ADDRESS"] == "203.0.113.5"
    assert asterisk_env["CARRIER_HOST"] == "sip.carrier.example"
    assert asterisk_env["PG_PASSWORD"] == "pg-secret"
    rtp = [
        p
        for p in services["asterisk"]["ports"]
        if str(p.get("target", "")).startswith("10000") or "10000" in str(p)
    ]
    assert rtp, services["asterisk"]["ports"]
    assert services["scheduler"]["command"] == ["scheduler"]
    assert services["sip-guard"]["command"] == ["sip", "guard"]
    assert services["sip-guard"]["network_mode"] == "service:asterisk"
    # no secret has a default: without them the stack does not start
    missing = subprocess.run(
        [*command, "-f", "docker-compose.yml", "config"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={k: v for k, v in env.items() if k != "POSTGRES_PASSWORD"},
        timeout=120,
    )
    assert missing.returncode != 0 and "POSTGRES_PASSWORD" in missing.stderr
