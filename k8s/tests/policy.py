"""Quarry's operating contract for its Kubernetes manifests, as checks on rendered YAML.

Each rule is a function `(Manifests, Context) -> list[str]` returning human-readable violations
(empty: the rule holds). Rules read only the rendered documents and the server's route table, so
they judge what `kubectl apply` would send, not what the kustomize sources look like.
k8s/README.md explains why each rule exists; test_policy.py runs every rule on every variant and
mutates the manifests to prove each rule can fail.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import PurePosixPath
from typing import Any

SERVER_DEPLOYMENT = "quarry-server"
SERVER_BINARY = "quarry-server"
ETL_BINARY = "quarry-etl"
SERVER_CPU = Fraction(1)
SERVER_MEMORY = 1024 * 2**20
HTTP_PORT = 8080
# The admin listener (QUARRY_ADMIN_LISTEN): /metrics and probes, never behind the Service.
ADMIN_PORT = 9090
ADMIN_ROUTES = ("/metrics", "/livez", "/healthz")
# Credentials files (server/src/auth): each must come from a Secret mounted read-only.
AUTH_FILE_VARS = ("QUARRY_AUTH_TOKENS", "QUARRY_JWT_SECRET_FILE", "QUARRY_JWT_PUBLIC_KEYS")
HPA_CPU_TARGET = 80
READINESS_PERIOD_S = 10
PRESTOP_MIN_S, PRESTOP_MAX_S = 5, 10
GRACE_MARGIN_S = 5
# Server defaults (server/src/config.rs) used when the manifest leaves the variable unset.
DEFAULT_DRAIN_DELAY_S = 5.0
DEFAULT_SHUTDOWN_TIMEOUT_S = 20.0
DEFAULT_PROGRESS_DEADLINE_S = 600
# Startup budget >= 1.5 x largest dataset / verify rate + 10 s (deployment.yaml comment).
STARTUP_SAFETY_FACTOR = 1.5
STARTUP_FIXED_S = 10
SIZING_DATASET_GIB = "quarry/largest-dataset-gib"
SIZING_VERIFY_RATE = "quarry/verify-mib-per-second"
# Object-store publishing (overlays/object-store): every dataset is downloaded, then verified.
SIZING_TOTAL_GIB = "quarry/datasets-total-gib"
SIZING_DOWNLOAD_RATE = "quarry/download-mib-per-second"
# A new version is fetched beside the old one before the swap: the cache holds both.
CACHE_VERSIONS = 2
OBJECT_SCHEMES = ("s3", "s3a", "gs", "az", "abfs", "abfss", "http", "https")
OBJECT_STORE_PORT = 443
SCALE_UP_MAX_WINDOW_S = 30
SCALE_DOWN_MIN_WINDOW_S = 120
INTERNAL_ROUTES = ("/metrics", "/healthz", "/livez")
SHELLS = {"sh", "bash", "ash", "dash", "zsh", "busybox"}
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Pod")

Doc = dict[str, Any]


# ---------------------------------------------------------------------------------------------
# Quantities, durations, selectors


_QUANTITY = re.compile(r"^([+-]?[0-9.]+)([eE][+-]?[0-9]+|m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
_SUFFIX = {
    None: Fraction(1),
    "m": Fraction(1, 1000),
    "k": Fraction(10**3),
    "M": Fraction(10**6),
    "G": Fraction(10**9),
    "T": Fraction(10**12),
    "P": Fraction(10**15),
    "E": Fraction(10**18),
    "Ki": Fraction(2**10),
    "Mi": Fraction(2**20),
    "Gi": Fraction(2**30),
    "Ti": Fraction(2**40),
    "Pi": Fraction(2**50),
    "Ei": Fraction(2**60),
}


def parse_quantity(value: Any) -> Fraction:
    """Kubernetes resource quantity ("1", "1000m", "1Gi", "1e3", 2) as an exact number."""
    if isinstance(value, bool):
        raise ValueError(f"not a quantity: {value!r}")
    if isinstance(value, (int, float)):
        return Fraction(value)
    match = _QUANTITY.match(str(value).strip())
    if not match:
        raise ValueError(f"not a quantity: {value!r}")
    number, suffix = match.groups()
    base = Fraction(number)
    if suffix and suffix[0] in "eE":
        return base * Fraction(10) ** int(suffix[1:])
    return base * _SUFFIX[suffix]


def parse_duration_s(value: str) -> float:
    """The server's duration syntax (server/src/config.rs): 250ms, 5s, 2m, 1h or bare seconds."""
    match = re.fullmatch(r"\s*([0-9.]+)(ms|s|m|h)?\s*", value)
    if not match:
        raise ValueError(f"not a duration: {value!r}")
    number, unit = float(match.group(1)), match.group(2) or "s"
    return number * {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}[unit]


def parse_server_size(value: str) -> int:
    """The server's size syntax (server/src/memory.rs parse_size): 123, 64k, 512M, 2G, 1GiB,
    binary units."""
    match = re.fullmatch(r"\s*([0-9]+)\s*(b|k|kb|kib|m|mb|mib|g|gb|gib)?\s*", value.lower())
    if not match:
        raise ValueError(f"not a size: {value!r}")
    unit = {"b": 1, "k": 2**10, "m": 2**20, "g": 2**30}[(match.group(2) or "b")[0]]
    return int(match.group(1)) * unit


def selector_matches(selector: Doc | None, labels: dict[str, str]) -> bool:
    """A LabelSelector (matchLabels + matchExpressions) against a label set. An empty or missing
    selector matches nothing here: every selector in Quarry must name its pods."""
    if not selector:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return bool(selector.get("matchLabels") or selector.get("matchExpressions"))


def percent_or_int(value: int | str, total: int, round_up: bool) -> int:
    """IntOrString resolved against a total the way the PDB controller does (percent rounds up
    for minAvailable)."""
    if isinstance(value, str) and value.endswith("%"):
        exact = Fraction(int(value[:-1]) * total, 100)
        return math.ceil(exact) if round_up else math.floor(exact)
    return int(value)


# ---------------------------------------------------------------------------------------------
# Access to the rendered documents


