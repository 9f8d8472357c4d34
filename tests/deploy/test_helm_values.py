"""deploy/values.yaml, on paper: it parses, uses only keys the Dagster Helm chart knows, and sets the same
limits as the local deployment.

The known keys are those of the chart's values schema (helm/dagster/schema in dagster-io/dagster, the
pydantic models the chart's values.schema.json is generated from) for the sections this file uses.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from orchestration.deployment import instance_config

ROOT = Path(__file__).resolve().parents[2]

# DagsterHelmValues (top level).
TOP_LEVEL = {
    "global", "nameOverride", "fullnameOverride", "rbacEnabled", "dagsterWebserver",
    "dagster-user-deployments", "postgresql", "generatePostgresqlPasswordSecret",
    "generateCeleryConfigSecret", "rabbitmq", "redis", "flower", "ingress", "imagePullSecrets",
    "computeLogManager", "scheduler", "runLauncher", "pythonLogs", "dagsterDaemon", "busybox", "migrate",
    "telemetry", "serviceAccount", "retention", "additionalInstanceConfig", "concurrency",
}  # fmt: skip
KNOWN: dict[str, set[str]] = {
    "global": {"postgresqlSecretName", "dagsterHome", "serviceAccountName", "celeryConfigSecretName"},
    "postgresql": {
        "image", "enabled", "postgresqlHost", "postgresqlUsername", "postgresqlPassword",
        "postgresqlDatabase", "postgresqlParams", "postgresqlScheme", "service", "pool",
    },
    "dagsterWebserver": {
        "replicaCount", "image", "nameOverride", "pathPrefix", "service", "workspace", "env",
        "envConfigMaps", "envSecrets", "deploymentLabels", "labels", "nodeSelector", "affinity",
        "tolerations", "podSecurityContext", "securityContext", "resources", "readinessProbe",
        "livenessProbe", "startupProbe", "annotations", "enableReadOnly", "dbStatementTimeout",
        "dbPoolRecycle", "logLevel", "volumeMounts", "volumes", "schedulerName", "initContainers",
    },
    "dagster-user-deployments": {"enabled", "enableSubchart", "imagePullSecrets", "deployments"},
    "dagster-user-deployments.deployments[]": {
        "name", "image", "dagsterApiGrpcArgs", "codeServerArgs", "includeConfigInLaunchedRuns",
        "deploymentNamespace", "port", "replicaCount", "env", "envConfigMaps", "envSecrets", "annotations",
        "nodeSelector", "affinity", "tolerations", "podSecurityContext", "securityContext", "resources",
        "livenessProbe", "readinessProbe", "startupProbe", "labels", "volumeMounts", "volumes",
        "schedulerName", "initContainers", "sidecarContainers", "deploymentStrategy", "service",
    },
    "runLauncher": {"type", "config"},
    "runLauncher.config.k8sRunLauncher": {
        "image", "imagePullPolicy", "jobNamespace", "loadInclusterConfig", "kubeconfigFile",
        "envConfigMaps", "envSecrets", "envVars", "volumeMounts", "volumes", "labels",
        "failPodOnRunFailure", "resources", "schedulerName", "securityContext", "runK8sConfig",
    },
    "runLauncher.config.k8sRunLauncher.runK8sConfig": {
        "containerConfig", "podSpecConfig", "podTemplateSpecMetadata", "jobSpecConfig", "jobMetadata",
    },
    "dagsterDaemon": {
        "enabled", "image", "runCoordinator", "heartbeatTolerance", "env", "envConfigMaps", "envSecrets",
        "deploymentLabels", "labels", "nodeSelector", "affinity", "tolerations", "podSecurityContext",
        "securityContext", "resources", "livenessProbe", "readinessProbe", "startupProbe", "annotations",
        "runMonitoring", "runRetries", "sensors", "schedules", "schedulerName", "volumeMounts", "volumes",
        "initContainers", "sidecarContainers", "checkDbReadyInitContainer", "logLevel",
    },
    "dagsterDaemon.runCoordinator": {"enabled", "type", "config"},
    "dagsterDaemon.runCoordinator.config.queuedRunCoordinator": {
        "maxConcurrentRuns", "tagConcurrencyLimits", "dequeueIntervalSeconds", "dequeueNumWorkers",
        "dequeueUseThreads", "blockOpConcurrencyLimitedRuns",
    },
    "concurrency": {"enabled", "pools", "runs"},
    "concurrency.pools": {"defaultLimit", "granularity", "opGranularityRunBuffer"},
    "concurrency.runs": {"maxConcurrentRuns", "tagConcurrencyLimits"},
}  # fmt: skip


def _values() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "deploy" / "values.yaml").read_text())


def _at(values: dict[str, Any], dotted: str) -> list[dict[str, Any]]:
    nodes: list[Any] = [values]
    for part in dotted.split("."):
        many = part.endswith("[]")
        name = part.removesuffix("[]")
        nodes = [n[name] for n in nodes if isinstance(n, dict) and name in n]
        if many:
            nodes = [item for n in nodes for item in n]
    return nodes


def test_values_parse_and_use_only_keys_the_chart_knows():
    values = _values()
    assert set(values) <= TOP_LEVEL, set(values) - TOP_LEVEL
    for section, known in KNOWN.items():
        for node in _at(values, section):
            assert set(node) <= known, (section, set(node) - known)
    assert values["runLauncher"]["type"] in {"K8sRunLauncher", "CeleryK8sRunLauncher", "CustomRunLauncher"}
    assert values["dagsterDaemon"]["runCoordinator"]["type"] == "QueuedRunCoordinator"
    deployment = values["dagster-user-deployments"]["deployments"][0]
    assert {"name", "image", "port"} <= set(deployment)
    assert deployment["image"]["tag"] != "latest"  # a unique tag per release


def test_kubernetes_limits_match_the_local_instance_and_hold_no_secret():
    values = _values()
    local = instance_config(pg_port=5432)["concurrency"]  # what make deploy-local runs
    assert values["concurrency"]["enabled"] is True
    assert values["concurrency"]["pools"]["defaultLimit"] == local["pools"]["default_limit"]
    assert values["concurrency"]["pools"]["granularity"] == local["pools"]["granularity"] == "run"
    assert values["concurrency"]["runs"]["maxConcurrentRuns"] == local["runs"]["max_concurrent_runs"]
    assert values["concurrency"]["runs"]["tagConcurrencyLimits"] == local["runs"]["tag_concurrency_limits"]
    # The chart refuses both places for one limit.
    queued = values["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    assert "maxConcurrentRuns" not in queued
    assert (
        values["generatePostgresqlPasswordSecret"] is False
        and "postgresqlPassword" not in values["postgresql"]
    )
    env = values["dagster-user-deployments"]["deployments"][0]["env"]
    assert not {"HUBSPOT_ACCESS_TOKEN", "DAGSTER_PG_PASSWORD"} & set(env)
