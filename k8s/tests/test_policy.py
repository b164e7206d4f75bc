"""Every policy rule holds on every rendered variant, and every rule catches a mutation that
breaks what it guards (so a rule that silently checks nothing fails here)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import policy
import pytest
import render
from policy import Context, Manifests

VARIANTS = {v.name: v for v in render.VARIANTS}


def context(variant: render.Variant, routes: frozenset[str]) -> Context:
    return Context(
        routes=routes,
        scope=variant.scope,
        pdb_min_available=variant.pdb_min_available,
        publish=variant.publish,
    )


@pytest.mark.parametrize(
    "variant,rule",
    [(v.name, r) for v in render.VARIANTS for r in policy.rules_for(v.scope, v.publish)],
)
def test_rule_holds(variant: str, rule: str, rendered, routes) -> None:
    violations = policy.check(rule, Manifests(rendered[variant]), context(VARIANTS[variant], routes))
    assert violations == []


# ---------------------------------------------------------------------------------------------
# Mutations: (id, variant, rule expected to fire, function mutating the documents in place)


def find(docs: list[dict], kind: str, name: str) -> dict:
    for d in docs:
        if d.get("kind") == kind and d["metadata"]["name"] == name:
            return d
    raise LookupError(f"{kind}/{name} not in the rendered documents")


def deployment(docs: list[dict]) -> dict:
    return find(docs, "Deployment", "quarry-server")


def pod(docs: list[dict]) -> dict:
    return deployment(docs)["spec"]["template"]["spec"]


def server(docs: list[dict]) -> dict:
    return pod(docs)["containers"][0]


def etl_pod(docs: list[dict]) -> dict:
    for d in docs:
        if d["kind"] == "Job":
            return d["spec"]["template"]["spec"]
        if d["kind"] == "CronJob":
            return d["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    raise LookupError("no ETL workload")


def etl(docs: list[dict]) -> dict:
    return etl_pod(docs)["containers"][0]


def hpa(docs: list[dict]) -> dict:
    return find(docs, "HorizontalPodAutoscaler", "quarry-server")


def pdb(docs: list[dict]) -> dict:
    return find(docs, "PodDisruptionBudget", "quarry-server")


def setenv(container: dict, name: str, value: str | None) -> None:
    env = [e for e in container.get("env", []) if e["name"] != name]
    if value is not None:
        env.append({"name": name, "value": value})
    container["env"] = env


def mount(container: dict, path: str) -> dict:
    return next(m for m in container["volumeMounts"] if m["mountPath"] == path)


def volume(pod_spec: dict, name: str) -> dict:
    return next(v for v in pod_spec["volumes"] if v["name"] == name)


def both(container: dict, key: str, value: str) -> None:
    container["resources"]["requests"][key] = value
    container["resources"]["limits"][key] = value


def remove(docs: list[dict], kind: str, name: str) -> None:
    docs.remove(find(docs, kind, name))


def configmap(docs: list[dict]) -> dict:
    return next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("quarry-object-store"))


def cache_volume(docs: list[dict]) -> dict:
    return volume(pod(docs), "cache")


def add_claim_volume(docs: list[dict]) -> None:
    pod(docs)["volumes"].append({"name": "old", "persistentVolumeClaim": {"claimName": "x", "readOnly": True}})
    server(docs)["volumeMounts"].append({"name": "old", "mountPath": "/old", "readOnly": True})


Mutation = tuple[str, str, str, Callable[[list[dict]], Any]]

MUTATIONS: list[Mutation] = [
    ("no-ingress", "small", "fleet_present", lambda d: remove(d, "Ingress", "quarry-server")),
    ("no-cronjob", "large", "fleet_present", lambda d: remove(d, "CronJob", "quarry-etl")),
    ("server-no-cpu-limit", "small", "guaranteed_qos", lambda d: server(d)["resources"]["limits"].pop("cpu")),
    (
        "server-memory-request-below-limit",
        "large",
        "guaranteed_qos",
        lambda d: server(d)["resources"]["requests"].update(memory="512Mi"),
    ),
    (
        "etl-cpu-request-below-limit",
        "etl-job",
        "guaranteed_qos",
        lambda d: etl(d)["resources"]["requests"].update(cpu="1"),
    ),
    (
        "init-container-without-resources",
        "small",
        "guaranteed_qos",
        lambda d: pod(d).setdefault("initContainers", []).append({"name": "wait", "image": "quarry"}),
    ),
    (
        "ephemeral-storage-only-requested",
        "etl-job",
        "guaranteed_qos",
        lambda d: etl(d)["resources"]["limits"].pop("ephemeral-storage"),
    ),
    ("server-two-cores", "small", "server_one_core_one_gib", lambda d: both(server(d), "cpu", "2")),
    ("server-half-core", "large", "server_one_core_one_gib", lambda d: both(server(d), "cpu", "500m")),
    ("server-2gib", "small", "server_one_core_one_gib", lambda d: both(server(d), "memory", "2Gi")),
    (
        "server-two-threads",
        "small",
        "server_one_core_one_gib",
        lambda d: setenv(server(d), "QUARRY_THREADS", "2"),
    ),
    ("replicas-set", "small", "no_replicas_field", lambda d: deployment(d)["spec"].update(replicas=3)),
    (
        "rollout-drops-pods",
        "large",
        "rolling_update_keeps_capacity",
        lambda d: deployment(d)["spec"]["strategy"]["rollingUpdate"].update(maxUnavailable=1),
    ),
    (
        "readiness-on-livez",
        "small",
        "probes",
        lambda d: server(d)["readinessProbe"]["httpGet"].update(path="/livez"),
    ),
    (
        "liveness-on-healthz",
        "small",
        "probes",
        lambda d: server(d)["livenessProbe"]["httpGet"].update(path="/healthz"),
    ),
    ("no-startup-probe", "large", "probes", lambda d: server(d).pop("startupProbe")),
    (
        "readiness-every-30s",
        "small",
        "probes",
        lambda d: server(d)["readinessProbe"].update(periodSeconds=30),
    ),
    (
        "probe-wrong-port",
        "small",
        "probes",
        lambda d: server(d)["livenessProbe"]["httpGet"].update(port=9090),
    ),
    (
        "readiness-initial-delay",
        "small",
        "probes",
        lambda d: server(d)["readinessProbe"].update(initialDelaySeconds=60),
    ),
    ("listen-elsewhere", "small", "probes", lambda d: setenv(server(d), "QUARRY_LISTEN", "0.0.0.0:9000")),
    (
        "probe-path-not-a-route",
        "small",
        "probe_paths_are_routes",
        lambda d: server(d)["livenessProbe"]["httpGet"].update(path="/alive"),
    ),
    (
        "scrape-path-not-a-route",
        "large",
        "probe_paths_are_routes",
        lambda d: deployment(d)["spec"]["template"]["metadata"]["annotations"].update(
            {"prometheus.io/path": "/prom"}
        ),
    ),
    (
        "startup-budget-too-small",
        "small",
        "startup_budget",
        lambda d: server(d)["startupProbe"].update(failureThreshold=5),
    ),
    (
        "dataset-grew",
        "large",
        "startup_budget",
        lambda d: deployment(d)["metadata"]["annotations"].update({"quarry/largest-dataset-gib": "256"}),
    ),
    (
        "no-sizing-annotations",
        "small",
        "startup_budget",
        lambda d: deployment(d)["metadata"].pop("annotations"),
    ),
    (
        "progress-deadline-below-budget",
        "large",
        "startup_budget",
        lambda d: deployment(d)["spec"].update(progressDeadlineSeconds=300),
    ),
    (
        "grace-too-short",
        "small",
        "graceful_shutdown",
        lambda d: pod(d).update(terminationGracePeriodSeconds=30),
    ),
    ("grace-default", "small", "graceful_shutdown", lambda d: pod(d).pop("terminationGracePeriodSeconds")),
    ("no-prestop", "large", "graceful_shutdown", lambda d: server(d).pop("lifecycle")),
    (
        "prestop-too-long",
        "small",
        "graceful_shutdown",
        lambda d: server(d)["lifecycle"]["preStop"]["sleep"].update(seconds=30),
    ),
    (
        "shutdown-timeout-raised",
        "small",
        "graceful_shutdown",
        lambda d: setenv(server(d), "QUARRY_SHUTDOWN_TIMEOUT", "60s"),
    ),
    (
        "shell-wrapper",
        "small",
        "pid1_is_the_binary",
        lambda d: server(d).update(command=["/bin/sh", "-c", "exec quarry-server"]),
    ),
    (
        "etl-through-shell",
        "etl-job",
        "pid1_is_the_binary",
        lambda d: etl(d).update(command=["bash", "-c", "quarry-etl build /input/*.csv"], args=[]),
    ),
    (
        "may-run-as-root",
        "small",
        "security_context",
        lambda d: (
            pod(d)["securityContext"].update(runAsNonRoot=False),
            server(d)["securityContext"].pop("runAsNonRoot"),
        ),
    ),
    (
        "seccomp-unconfined",
        "large",
        "security_context",
        lambda d: pod(d)["securityContext"].update(seccompProfile={"type": "Unconfined"}),
    ),
    (
        "writable-root",
        "small",
        "security_context",
        lambda d: server(d)["securityContext"].pop("readOnlyRootFilesystem"),
    ),
    (
        "adds-capability",
        "small",
        "security_context",
        lambda d: server(d)["securityContext"]["capabilities"].update(add=["NET_ADMIN"]),
    ),
    (
        "etl-escalation",
        "etl-job",
        "security_context",
        lambda d: etl(d)["securityContext"].update(allowPrivilegeEscalation=True),
    ),
    (
        "token-mounted",
        "small",
        "security_context",
        lambda d: pod(d).update(automountServiceAccountToken=True),
    ),
    ("root-user", "kind", "security_context", lambda d: pod(d)["securityContext"].update(runAsUser=0)),
    (
        "data-mount-writable",
        "small",
        "server_data_read_only",
        lambda d: mount(server(d), "/data").pop("readOnly"),
    ),
    (
        "data-source-writable",
        "large",
        "server_data_read_only",
        lambda d: volume(pod(d), "data")["persistentVolumeClaim"].pop("readOnly"),
    ),
    (
        "data-claim-rwx",
        "small",
        "server_data_read_only",
        lambda d: find(d, "PersistentVolumeClaim", "quarry-data")["spec"].update(
            accessModes=["ReadWriteMany"]
        ),
    ),
    (
        "server-mounts-writer-claim",
        "small",
        "server_data_read_only",
        lambda d: volume(pod(d), "data")["persistentVolumeClaim"].update(claimName="quarry-data-writer"),
    ),
    (
        "data-dir-not-mounted",
        "small",
        "server_data_read_only",
        lambda d: setenv(server(d), "QUARRY_DATA_DIR", "/srv/data"),
    ),
    ("etl-one-core", "etl-job", "etl_job", lambda d: both(etl(d), "cpu", "1")),
    ("etl-fractional-cores", "large", "etl_job", lambda d: both(etl(d), "cpu", "1500m")),
    ("etl-output-read-only", "small", "etl_job", lambda d: mount(etl(d), "/data").update(readOnly=True)),
    ("etl-input-writable", "etl-job", "etl_job", lambda d: mount(etl(d), "/input").pop("readOnly")),
    (
        "etl-writes-server-claim",
        "small",
        "etl_job",
        lambda d: volume(etl_pod(d), "data")["persistentVolumeClaim"].update(claimName="quarry-data"),
    ),
    ("etl-threads-mismatch", "etl-job", "etl_job", lambda d: setenv(etl(d), "QUARRY_THREADS", "8")),
    (
        "etl-output-elsewhere",
        "etl-job",
        "etl_job",
        lambda d: etl(d)["args"].__setitem__(etl(d)["args"].index("--out") + 1, "/scratch"),
    ),
    (
        "etl-concurrent-runs",
        "small",
        "etl_job",
        lambda d: find(d, "CronJob", "quarry-etl")["spec"].update(concurrencyPolicy="Allow"),
    ),
    ("etl-other-image", "small", "same_image", lambda d: etl(d).update(image="quarry:other")),
    ("pdb-wrong-for-overlay", "large", "pdb", lambda d: pdb(d)["spec"].update(minAvailable=1)),
    ("pdb-max-unavailable", "small", "pdb", lambda d: pdb(d)["spec"].update(maxUnavailable=1)),
    ("pdb-stuck-pods-block", "small", "pdb", lambda d: pdb(d)["spec"].pop("unhealthyPodEvictionPolicy")),
    (
        "pdb-selects-nothing",
        "small",
        "pdb",
        lambda d: pdb(d)["spec"]["selector"]["matchLabels"].update({"app.kubernetes.io/component": "etl"}),
    ),
    # Object-store publishing (overlays/object-store).
    ("os-no-configmap", "object-store", "server_cache", lambda d: remove(d, "ConfigMap", configmap(d)["metadata"]["name"])),
    ("os-source-not-a-url", "object-store", "server_cache", lambda d: configmap(d)["data"].update(source="/data")),
    ("os-data-dir-too", "object-store", "server_cache", lambda d: setenv(server(d), "QUARRY_DATA_DIR", "/data")),
    ("os-cache-on-pvc", "object-store", "server_cache", add_claim_volume),
    (
        "os-cache-not-mounted",
        "object-store",
        "server_cache",
        lambda d: setenv(server(d), "QUARRY_CACHE_DIR", "/var/lib/quarry"),
    ),
    ("os-cache-in-memory", "object-store", "server_cache", lambda d: cache_volume(d)["emptyDir"].update(medium="Memory")),
    ("os-cache-unbounded", "object-store", "server_cache", lambda d: cache_volume(d)["emptyDir"].pop("sizeLimit")),
    ("os-cache-max-unset", "object-store", "server_cache", lambda d: setenv(server(d), "QUARRY_CACHE_MAX_BYTES", None)),
    (
        "os-cache-max-over-size-limit",
        "object-store",
        "server_cache",
        lambda d: setenv(server(d), "QUARRY_CACHE_MAX_BYTES", "32GiB"),
    ),
    (
        "os-cache-one-version",
        "object-store",
        "server_cache",
        lambda d: setenv(server(d), "QUARRY_CACHE_MAX_BYTES", "8GiB"),
    ),
    (
        "os-datasets-grew",
        "object-store",
        "server_cache",
        lambda d: deployment(d)["metadata"]["annotations"].update({"quarry/datasets-total-gib": "12"}),
    ),
    ("os-ephemeral-below-cache", "object-store", "server_cache", lambda d: both(server(d), "ephemeral-storage", "8Gi")),
    ("os-cache-read-only", "object-store", "server_cache", lambda d: mount(server(d), "/var/cache/quarry").update(readOnly=True)),
    ("os-auth-writable", "object-store", "server_cache", lambda d: mount(server(d), "/etc/quarry/auth").pop("readOnly")),
    (
        "os-slower-download",
        "object-store",
        "startup_budget",
        lambda d: deployment(d)["metadata"]["annotations"].update({"quarry/download-mib-per-second": "50"}),
    ),
    (
        "os-no-download-rate",
        "object-store",
        "startup_budget",
        lambda d: deployment(d)["metadata"]["annotations"].pop("quarry/download-mib-per-second"),
    ),
    (
        "os-budget-for-verify-only",
        "object-store",
        "startup_budget",
        lambda d: server(d)["startupProbe"].update(failureThreshold=14),
    ),
    (
        "os-claim-left",
        "object-store",
        "object_store_publish",
        lambda d: d.append(
            {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "quarry-data"}, "spec": {}}
        ),
    ),
    (
        "os-etl-publishes-elsewhere",
        "object-store",
        "object_store_publish",
        lambda d: etl(d).update(args=[*etl(d)["args"], "--out", "s3://other/prefix"]),
    ),
    (
        "os-etl-publishes-to-volume",
        "object-store",
        "object_store_publish",
        lambda d: etl(d).update(args=[*etl(d)["args"], "--out", "/data"]),
    ),
    (
        "os-etl-as-server-account",
        "object-store",
        "object_store_publish",
        lambda d: etl_pod(d).update(serviceAccountName="quarry"),
    ),
    (
        "os-server-no-egress",
        "object-store",
        "object_store_publish",
        lambda d: find(d, "NetworkPolicy", "quarry-server")["spec"].update(egress=[]),
    ),
    (
        "os-etl-dns-only",
        "object-store",
        "object_store_publish",
        lambda d: find(d, "NetworkPolicy", "quarry-etl")["spec"]["egress"].pop(1),
    ),
    ("hpa-one-replica", "small", "hpa", lambda d: hpa(d)["spec"].update(minReplicas=1)),
    ("hpa-max-below-min", "large", "hpa", lambda d: hpa(d)["spec"].update(maxReplicas=3)),
    (
        "hpa-target-70",
        "small",
        "hpa",
        lambda d: hpa(d)["spec"]["metrics"][0]["resource"]["target"].update(averageUtilization=70),
    ),
    ("hpa-no-cpu", "small+request-rate", "hpa", lambda d: hpa(d)["spec"]["metrics"].pop(0)),
    ("hpa-targets-other", "small", "hpa", lambda d: hpa(d)["spec"]["scaleTargetRef"].update(name="other")),
    ("hpa-no-behavior", "large", "hpa", lambda d: hpa(d)["spec"].pop("behavior")),
    (
        "hpa-jumpy-scale-down",
        "small",
        "hpa",
        lambda d: hpa(d)["spec"]["behavior"]["scaleDown"].update(stabilizationWindowSeconds=0),
    ),
    (
        "hpa-slow-scale-up",
        "small",
        "hpa",
        lambda d: hpa(d)["spec"]["behavior"]["scaleUp"].update(stabilizationWindowSeconds=120),
    ),
    (
        "deployment-selector-mismatch",
        "small",
        "selectors_match",
        lambda d: deployment(d)["spec"]["template"]["metadata"]["labels"].update(
            {"app.kubernetes.io/component": "web"}
        ),
    ),
    (
        "service-selects-etl-too",
        "small",
        "selectors_match",
        lambda d: find(d, "Service", "quarry-server")["spec"]["selector"].pop("app.kubernetes.io/component"),
    ),
    (
        "service-selects-nothing",
        "large",
        "selectors_match",
        lambda d: find(d, "Service", "quarry-server")["spec"].update(selector={"app": "quarry"}),
    ),
    (
        "netpol-selects-nothing",
        "small",
        "selectors_match",
        lambda d: find(d, "NetworkPolicy", "quarry-server")["spec"]["podSelector"]["matchLabels"].update(
            tier="x"
        ),
    ),
    (
        "spread-selector-mismatch",
        "small",
        "selectors_match",
        lambda d: pod(d)["topologySpreadConstraints"][0]["labelSelector"]["matchLabels"].update(tier="x"),
    ),
    (
        "pdb-selector-expression-fails",
        "small",
        "selectors_match",
        lambda d: pdb(d)["spec"]["selector"].update(
            matchExpressions=[
                {"key": "app.kubernetes.io/component", "operator": "NotIn", "values": ["server"]}
            ]
        ),
    ),
    ("no-zone-spread", "small", "topology_spread", lambda d: pod(d)["topologySpreadConstraints"].pop(1)),
    (
        "sticky-service",
        "small",
        "service_and_ingress",
        lambda d: find(d, "Service", "quarry-server")["spec"].update(sessionAffinity="ClientIP"),
    ),
    (
        "nodeport-service",
        "large",
        "service_and_ingress",
        lambda d: find(d, "Service", "quarry-server")["spec"].update(type="NodePort"),
    ),
    (
        "service-target-port-unknown",
        "small",
        "service_and_ingress",
        lambda d: find(d, "Service", "quarry-server")["spec"]["ports"][0].update(targetPort="web"),
    ),
    (
        "ingress-exposes-metrics",
        "small",
        "service_and_ingress",
        lambda d: find(d, "Ingress", "quarry-server")["spec"]["rules"][0]["http"]["paths"][0].update(
            path="/"
        ),
    ),
    (
        "ingress-sticky-cookie",
        "small",
        "service_and_ingress",
        lambda d: find(d, "Ingress", "quarry-server")["metadata"].update(
            annotations={"nginx.ingress.kubernetes.io/affinity": "cookie"}
        ),
    ),
    (
        "ingress-path-to-nowhere",
        "large",
        "service_and_ingress",
        lambda d: find(d, "Ingress", "quarry-server")["spec"]["rules"][0]["http"]["paths"][0].update(
            path="/v2"
        ),
    ),
    (
        "ingress-wrong-service-port",
        "small",
        "service_and_ingress",
        lambda d: find(d, "Ingress", "quarry-server")["spec"]["rules"][0]["http"]["paths"][0]["backend"][
            "service"
        ].update(port={"name": "grpc"}),
    ),
    (
        "netpol-open-to-all",
        "small",
        "network_policy",
        lambda d: find(d, "NetworkPolicy", "quarry-server")["spec"]["ingress"][0].pop("from"),
    ),
    (
        "netpol-whole-namespace",
        "large",
        "network_policy",
        lambda d: find(d, "NetworkPolicy", "quarry-server")["spec"]["ingress"][0]["from"][0].pop(
            "podSelector"
        ),
    ),
    (
        "netpol-extra-port",
        "small",
        "network_policy",
        lambda d: find(d, "NetworkPolicy", "quarry-server")["spec"]["ingress"][0]["ports"].append(
            {"port": 22}
        ),
    ),
    ("netpol-missing", "small", "network_policy", lambda d: remove(d, "NetworkPolicy", "quarry-server")),
    (
        "netpol-admin-to-ingress-controller",
        "small",
        "network_policy",
        lambda d: find(d, "NetworkPolicy", "quarry-server")["spec"]["ingress"][0]["ports"].append(
            {"port": "admin", "protocol": "TCP"}
        ),
    ),
    (
        "scrape-on-api-port",
        "small",
        "admin_port",
        lambda d: deployment(d)["spec"]["template"]["metadata"]["annotations"].update(
            {"prometheus.io/port": "8080"}
        ),
    ),
    (
        "service-exposes-admin",
        "large",
        "admin_port",
        lambda d: find(d, "Service", "quarry-server")["spec"]["ports"].append(
            {"name": "admin", "port": 9090, "targetPort": "admin"}
        ),
    ),
    (
        "admin-listen-elsewhere",
        "small",
        "admin_port",
        lambda d: setenv(server(d), "QUARRY_ADMIN_LISTEN", "0.0.0.0:9999"),
    ),
    ("auth-off", "small", "auth_from_secret", lambda d: setenv(server(d), "QUARRY_AUTH_TOKENS", None)),
    (
        "auth-file-on-subpath",
        "large",
        "auth_from_secret",
        lambda d: mount(server(d), "/etc/quarry/auth").update(subPath="tokens.toml"),
    ),
    (
        "auth-file-from-emptydir",
        "small",
        "auth_from_secret",
        lambda d: volume(pod(d), "auth").pop("secret") and volume(pod(d), "auth").update(emptyDir={}),
    ),
    (
        "auth-file-outside-mounts",
        "small",
        "auth_from_secret",
        lambda d: setenv(server(d), "QUARRY_JWT_PUBLIC_KEYS", "/keys/jwks.json"),
    ),
    (
        "io-uring-probed",
        "small",
        "server_uses_epoll",
        lambda d: setenv(server(d), "MONOIO_FORCE_LEGACY_DRIVER", None),
    ),
]


@pytest.mark.parametrize("name,variant,rule,mutate", MUTATIONS, ids=[m[0] for m in MUTATIONS])
def test_rule_catches_mutation(name: str, variant: str, rule: str, mutate, rendered, routes) -> None:
    docs = copy.deepcopy(rendered[variant])
    ctx = context(VARIANTS[variant], routes)
    assert policy.check(rule, Manifests(docs), ctx) == [], "the unmutated variant must pass first"
    mutate(docs)
    violations = policy.check(rule, Manifests(docs), ctx)
    assert violations, f"rule {rule} missed mutation {name}"


def test_every_rule_has_a_mutation() -> None:
    assert set(policy.RULES) == {m[2] for m in MUTATIONS}


def test_probe_path_missing_from_route_table_is_caught(rendered, routes) -> None:
    ctx = context(VARIANTS["small"], routes - {"/livez"})
    violations = policy.check("probe_paths_are_routes", Manifests(rendered["small"]), ctx)
    assert any("/livez" in v for v in violations)


def test_pdb_that_blocks_drains_at_minimum_scale_is_caught(rendered, routes) -> None:
    # The overlay's expectation is met (2 == 2): only the drain arithmetic can object.
    docs = copy.deepcopy(rendered["small"])
    pdb(docs)["spec"]["minAvailable"] = 2
    ctx = Context(routes=routes, scope="fleet", pdb_min_available=2)
    violations = policy.check("pdb", Manifests(docs), ctx)
    assert violations and all("never evict" in v for v in violations)


# ---------------------------------------------------------------------------------------------
# The helpers the rules stand on, against values worked out by hand


@pytest.mark.parametrize(
    "text,value",
    [
        ("1", Fraction(1)),
        ("1000m", Fraction(1)),
        ("250m", Fraction(1, 4)),
        ("0.5", Fraction(1, 2)),
        ("1024Mi", Fraction(1073741824)),
        ("1Gi", Fraction(1073741824)),
        ("1G", Fraction(10**9)),
        ("1e3", Fraction(1000)),
        (2, Fraction(2)),
    ],
)
def test_parse_quantity(text, value) -> None:
    assert policy.parse_quantity(text) == value


@pytest.mark.parametrize("text", ["", "1 Gi", "one", "1Gb", "--1"])
def test_parse_quantity_rejects(text) -> None:
    with pytest.raises(ValueError):
        policy.parse_quantity(text)


@pytest.mark.parametrize("text,seconds", [("250ms", 0.25), ("5s", 5.0), ("7", 7.0), ("2m", 120.0)])
def test_parse_duration(text, seconds) -> None:
    assert policy.parse_duration_s(text) == seconds


def test_selector_semantics() -> None:
    labels = {"app": "quarry", "tier": "server"}
    assert policy.selector_matches({"matchLabels": {"app": "quarry"}}, labels)
    assert not policy.selector_matches({"matchLabels": {"app": "other"}}, labels)
    assert policy.selector_matches(
        {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["server", "etl"]}]}, labels
    )
    assert not policy.selector_matches(
        {"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["server"]}]}, labels
    )
    assert policy.selector_matches(
        {"matchExpressions": [{"key": "zone", "operator": "DoesNotExist"}]}, labels
    )
    assert not policy.selector_matches({"matchExpressions": [{"key": "zone", "operator": "Exists"}]}, labels)
    # Empty selectors select everything in Kubernetes; Quarry requires every selector to name pods.
    assert not policy.selector_matches({}, labels)
    assert not policy.selector_matches(None, labels)


@pytest.mark.parametrize(
    "value,total,keep", [(1, 2, 1), ("50%", 4, 2), ("50%", 3, 2), ("50%", 2, 1), ("100%", 2, 2)]
)
def test_pdb_min_available_rounds_up(value, total, keep) -> None:
    assert policy.percent_or_int(value, total, round_up=True) == keep


@pytest.mark.parametrize(
    "text,value", [("123", 123), ("64k", 65536), ("512M", 512 * 2**20), ("16GiB", 16 * 2**30), ("2g", 2 * 2**30)]
)
def test_parse_server_size(text, value) -> None:
    assert policy.parse_server_size(text) == value


@pytest.mark.parametrize("text", ["", "16Gi", "1.5G", "-1", "16 TiB"])
def test_parse_server_size_rejects(text) -> None:
    with pytest.raises(ValueError):
        policy.parse_server_size(text)