@dataclass(frozen=True)
class PodTemplate:
    """A pod template found in a workload, with where it came from."""

    owner: str  # "Deployment/quarry-server"
    kind: str
    labels: dict[str, str]
    spec: Doc
    role: str  # "server", "etl" or "other"

    def containers(self, init: bool = True) -> Iterator[tuple[str, Doc]]:
        for c in self.spec.get("containers") or []:
            yield f"{self.owner} container {c.get('name')}", c
        if init:
            for c in self.spec.get("initContainers") or []:
                yield f"{self.owner} initContainer {c.get('name')}", c


class Manifests:
    def __init__(self, docs: list[Doc]):
        self.docs = [d for d in docs if d]

    def of_kind(self, kind: str) -> list[Doc]:
        return [d for d in self.docs if d.get("kind") == kind]

    def get(self, kind: str, name: str) -> Doc | None:
        for d in self.of_kind(kind):
            if d.get("metadata", {}).get("name") == name:
                return d
        return None

    def pod_templates(self) -> list[PodTemplate]:
        out = []
        for d in self.docs:
            kind = d.get("kind")
            if kind not in WORKLOAD_KINDS:
                continue
            owner = f"{kind}/{d.get('metadata', {}).get('name')}"
            if kind == "Pod":
                template = d
            elif kind == "CronJob":
                template = d.get("spec", {}).get("jobTemplate", {}).get("spec", {}).get("template", {})
            else:
                template = d.get("spec", {}).get("template", {})
            spec = template.get("spec") or {}
            labels = template.get("metadata", {}).get("labels") or {}
            out.append(PodTemplate(owner, kind, labels, spec, _role(spec)))
        return out

    def server_pods(self) -> list[PodTemplate]:
        return [p for p in self.pod_templates() if p.role == "server"]

    def etl_pods(self) -> list[PodTemplate]:
        return [p for p in self.pod_templates() if p.role == "etl"]

    def server_deployment(self) -> Doc | None:
        return self.get("Deployment", SERVER_DEPLOYMENT)


def _binary(container: Doc) -> str | None:
    command = container.get("command") or []
    if command:
        return PurePosixPath(str(command[0])).name
    # No command: the image's ENTRYPOINT (Dockerfile: quarry-server).
    return SERVER_BINARY


def _role(spec: Doc) -> str:
    binaries = {_binary(c) for c in spec.get("containers") or []}
    if ETL_BINARY in binaries:
        return "etl"
    if SERVER_BINARY in binaries:
        return "server"
    return "other"


def server_container(pod: PodTemplate) -> Doc | None:
    for c in pod.spec.get("containers") or []:
        if _binary(c) == SERVER_BINARY:
            return c
    return None


def env_value(container: Doc, name: str) -> str | None:
    for e in container.get("env") or []:
        if e.get("name") == name and "value" in e:
            return str(e["value"])
    return None


def env_entry(container: Doc, name: str) -> Doc | None:
    for e in container.get("env") or []:
        if e.get("name") == name:
            return e
    return None


def resolve_port(container: Doc, port: Any) -> int | None:
    if isinstance(port, int):
        return port
    for p in container.get("ports") or []:
        if p.get("name") == port:
            return p.get("containerPort")
    return None


def prestop_sleep_s(container: Doc) -> float | None:
    """Seconds of the preStop sleep: the native `sleep` action or an exec of `sleep N`."""
    pre = (container.get("lifecycle") or {}).get("preStop") or {}
    if "sleep" in pre:
        return float(pre["sleep"].get("seconds", 0))
    command = (pre.get("exec") or {}).get("command") or []
    if len(command) == 2 and PurePosixPath(command[0]).name == "sleep":
        return parse_duration_s(str(command[1]))
    return None


# ---------------------------------------------------------------------------------------------
# Rules


@dataclass(frozen=True)
class Context:
    routes: frozenset[str]
    scope: str = "fleet"  # "fleet" or "etl" (see render.Variant)
    pdb_min_available: int | str | None = None
    publish: str = "volume"  # "volume" or "object-store" (see render.Variant)


Rule = Callable[[Manifests, Context], list[str]]
RULES: dict[str, tuple[str, Rule]] = {}


def rule(scope: str) -> Callable[[Rule], Rule]:
    """Registers a rule; scope "fleet" runs on overlays, "any" on every variant, "volume" and
    "object-store" on the overlays that publish that way."""

    def register(fn: Rule) -> Rule:
        RULES[fn.__name__.removeprefix("rule_")] = (scope, fn)
        return fn

    return register


def rules_for(scope: str, publish: str = "volume") -> list[str]:
    return [
        name
        for name, (s, _) in RULES.items()
        if s == "any" or s == scope or (scope == "fleet" and s == publish)
    ]


def env_resolved(m: Manifests, container: Doc, name: str) -> str | None:
    """An env variable's value: literal, or from a configMapKeyRef to a ConfigMap in the
    manifests."""
    entry = env_entry(container, name)
    if entry is None:
        return None
    if "value" in entry:
        return str(entry["value"])
    ref = (entry.get("valueFrom") or {}).get("configMapKeyRef") or {}
    cm = m.get("ConfigMap", ref.get("name"))
    if cm is None:
        return None
    value = (cm.get("data") or {}).get(ref.get("key"))
    return None if value is None else str(value)


def etl_out(m: Manifests, container: Doc) -> str | None:
    """The ETL's --out: the flag, else QUARRY_OUT."""
    args = [str(a) for a in container.get("args") or []]
    if "--out" in args[:-1]:
        return args[args.index("--out") + 1]
    return env_resolved(m, container, "QUARRY_OUT")


def is_url(value: str) -> bool:
    return re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", value) is not None


def check(name: str, manifests: Manifests, ctx: Context) -> list[str]:
    return RULES[name][1](manifests, ctx)


@rule("fleet")
def rule_fleet_present(m: Manifests, ctx: Context) -> list[str]:
    """The rules below are vacuous without these objects."""
    wanted = [
        ("Deployment", SERVER_DEPLOYMENT),
        ("Service", "quarry-server"),
        ("Ingress", "quarry-server"),
        ("NetworkPolicy", "quarry-server"),
        ("PodDisruptionBudget", "quarry-server"),
        ("HorizontalPodAutoscaler", "quarry-server"),
        ("CronJob", "quarry-etl"),
    ]
    if ctx.publish == "volume":
        wanted.append(("PersistentVolumeClaim", "quarry-data"))
    out = [f"missing {k}/{n}" for k, n in wanted if m.get(k, n) is None]
    if len(m.server_pods()) != 1:
        out.append(f"expected one server pod template, found {len(m.server_pods())}")
    return out


@rule("any")
def rule_guaranteed_qos(m: Manifests, ctx: Context) -> list[str]:
    """Every container, init containers included, has cpu and memory requests == limits."""
    out = []
    templates = m.pod_templates()
    if not templates:
        out.append("no pod templates found")
    for pod in templates:
        for where, c in pod.containers(init=True):
            res = c.get("resources") or {}
            requests, limits = res.get("requests") or {}, res.get("limits") or {}
            for key in ("cpu", "memory"):
                if key not in limits:
                    out.append(f"{where}: no {key} limit")
                if key not in requests:
                    out.append(f"{where}: no {key} request")
            for key in sorted(set(requests) | set(limits)):
                if key not in requests or key not in limits:
                    out.append(f"{where}: {key} set only in {'requests' if key in requests else 'limits'}")
                elif parse_quantity(requests[key]) != parse_quantity(limits[key]):
                    out.append(f"{where}: {key} request {requests[key]} != limit {limits[key]}")
    return out


@rule("fleet")
def rule_server_one_core_one_gib(m: Manifests, ctx: Context) -> list[str]:
    out = []
    for pod in m.server_pods():
        for where, c in pod.containers(init=False):
            limits = (c.get("resources") or {}).get("limits") or {}
            if parse_quantity(limits.get("cpu", 0)) != SERVER_CPU:
                out.append(f"{where}: cpu limit {limits.get('cpu')!r}, want exactly 1 core")
            if parse_quantity(limits.get("memory", 0)) != SERVER_MEMORY:
                out.append(f"{where}: memory limit {limits.get('memory')!r}, want 1024Mi")
            threads = env_value(c, "QUARRY_THREADS")
            if threads not in (None, "1"):
                out.append(f"{where}: QUARRY_THREADS={threads}: one loop per one-core pod")
    return out


@rule("fleet")
def rule_no_replicas_field(m: Manifests, ctx: Context) -> list[str]:
    dep = m.server_deployment()
    if dep and "replicas" in (dep.get("spec") or {}):
        return [f"Deployment/{SERVER_DEPLOYMENT} sets replicas: the HPA owns the replica count"]
    return []


@rule("fleet")
def rule_rolling_update_keeps_capacity(m: Manifests, ctx: Context) -> list[str]:
    dep = m.server_deployment() or {}
    strategy = (dep.get("spec") or {}).get("strategy") or {}
    unavailable = (strategy.get("rollingUpdate") or {}).get("maxUnavailable")
    if strategy.get("type") != "RollingUpdate" or unavailable not in (0, "0%"):
        return ["server Deployment: want RollingUpdate with maxUnavailable 0"]
    return []


@rule("fleet")
def rule_probes(m: Manifests, ctx: Context) -> list[str]:
    """startup and readiness GET /healthz, liveness GET /livez, all on the server's port."""
    out = []
    for pod in m.server_pods():
        c = server_container(pod)
        if c is None:
            continue
        where = f"{pod.owner} container {c.get('name')}"
        listen = env_value(c, "QUARRY_LISTEN") or f"0.0.0.0:{HTTP_PORT}"
        listen_port = int(listen.rsplit(":", 1)[-1])
        if listen_port != HTTP_PORT:
            out.append(f"{where}: QUARRY_LISTEN port {listen_port}, want {HTTP_PORT}")
        for probe_name, path in (
            ("startupProbe", "/healthz"),
            ("readinessProbe", "/healthz"),
            ("livenessProbe", "/livez"),
        ):
            probe = c.get(probe_name)
            if not probe:
                out.append(f"{where}: no {probe_name}")
                continue
            get = probe.get("httpGet") or {}
            if get.get("path") != path:
                out.append(f"{where}: {probe_name} path {get.get('path')!r}, want {path}")
            port = resolve_port(c, get.get("port"))
            if port != listen_port:
                out.append(f"{where}: {probe_name} port {get.get('port')!r} -> {port}, want {listen_port}")
        ready = c.get("readinessProbe") or {}
        if ready.get("periodSeconds") != READINESS_PERIOD_S:
            out.append(f"{where}: readinessProbe periodSeconds {ready.get('periodSeconds')}, want 10")
        for probe_name in ("readinessProbe", "livenessProbe"):
            delay = (c.get(probe_name) or {}).get("initialDelaySeconds", 0)
            if delay:
                out.append(
                    f"{where}: {probe_name} initialDelaySeconds {delay}: it only counts after the "
                    "startupProbe succeeds; put the warm-up allowance in the startupProbe"
                )
    return out


@rule("fleet")
def rule_probe_paths_are_routes(m: Manifests, ctx: Context) -> list[str]:
    """Every probe path exists in the server's route table (openapi.json); the scrape path is
    an admin-port route."""
    out = []
    for pod in m.pod_templates():
        for where, c in pod.containers(init=True):
            for probe_name in ("startupProbe", "readinessProbe", "livenessProbe"):
                path = ((c.get(probe_name) or {}).get("httpGet") or {}).get("path")
                if path is not None and path not in ctx.routes:
                    out.append(f"{where}: {probe_name} path {path} is not a server route")
    dep = m.server_deployment() or {}
    annotations = (dep.get("spec", {}).get("template", {}).get("metadata", {}) or {}).get("annotations") or {}
    scrape = annotations.get("prometheus.io/path")
    if scrape is not None and scrape not in ADMIN_ROUTES:
        out.append(f"scrape path {scrape} is not an admin-port route {ADMIN_ROUTES}")
    return out


def _listen_port(value: str | None, default: int) -> int | None:
    if value is None:
        return default
    try:
        return int(value.rsplit(":", 1)[1])
    except (IndexError, ValueError):
        return None


@rule("fleet")
def rule_admin_port(m: Manifests, ctx: Context) -> list[str]:
    """Metrics on the admin port: declared, scraped there, and never behind the Service."""
    out = []
    dep = m.server_deployment() or {}
    template = dep.get("spec", {}).get("template", {})
    annotations = (template.get("metadata", {}) or {}).get("annotations") or {}
    for pod in m.server_pods():
        c = server_container(pod) or {}
        admin = _listen_port(env_value(c, "QUARRY_ADMIN_LISTEN"), ADMIN_PORT)
        if admin != ADMIN_PORT:
            out.append(f"{pod.owner}: QUARRY_ADMIN_LISTEN port {admin}, want {ADMIN_PORT}")
        if resolve_port(c, "admin") != ADMIN_PORT:
            out.append(f"{pod.owner}: no containerPort named admin = {ADMIN_PORT}")
    scrape_port = annotations.get("prometheus.io/port")
    if scrape_port is not None and str(scrape_port) != str(ADMIN_PORT):
        out.append(f"prometheus.io/port {scrape_port}: /metrics is served on the admin port {ADMIN_PORT} only")
    server = m.server_pods()
    c = server_container(server[0]) if server else None
    for svc in m.of_kind("Service"):
        selector = {"matchLabels": (svc.get("spec") or {}).get("selector") or {}}
        if server and not selector_matches(selector, server[0].labels):
            continue
        for port in (svc.get("spec") or {}).get("ports") or []:
            if c is not None and resolve_port(c, port.get("targetPort")) == ADMIN_PORT:
                out.append(
                    f"Service/{svc['metadata']['name']} port {port.get('name')} exposes the admin port"
                )
    return out


@rule("fleet")
def rule_auth_from_secret(m: Manifests, ctx: Context) -> list[str]:
    """Auth is on, and every credentials file is in a Secret volume mounted read-only as a
    whole directory (a subPath mount never sees a rotated Secret)."""
    out = []
    for pod in m.server_pods():
        c = server_container(pod) or {}
        files = {v: env_value(c, v) for v in AUTH_FILE_VARS if env_value(c, v)}
        if not files:
            out.append(
                f"{pod.owner}: no {' / '.join(AUTH_FILE_VARS)}: every client could read every dataset"
            )
        volumes = {v.get("name"): v for v in pod.spec.get("volumes") or []}
        for var, path in files.items():
            mounts = [
                mt
                for mt in c.get("volumeMounts") or []
                if path.startswith(mt.get("mountPath", "").rstrip("/") + "/")
            ]
            if not mounts:
                out.append(f"{pod.owner}: {var}={path} is on no volume mount")
            for mt in mounts:
                source = volumes.get(mt.get("name")) or {}
                if "secret" not in source and "projected" not in source:
                    out.append(f"{pod.owner}: {var} volume {mt.get('name')} is not a Secret")
                if mt.get("subPath") or mt.get("subPathExpr"):
                    out.append(f"{pod.owner}: {var} mount uses subPath: Secret updates never reach it")
                if mt.get("readOnly") is not True:
                    out.append(f"{pod.owner}: {var} mount is not readOnly")
    return out


@rule("fleet")
def rule_startup_budget(m: Manifests, ctx: Context) -> list[str]:
    """startupProbe period x failureThreshold covers verifying the largest dataset."""
    dep = m.server_deployment()
    if dep is None:
        return []
    annotations = dep.get("metadata", {}).get("annotations") or {}
    try:
        gib = float(annotations[SIZING_DATASET_GIB])
        rate = float(annotations[SIZING_VERIFY_RATE])
    except (KeyError, ValueError):
        return [f"Deployment needs numeric annotations {SIZING_DATASET_GIB} and {SIZING_VERIFY_RATE}"]
    need = STARTUP_SAFETY_FACTOR * gib * 1024 / rate + STARTUP_FIXED_S
    what = f"verify {gib:g} GiB at {rate:g} MiB/s"
    if any(env_entry(server_container(p) or {}, "QUARRY_SOURCE") for p in m.server_pods()):
        # Every dataset is downloaded, then verified, before the pod is ready.
        try:
            total = float(annotations[SIZING_TOTAL_GIB])
            download = float(annotations[SIZING_DOWNLOAD_RATE])
        except (KeyError, ValueError):
            return [
                f"a server with QUARRY_SOURCE needs numeric annotations {SIZING_TOTAL_GIB} and "
                f"{SIZING_DOWNLOAD_RATE}"
            ]
        if total < gib:
            return [f"{SIZING_TOTAL_GIB} {total:g} is below the largest dataset {gib:g} GiB"]
        need = STARTUP_SAFETY_FACTOR * total * 1024 * (1 / download + 1 / rate) + STARTUP_FIXED_S
        what = f"download {total:g} GiB at {download:g} MiB/s and verify it at {rate:g} MiB/s"
    out = []
    for pod in m.server_pods():
        c = server_container(pod) or {}
        probe = c.get("startupProbe") or {}
        budget = probe.get("periodSeconds", 10) * probe.get("failureThreshold", 3)
        if budget < need:
            out.append(
                f"startupProbe budget {budget} s < {need:.0f} s needed to {what}"
            )
        deadline = dep.get("spec", {}).get("progressDeadlineSeconds", DEFAULT_PROGRESS_DEADLINE_S)
        if deadline <= budget:
            out.append(f"progressDeadlineSeconds {deadline} <= startup budget {budget} s")
    return out


@rule("fleet")
def rule_graceful_shutdown(m: Manifests, ctx: Context) -> list[str]:
    """preStop sleep 5-10 s; grace >= preStop + drain delay + shutdown timeout + margin."""
    out = []
    for pod in m.server_pods():
        c = server_container(pod)
        if c is None:
            continue
        sleep = prestop_sleep_s(c)
        if sleep is None:
            out.append(f"{pod.owner}: server has no preStop sleep")
            continue
        if not PRESTOP_MIN_S <= sleep <= PRESTOP_MAX_S:
            out.append(f"{pod.owner}: preStop sleep {sleep:g} s, want {PRESTOP_MIN_S}-{PRESTOP_MAX_S} s")
        drain = parse_duration_s(env_value(c, "QUARRY_DRAIN_DELAY") or f"{DEFAULT_DRAIN_DELAY_S}s")
        shutdown = parse_duration_s(
            env_value(c, "QUARRY_SHUTDOWN_TIMEOUT") or f"{DEFAULT_SHUTDOWN_TIMEOUT_S}s"
        )
        need = sleep + drain + shutdown + GRACE_MARGIN_S
        grace = pod.spec.get("terminationGracePeriodSeconds", 30)
        if grace < need:
            out.append(
                f"{pod.owner}: terminationGracePeriodSeconds {grace} < preStop {sleep:g} + drain "
                f"{drain:g} + shutdown {shutdown:g} + margin {GRACE_MARGIN_S} = {need:g}"
            )
    return out


@rule("any")
def rule_pid1_is_the_binary(m: Manifests, ctx: Context) -> list[str]:
    """No shell wrapper: PID 1 is quarry-server / quarry-etl and receives SIGTERM itself."""
    out = []
    for pod in m.pod_templates():
        for where, c in pod.containers(init=False):
            words = [str(w) for w in (c.get("command") or []) + (c.get("args") or [])]
            if any(PurePosixPath(w).name in SHELLS for w in words) or "-c" in words[:2]:
                out.append(f"{where}: runs through a shell: {words}")
            if _binary(c) not in (SERVER_BINARY, ETL_BINARY):
                out.append(f"{where}: PID 1 is {_binary(c)}, want {SERVER_BINARY} or {ETL_BINARY}")
    return out


@rule("any")
def rule_security_context(m: Manifests, ctx: Context) -> list[str]:
    out = []
    for pod in m.pod_templates():
        psc = pod.spec.get("securityContext") or {}
        if pod.spec.get("automountServiceAccountToken") is not False:
            out.append(f"{pod.owner}: automountServiceAccountToken must be false")
        if pod.spec.get("hostNetwork") or pod.spec.get("hostPID") or pod.spec.get("hostIPC"):
            out.append(f"{pod.owner}: uses host namespaces")
        for where, c in pod.containers(init=True):
            sc = c.get("securityContext") or {}
            # Container settings override the pod's.
            effective = {**psc, **sc}
            if effective.get("runAsNonRoot") is not True:
                out.append(f"{where}: runAsNonRoot not true")
            if effective.get("runAsUser") == 0:
                out.append(f"{where}: runAsUser 0")
            seccomp = (effective.get("seccompProfile") or {}).get("type")
            if seccomp != "RuntimeDefault":
                out.append(f"{where}: seccompProfile {seccomp!r}, want RuntimeDefault")
            if sc.get("allowPrivilegeEscalation") is not False:
                out.append(f"{where}: allowPrivilegeEscalation not false")
            if sc.get("readOnlyRootFilesystem") is not True:
                out.append(f"{where}: readOnlyRootFilesystem not true")
            if sc.get("privileged"):
                out.append(f"{where}: privileged")
            caps = sc.get("capabilities") or {}
            if "ALL" not in (caps.get("drop") or []):
                out.append(f"{where}: capabilities do not drop ALL")
            if caps.get("add"):
                out.append(f"{where}: adds capabilities {caps['add']}")
    return out


@rule("volume")
def rule_server_data_read_only(m: Manifests, ctx: Context) -> list[str]:
    """The data PVC is ReadOnlyMany and read-only at both the volume source and the mount."""
    out = []
    for pod in m.server_pods():
        c = server_container(pod)
        if c is None:
            continue
        data_dir = env_value(c, "QUARRY_DATA_DIR")
        volumes = {v.get("name"): v for v in pod.spec.get("volumes") or []}
        mounts = [mt for mt in c.get("volumeMounts") or [] if mt.get("mountPath") == data_dir]
        if len(mounts) != 1:
            out.append(f"{pod.owner}: QUARRY_DATA_DIR={data_dir} is not exactly one volume mount")
        for _, cc in pod.containers(init=True):
            for mt in cc.get("volumeMounts") or []:
                if mt.get("readOnly") is not True:
                    out.append(
                        f"{pod.owner}: mount {mt.get('mountPath')} not readOnly: the server never writes"
                    )
        for mt in mounts:
            vol = volumes.get(mt.get("name")) or {}
            pvc_ref = vol.get("persistentVolumeClaim")
            if not pvc_ref:
                out.append(f"{pod.owner}: data volume {mt.get('name')} is not a PVC")
                continue
            if pvc_ref.get("readOnly") is not True:
                out.append(f"{pod.owner}: data volume source {mt.get('name')} lacks readOnly: true")
            claim = m.get("PersistentVolumeClaim", pvc_ref.get("claimName"))
            if claim is None:
                out.append(f"{pod.owner}: claim {pvc_ref.get('claimName')} is not in the manifests")
            elif (claim.get("spec") or {}).get("accessModes") != ["ReadOnlyMany"]:
                out.append(
                    f"claim {pvc_ref.get('claimName')}: accessModes {claim['spec'].get('accessModes')}, want [ReadOnlyMany]"
                )
    return out


@rule("any")
def rule_etl_job(m: Manifests, ctx: Context) -> list[str]:
    """ETL pods: several dedicated cores, threads = cores, writable output, read-only input."""
    out = []
    etl = m.etl_pods()
    if not etl:
        out.append("no ETL pod template (Job or CronJob running quarry-etl)")
    server_claims = {
        (v.get("persistentVolumeClaim") or {}).get("claimName")
        for pod in m.server_pods()
        for v in pod.spec.get("volumes") or []
    } - {None}
    for pod in etl:
        if pod.spec.get("restartPolicy") not in ("Never", "OnFailure"):
            out.append(f"{pod.owner}: restartPolicy {pod.spec.get('restartPolicy')}")
        volumes = {v.get("name"): v for v in pod.spec.get("volumes") or []}
        for where, c in pod.containers(init=False):
            limits = (c.get("resources") or {}).get("limits") or {}
            cpu = parse_quantity(limits.get("cpu", 0))
            if cpu <= 1 or cpu.denominator != 1:
                out.append(f"{where}: cpu limit {limits.get('cpu')!r}, want a whole number of cores > 1")
            threads = env_entry(c, "QUARRY_THREADS")
            if threads is not None:
                ref = (threads.get("valueFrom") or {}).get("resourceFieldRef") or {}
                value = threads.get("value")
                if ref.get("resource") != "limits.cpu" and (value is None or Fraction(value) != cpu):
                    out.append(f"{where}: QUARRY_THREADS does not follow the cpu limit")
            out_dir = etl_out(m, c)
            if out_dir is None:
                out.append(f"{where}: no --out")
                continue
            if is_url(out_dir):
                # Publishing to object storage: no output volume; any input volume read-only.
                for mt in c.get("volumeMounts") or []:
                    pvc = (volumes.get(mt.get("name")) or {}).get("persistentVolumeClaim")
                    if pvc is not None and mt.get("readOnly") is not True:
                        out.append(f"{where}: input mount {mt.get('mountPath')} not readOnly")
                continue
            for mt in c.get("volumeMounts") or []:
                vol = volumes.get(mt.get("name")) or {}
                pvc = vol.get("persistentVolumeClaim")
                if mt.get("mountPath") == out_dir:
                    if mt.get("readOnly") or (pvc or {}).get("readOnly"):
                        out.append(f"{where}: output {out_dir} is mounted read-only")
                    claim = m.get("PersistentVolumeClaim", (pvc or {}).get("claimName"))
                    if pvc is None:
                        out.append(f"{where}: output {out_dir} is not a PVC")
                    elif claim is not None and "ReadOnlyMany" in (claim.get("spec") or {}).get(
                        "accessModes", []
                    ):
                        out.append(f"{where}: output claim {pvc.get('claimName')} is ReadOnlyMany")
                    if pvc and pvc.get("claimName") in server_claims:
                        out.append(f"{where}: writes the servers' read-only claim {pvc.get('claimName')}")
                elif pvc is not None and mt.get("readOnly") is not True:
                    out.append(f"{where}: input mount {mt.get('mountPath')} not readOnly")
            if not any(mt.get("mountPath") == out_dir for mt in c.get("volumeMounts") or []):
                out.append(f"{where}: --out {out_dir} is not a volume mount")
    for cj in m.of_kind("CronJob"):
        if (cj.get("spec") or {}).get("concurrencyPolicy") != "Forbid":
            out.append(f"CronJob/{cj['metadata']['name']}: concurrencyPolicy must be Forbid")
    return out


@rule("fleet")
def rule_same_image(m: Manifests, ctx: Context) -> list[str]:
    images = {c.get("image") for pod in m.server_pods() + m.etl_pods() for _, c in pod.containers(init=False)}
    if len(images) != 1:
        return [f"server and ETL use different images: {sorted(map(str, images))}"]
    return []


@rule("fleet")
def rule_pdb(m: Manifests, ctx: Context) -> list[str]:
    out = []
    pods = m.server_pods()
    pdbs = [
        p
        for p in m.of_kind("PodDisruptionBudget")
        if any(selector_matches(p["spec"].get("selector"), s.labels) for s in pods)
    ]
    if len(pdbs) != 1:
        return [f"want exactly one PodDisruptionBudget over the server pods, found {len(pdbs)}"]
    pdb = pdbs[0]
    spec = pdb.get("spec") or {}
    if pdb.get("apiVersion") != "policy/v1":
        out.append(f"PDB apiVersion {pdb.get('apiVersion')}, want policy/v1")
    if "maxUnavailable" in spec:
        out.append("PDB sets maxUnavailable; the overlays fix minAvailable")
    if spec.get("minAvailable") != ctx.pdb_min_available:
        out.append(f"PDB minAvailable {spec.get('minAvailable')!r}, want {ctx.pdb_min_available!r}")
    if spec.get("unhealthyPodEvictionPolicy") != "AlwaysAllow":
        out.append("PDB unhealthyPodEvictionPolicy must be AlwaysAllow")
    hpa = m.get("HorizontalPodAutoscaler", "quarry-server")
    if hpa and "minAvailable" in spec:
        low = int((hpa.get("spec") or {}).get("minReplicas", 1))
        keep = percent_or_int(spec["minAvailable"], low, round_up=True)
        if keep >= low:
            out.append(
                f"PDB keeps {keep} of minReplicas {low}: a node drain at minimum scale can never evict"
            )
    return out


@rule("fleet")
def rule_hpa(m: Manifests, ctx: Context) -> list[str]:
    out = []
    hpa = m.get("HorizontalPodAutoscaler", "quarry-server")
    if hpa is None:
        return ["no HorizontalPodAutoscaler/quarry-server"]
    spec = hpa.get("spec") or {}
    if hpa.get("apiVersion") != "autoscaling/v2":
        out.append(f"HPA apiVersion {hpa.get('apiVersion')}, want autoscaling/v2")
    ref = spec.get("scaleTargetRef") or {}
    if (ref.get("apiVersion"), ref.get("kind")) != ("apps/v1", "Deployment") or m.get(
        "Deployment", ref.get("name")
    ) is None:
        out.append(f"HPA scaleTargetRef {ref} does not name a Deployment in the manifests")
    low, high = spec.get("minReplicas", 1), spec.get("maxReplicas", 0)
    if low < 2:
        out.append(f"HPA minReplicas {low} < 2")
    if high < low:
        out.append(f"HPA maxReplicas {high} < minReplicas {low}")
    cpu = [
        x
        for x in spec.get("metrics") or []
        if x.get("type") == "Resource" and (x.get("resource") or {}).get("name") == "cpu"
    ]
    targets = [
        (
            (x["resource"].get("target") or {}).get("type"),
            (x["resource"].get("target") or {}).get("averageUtilization"),
        )
        for x in cpu
    ]
    if targets != [("Utilization", HPA_CPU_TARGET)]:
        out.append(f"HPA cpu targets {targets}, want one Utilization target of {HPA_CPU_TARGET}%")
    behavior = spec.get("behavior") or {}
    up, down = behavior.get("scaleUp"), behavior.get("scaleDown")
    if not up or up.get("stabilizationWindowSeconds", 0) > SCALE_UP_MAX_WINDOW_S:
        out.append(f"HPA scaleUp must be explicit with a stabilization window <= {SCALE_UP_MAX_WINDOW_S} s")
    if not down or down.get("stabilizationWindowSeconds", 300) < SCALE_DOWN_MIN_WINDOW_S:
        out.append(
            f"HPA scaleDown must be explicit with a stabilization window >= {SCALE_DOWN_MIN_WINDOW_S} s"
        )
    for name, part in (("scaleUp", up), ("scaleDown", down)):
        if part is not None and not part.get("policies") and part.get("selectPolicy") != "Disabled":
            out.append(f"HPA {name} has no policies")
    return out


@rule("any")
def rule_selectors_match(m: Manifests, ctx: Context) -> list[str]:
    """Every selector matches the pods it is meant for, and only those."""
    out = []
    pods = m.pod_templates()
    server = m.server_pods()
    for d in m.docs:
        kind, name = d.get("kind"), d.get("metadata", {}).get("name")
        spec = d.get("spec") or {}
        if kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"):
            labels = (spec.get("template", {}).get("metadata", {}) or {}).get("labels") or {}
            if not selector_matches(spec.get("selector"), labels):
                out.append(
                    f"{kind}/{name}: selector {spec.get('selector')} does not match its template labels {labels}"
                )
        if kind == "Service":
            sel = spec.get("selector") or {}
            matched = [p for p in pods if sel and all(p.labels.get(k) == v for k, v in sel.items())]
            if not matched:
                out.append(f"Service/{name}: selector {sel} matches no pod template")
            elif name == "quarry-server" and any(p.role != "server" for p in matched):
                out.append(f"Service/{name}: selector {sel} also matches non-server pods")
        if kind in ("PodDisruptionBudget", "NetworkPolicy"):
            sel = spec.get("selector") if kind == "PodDisruptionBudget" else spec.get("podSelector")
            matched = [p for p in pods if selector_matches(sel, p.labels)]
            if not matched:
                out.append(f"{kind}/{name}: selector {sel} matches no pod template")
            if name == "quarry-server" and (matched != server or not server):
                out.append(f"{kind}/{name}: selector {sel} must match exactly the server pods")
    for pod in pods:
        for tsc in pod.spec.get("topologySpreadConstraints") or []:
            if not selector_matches(tsc.get("labelSelector"), pod.labels):
                out.append(
                    f"{pod.owner}: topologySpreadConstraint {tsc.get('topologyKey')} selector does not match its own pods"
                )
        for term in ((pod.spec.get("affinity") or {}).get("podAntiAffinity") or {}).get(
            "preferredDuringSchedulingIgnoredDuringExecution"
        ) or []:
            sel = (term.get("podAffinityTerm") or {}).get("labelSelector")
            if not selector_matches(sel, pod.labels):
                out.append(f"{pod.owner}: podAntiAffinity selector does not match its own pods")
    return out


@rule("fleet")
def rule_topology_spread(m: Manifests, ctx: Context) -> list[str]:
    out = []
    for pod in m.server_pods():
        keys = {t.get("topologyKey") for t in pod.spec.get("topologySpreadConstraints") or []}
        for key in ("kubernetes.io/hostname", "topology.kubernetes.io/zone"):
            if key not in keys:
                out.append(f"{pod.owner}: no topology spread over {key}")
    return out


@rule("fleet")
def rule_service_and_ingress(m: Manifests, ctx: Context) -> list[str]:
    out = []
    svc = m.get("Service", "quarry-server") or {}
    spec = svc.get("spec") or {}
    if spec.get("type", "ClusterIP") != "ClusterIP":
        out.append(f"Service type {spec.get('type')}, want ClusterIP")
    if spec.get("sessionAffinity") != "None":
        out.append(f"Service sessionAffinity {spec.get('sessionAffinity')!r}, want None (explicitly)")
    server = m.server_pods()
    c = server_container(server[0]) if server else None
    for port in spec.get("ports") or []:
        if c is None or resolve_port(c, port.get("targetPort")) is None:
            out.append(
                f"Service port {port.get('name')}: targetPort {port.get('targetPort')!r} is no container port"
            )
    svc_ports = {p.get("name") for p in spec.get("ports") or []} | {
        p.get("port") for p in spec.get("ports") or []
    }
    for ing in m.of_kind("Ingress"):
        annotations = ing.get("metadata", {}).get("annotations") or {}
        sticky = [k for k in annotations if "affinity" in k or "sticky" in k or "session-cookie" in k]
        if sticky:
            out.append(f"Ingress/{ing['metadata']['name']}: sticky-session annotations {sticky}")
        for rule_ in (ing.get("spec") or {}).get("rules") or []:
            for p in (rule_.get("http") or {}).get("paths") or []:
                backend = (p.get("backend") or {}).get("service") or {}
                port = backend.get("port") or {}
                if m.get("Service", backend.get("name")) is None:
                    out.append(f"Ingress path {p.get('path')}: no Service {backend.get('name')}")
                elif port.get("name", port.get("number")) not in svc_ports:
                    out.append(f"Ingress path {p.get('path')}: Service has no port {port}")
                path = p.get("path", "/")
                if not any(r == path or r.startswith(path.rstrip("/") + "/") for r in ctx.routes):
                    out.append(f"Ingress path {path} reaches no server route")
                exposed = [r for r in INTERNAL_ROUTES if r == path or r.startswith(path.rstrip("/") + "/")]
                if exposed:
                    out.append(f"Ingress path {path} exposes internal routes {exposed}")
    return out


@rule("fleet")
def rule_network_policy(m: Manifests, ctx: Context) -> list[str]:
    out = []
    server = m.server_pods()
    policies = [
        p
        for p in m.of_kind("NetworkPolicy")
        if server and selector_matches((p.get("spec") or {}).get("podSelector"), server[0].labels)
    ]
    if not policies:
        return ["no NetworkPolicy selects the server pods"]
    c = server_container(server[0]) or {}
    for pol in policies:
        spec = pol.get("spec") or {}
        name = pol["metadata"]["name"]
        if "Ingress" not in (spec.get("policyTypes") or []):
            out.append(f"NetworkPolicy/{name}: policyTypes lacks Ingress")
        for i, rule_ in enumerate(spec.get("ingress") or []):
            peers = rule_.get("from")
            if not peers:
                out.append(f"NetworkPolicy/{name}: ingress rule {i} admits every source")
            for peer in peers or []:
                if "ipBlock" in peer or not peer.get("namespaceSelector") or not peer.get("podSelector"):
                    out.append(
                        f"NetworkPolicy/{name}: ingress rule {i} peer {peer} must name both namespace and pods"
                    )
            ports = rule_.get("ports")
            if not ports:
                out.append(f"NetworkPolicy/{name}: ingress rule {i} opens every port")
            opened = {resolve_port(c, port.get("port")) for port in ports or []}
            for port in ports or []:
                if resolve_port(c, port.get("port")) not in (HTTP_PORT, ADMIN_PORT):
                    out.append(f"NetworkPolicy/{name}: ingress rule {i} opens port {port.get('port')!r}")
            if {HTTP_PORT, ADMIN_PORT} <= opened:
                out.append(
                    f"NetworkPolicy/{name}: ingress rule {i} opens the API and the admin port to the "
                    "same peers; give the scraper and the ingress controller a rule each"
                )
    return out


@rule("fleet")
def rule_server_uses_epoll(m: Manifests, ctx: Context) -> list[str]:
    """seccomp RuntimeDefault blocks io_uring: force epoll rather than probe and fall back."""
    out = []
    for pod in m.server_pods():
        c = server_container(pod) or {}
        if (
            env_value(c, "MONOIO_FORCE_LEGACY_DRIVER") not in ("1", "true")
            and env_value(c, "QUARRY_FORCE_EPOLL") != "true"
        ):
            out.append(f"{pod.owner}: set MONOIO_FORCE_LEGACY_DRIVER=1 (io_uring is blocked by seccomp)")
    return out


@rule("object-store")
def rule_server_cache(m: Manifests, ctx: Context) -> list[str]:
    """Servers read a bucket (QUARRY_SOURCE, no QUARRY_DATA_DIR) into a cache directory on a
    disk-backed emptyDir: its only writable mount, with a sizeLimit that holds two versions of
    every dataset, QUARRY_CACHE_MAX_BYTES set within it (statvfs in the pod sees the node's
    disk, not the sizeLimit), and an ephemeral-storage limit that covers it."""
    out = []
    dep = m.server_deployment() or {}
    annotations = dep.get("metadata", {}).get("annotations") or {}
    for pod in m.server_pods():
        c = server_container(pod)
        if c is None:
            continue
        source = env_resolved(m, c, "QUARRY_SOURCE")
        if source is None or source.split("://", 1)[0] not in OBJECT_SCHEMES or not is_url(source):
            out.append(f"{pod.owner}: QUARRY_SOURCE {source!r} is not an object storage URL")
        if env_entry(c, "QUARRY_DATA_DIR") is not None:
            out.append(f"{pod.owner}: QUARRY_DATA_DIR is set: --source takes its place")
        volumes = {v.get("name"): v for v in pod.spec.get("volumes") or []}
        for v in volumes.values():
            if "persistentVolumeClaim" in v:
                out.append(f"{pod.owner}: volume {v.get('name')} is a PVC")
        cache_dir = env_value(c, "QUARRY_CACHE_DIR")
        mounts = [mt for mt in c.get("volumeMounts") or [] if mt.get("mountPath") == cache_dir]
        if len(mounts) != 1:
            out.append(f"{pod.owner}: QUARRY_CACHE_DIR={cache_dir} is not exactly one volume mount")
            continue
        cache = mounts[0]
        for _, cc in pod.containers(init=True):
            for mt in cc.get("volumeMounts") or []:
                if mt is not cache and mt.get("readOnly") is not True:
                    out.append(f"{pod.owner}: mount {mt.get('mountPath')} not readOnly: only the cache is written")
        if cache.get("readOnly"):
            out.append(f"{pod.owner}: the cache {cache_dir} is mounted read-only")
        empty = (volumes.get(cache.get("name")) or {}).get("emptyDir")
        if empty is None:
            out.append(f"{pod.owner}: the cache volume {cache.get('name')} is not an emptyDir")
            continue
        if empty.get("medium") == "Memory":
            out.append(f"{pod.owner}: the cache emptyDir is in memory: its files count against the memory limit")
        if "sizeLimit" not in empty:
            out.append(f"{pod.owner}: the cache emptyDir has no sizeLimit")
            continue
        size_limit = parse_quantity(empty["sizeLimit"])
        try:
            total = float(annotations[SIZING_TOTAL_GIB])
        except (KeyError, ValueError):
            out.append(f"Deployment needs a numeric annotation {SIZING_TOTAL_GIB}")
            total = None
        max_bytes = env_value(c, "QUARRY_CACHE_MAX_BYTES")
        if max_bytes is None:
            out.append(
                f"{pod.owner}: QUARRY_CACHE_MAX_BYTES unset: the default (free space) sees the node's "
                "disk, not the emptyDir's sizeLimit"
            )
        else:
            limit = parse_server_size(max_bytes)
            if limit > size_limit:
                out.append(f"{pod.owner}: QUARRY_CACHE_MAX_BYTES {max_bytes} exceeds the sizeLimit {empty['sizeLimit']}")
            if total is not None and limit < CACHE_VERSIONS * total * 2**30:
                out.append(
                    f"{pod.owner}: QUARRY_CACHE_MAX_BYTES {max_bytes} holds less than {CACHE_VERSIONS} "
                    f"versions of {total:g} GiB"
                )
        eph = ((c.get("resources") or {}).get("limits") or {}).get("ephemeral-storage")
        if eph is None or parse_quantity(eph) < size_limit:
            out.append(f"{pod.owner}: ephemeral-storage limit {eph!r} below the cache sizeLimit {empty['sizeLimit']}")
    return out


@rule("object-store")
def rule_object_store_publish(m: Manifests, ctx: Context) -> list[str]:
    """The ETL publishes where the servers read, under its own ServiceAccount; no claim exists;
    both may reach the object store (egress to TCP 443)."""
    out = []
    for claim in m.of_kind("PersistentVolumeClaim"):
        out.append(f"PersistentVolumeClaim/{claim['metadata']['name']}: no claims when publishing to object storage")
    sources = {
        env_resolved(m, server_container(p) or {}, "QUARRY_SOURCE") for p in m.server_pods()
    }
    server_accounts = {p.spec.get("serviceAccountName") for p in m.server_pods()}
    etl = m.etl_pods()
    if not etl:
        out.append("no ETL pod template")
    for pod in etl:
        for where, c in pod.containers(init=False):
            target = etl_out(m, c)
            if target is None or not is_url(target):
                out.append(f"{where}: --out {target!r} is not an object storage URL")
            elif {target.rstrip("/")} != {s.rstrip("/") for s in sources if s}:
                out.append(f"{where}: publishes to {target}, the servers read {sorted(map(str, sources))}")
        if pod.spec.get("serviceAccountName") in server_accounts:
            out.append(
                f"{pod.owner}: runs as the servers' ServiceAccount {pod.spec.get('serviceAccountName')}; "
                "the ETL writes the bucket, the servers only read it"
            )
    for pod in m.server_pods() + etl:
        policies = [
            p
            for p in m.of_kind("NetworkPolicy")
            if selector_matches((p.get("spec") or {}).get("podSelector"), pod.labels)
        ]
        egress_types = [p for p in policies if "Egress" in ((p.get("spec") or {}).get("policyTypes") or [])]
        if not egress_types:
            continue
        opened = any(
            any(port.get("port") == OBJECT_STORE_PORT for port in rule_.get("ports") or [])
            or not rule_.get("ports")
            for p in egress_types
            for rule_ in (p.get("spec") or {}).get("egress") or []
        )
        if not opened:
            out.append(f"{pod.owner}: NetworkPolicy egress does not open TCP {OBJECT_STORE_PORT} to the object store")
    return out
