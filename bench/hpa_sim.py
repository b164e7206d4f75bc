#!/usr/bin/env python3
"""Simulates the Kubernetes HorizontalPodAutoscaler on Quarry's one-core server pods.

What it models (ported from kube-controller-manager's podautoscaler, replica_calculator.go and
horizontal.go, Kubernetes 1.30-1.33):
  * the replica calculation: desired = ceil(readyPods x usageRatio), usageRatio = average
    utilisation (whole percent, truncated) / target, no change while 0.9 <= usageRatio <= 1.1
    (tolerance 0.1, both edges inclusive); pods that are not
    ready yet count as 0% when the fleet wants to grow, and a recalculated ratio that flips
    direction or falls inside the tolerance keeps the current count;
  * behavior: stabilisation windows (scale-up takes the lowest, scale-down the highest
    recommendation of its window), rate policies (Pods / Percent per period, measured from the
    replica count at the start of the period), selectPolicy Max / Min / Disabled, and
    min/maxReplicas;
  * the fleet: one-core pods (request == limit == 1 CPU) that each serve at most C req/s at
    100% CPU; the Service spreads load evenly over ready pods; load above the ready capacity is
    shed (the server answers 503 + Retry-After past its in-flight / loop-lag limits); a new pod
    is ready `--startup-s` after the HPA asks for it (scheduling, image, data verification,
    readiness probe); removed pods leave at once;
  * metrics: every sync (15 s) the HPA sees each pod's CPU averaged over the last metric window
    (15 s, metrics-server); a pod ready for less than one window has no usable sample yet and
    counts as unready.
Not modelled: node provisioning (nodes are assumed free), the CPU-initialisation period's
finer rules, per-HPA tolerances (alpha in 1.33).

Per-pod capacity C is a command-line parameter. Its default, 200,000 req/s, is a PLACEHOLDER:
the floor for tiny responses from hyper's ~4.8 us of server CPU per request (FACTS.md), to be
replaced by the measured figure from docs/bench (requests/s of one server core at 100% CPU for
your dominant query type).

    python3 bench/hpa_sim.py                       # writes docs/hpa/hpa-sim.png and .csv
    python3 bench/hpa_sim.py --capacity 35000 --startup-s 60
    python3 bench/hpa_sim.py --hpa-yaml <(kubectl kustomize k8s/overlays/large)
"""

from __future__ import annotations

import argparse
import csv
import itertools
import math
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PLACEHOLDER_CAPACITY = 200_000.0
TOLERANCE = 0.1


# ---------------------------------------------------------------------------------------------
# HPA spec


@dataclass(frozen=True)
class Policy:
    type: str  # "Pods" or "Percent"
    value: int
    period_s: int


@dataclass(frozen=True)
class Rules:
    stabilization_s: int
    select: str  # "Max", "Min" or "Disabled"
    policies: tuple[Policy, ...]


@dataclass(frozen=True)
class Behavior:
    up: Rules
    down: Rules


# Kubernetes' defaults when `behavior` is absent.
K8S_DEFAULT_BEHAVIOR = Behavior(
    up=Rules(0, "Max", (Policy("Percent", 100, 15), Policy("Pods", 4, 15))),
    down=Rules(300, "Max", (Policy("Percent", 100, 15),)),
)

# Mirror of k8s/base/hpa.yaml (k8s/tests/test_hpa_sim.py keeps the two equal).
QUARRY_BEHAVIOR = Behavior(
    up=Rules(0, "Max", (Policy("Percent", 100, 15), Policy("Pods", 4, 15))),
    down=Rules(300, "Max", (Policy("Percent", 20, 60),)),
)


def rules_from_spec(spec: dict | None, default: Rules) -> Rules:
    if spec is None:
        return default
    policies = spec.get("policies")
    return Rules(
        stabilization_s=int(spec.get("stabilizationWindowSeconds", default.stabilization_s)),
        select=spec.get("selectPolicy", "Max"),
        policies=tuple(Policy(p["type"], int(p["value"]), int(p["periodSeconds"])) for p in policies)
        if policies
        else default.policies,
    )


def behavior_from_hpa(hpa: dict) -> Behavior:
    """The behavior of an autoscaling/v2 HPA document, with Kubernetes' defaults filled in."""
    spec = (hpa.get("spec") or {}).get("behavior") or {}
    return Behavior(
        up=rules_from_spec(spec.get("scaleUp"), K8S_DEFAULT_BEHAVIOR.up),
        down=rules_from_spec(spec.get("scaleDown"), K8S_DEFAULT_BEHAVIOR.down),
    )


# ---------------------------------------------------------------------------------------------
# Replica calculation (replica_calculator.go, GetResourceReplicas / GetMetricReplicas)


def within_tolerance(ratio: float, tolerance: float) -> bool:
    """Kubernetes' Tolerances.isWithin: both edges inclusive."""
    return (1.0 - tolerance) <= ratio <= (1.0 + tolerance)


def usage_ratio(usage: list[float], target: float, utilization: bool) -> float:
    """usage / target. For a Resource Utilization metric Kubernetes sums milli-cores and truncates
    the utilisation to a whole percent (GetResourceUtilizationRatio) before dividing."""
    if utilization:
        milli = sum(round(u * 1000) for u in usage)
        percent = (milli * 100) // (len(usage) * 1000)
        return percent / round(target * 100)
    return sum(usage) / (len(usage) * target)


def recommend(
    current: int,
    ready_usage: list[float],
    unready: int,
    target: float,
    tolerance: float = TOLERANCE,
    utilization: bool = True,
) -> int:
    """Desired replicas from per-pod usage in the unit of the target: with `utilization`, usage
    and target are fractions of the CPU request (0.93 and 0.8); otherwise any per-pod value
    (req/s). `ready_usage` has one sample per ready pod with a metric; `unready` counts pods
    that exist but are not ready or have no sample yet."""
    if not ready_usage:
        # No metrics at all: the controller keeps the current count.
        return current
    ratio = usage_ratio(ready_usage, target, utilization)
    if not (unready > 0 and ratio > 1.0):
        # Unready pods are left out entirely unless the fleet wants to grow.
        if within_tolerance(ratio, tolerance):
            return current
        return math.ceil(ratio * len(ready_usage))
    # Growing while some pods are not ready: assume they use nothing, then recompute.
    everyone = ready_usage + [0.0] * unready
    new_ratio = usage_ratio(everyone, target, utilization)
    if within_tolerance(new_ratio, tolerance) or new_ratio < 1.0:
        # Too small a change, or the direction flipped: keep the current count.
        return current
    return max(math.ceil(new_ratio * len(everyone)), current)


# ---------------------------------------------------------------------------------------------
# Normalisation with behavior (horizontal.go)


@dataclass
class Autoscaler:
    behavior: Behavior
    min_replicas: int
    max_replicas: int
    recommendations: list[tuple[float, int]] = field(default_factory=list)
    up_events: list[tuple[float, int]] = field(default_factory=list)
    down_events: list[tuple[float, int]] = field(default_factory=list)

    def _stabilize(self, now: float, current: int, desired: int) -> int:
        up_cutoff = now - self.behavior.up.stabilization_s
        down_cutoff = now - self.behavior.down.stabilization_s
        up_rec = down_rec = desired
        for t, rec in self.recommendations:
            if t > up_cutoff:
                up_rec = min(up_rec, rec)
            if t > down_cutoff:
                down_rec = max(down_rec, rec)
        keep = max(self.behavior.up.stabilization_s, self.behavior.down.stabilization_s)
        self.recommendations = [(t, r) for t, r in self.recommendations if t > now - keep]
        self.recommendations.append((now, desired))
        recommendation = current
        recommendation = max(recommendation, up_rec)
        recommendation = min(recommendation, down_rec)
        return recommendation

    @staticmethod
    def _changed_in(events: list[tuple[float, int]], now: float, period_s: int) -> int:
        return sum(change for t, change in events if t > now - period_s)

    def scale_up_limit(self, now: float, current: int) -> int:
        rules = self.behavior.up
        if rules.select == "Disabled":
            return current
        proposals = []
        for p in rules.policies:
            start = (
                current
                - self._changed_in(self.up_events, now, p.period_s)
                + self._changed_in(self.down_events, now, p.period_s)
            )
            if p.type == "Pods":
                proposals.append(start + p.value)
            else:
                # Rounded up so that a small fleet can always grow by one.
                proposals.append(math.ceil(start * (1 + p.value / 100)))
        return min(proposals) if rules.select == "Min" else max(proposals)

    def scale_down_limit(self, now: float, current: int) -> int:
        rules = self.behavior.down
        if rules.select == "Disabled":
            return current
        proposals = []
        for p in rules.policies:
            start = (
                current
                - self._changed_in(self.up_events, now, p.period_s)
                + self._changed_in(self.down_events, now, p.period_s)
            )
            if p.type == "Pods":
                proposals.append(start - p.value)
            else:
                proposals.append(int(start * (1 - p.value / 100)))
        # "Min" selects the smallest change, i.e. the highest remaining count.
        return max(proposals) if rules.select == "Min" else min(proposals)

    def normalize(self, now: float, current: int, desired: int) -> int:
        """Replicas the controller sets, given the raw recommendation."""
        if current < self.min_replicas:
            return self._record(now, current, self.min_replicas)
        if current > self.max_replicas:
            return self._record(now, current, self.max_replicas)
        stabilized = self._stabilize(now, current, desired)
        result = stabilized
        if stabilized > current:
            limit = max(self.scale_up_limit(now, current), current)
            result = min(stabilized, min(self.max_replicas, limit))
        elif stabilized < current:
            limit = min(self.scale_down_limit(now, current), current)
            result = max(stabilized, max(self.min_replicas, limit))
        return self._record(now, current, result)

    def _record(self, now: float, current: int, result: int) -> int:
        longest = max(
            (p.period_s for r in (self.behavior.up, self.behavior.down) for p in r.policies), default=0
        )
        self.up_events = [(t, c) for t, c in self.up_events if t > now - longest]
        self.down_events = [(t, c) for t, c in self.down_events if t > now - longest]
        if result > current:
            self.up_events.append((now, result - current))
        elif result < current:
            self.down_events.append((now, current - result))
        return result


# ---------------------------------------------------------------------------------------------
# The fleet


@dataclass(frozen=True)
class Scenario:
    label: str
    metric: str  # "cpu" or "rps"
    target: float  # cpu: utilisation fraction (0.8); rps: req/s per pod
    style: str = "-"


@dataclass(frozen=True)
class FleetConfig:
    capacity: float  # req/s of one pod at 100% of its core
    startup_s: int
    sync_period_s: int = 15
    metric_window_s: int = 15
    min_replicas: int = 2
    max_replicas: int = 48
    behavior: Behavior = QUARRY_BEHAVIOR
    tolerance: float = TOLERANCE


@dataclass
class Sample:
    t: int
    offered: float
    served: float
    shed: float
    replicas: int
    ready: int
    cpu: float  # mean utilisation of ready pods, 0..1


def load_profile(points: list[tuple[float, float]], t: float) -> float:
    """Piecewise-linear profile; two points at one time make a step."""
    if t <= points[0][0]:
        return points[0][1]
    for (t0, v0), (t1, v1) in itertools.pairwise(points):
        if t0 <= t < t1:
            return v0 + (v1 - v0) * (t - t0) / (t1 - t0) if t1 > t0 else v1
    return points[-1][1]


# Offered load in units of one pod's capacity: warm start, ramp, hold, burst, drop, long tail.
DEFAULT_PROFILE = [
    (0, 1.0),
    (120, 1.0),
    (720, 6.0),
    (960, 6.0),
    (960, 12.0),
    (1200, 12.0),
    (1200, 3.0),
    (2100, 3.0),
]


def simulate(config: FleetConfig, scenario: Scenario, profile: list[tuple[float, float]]) -> list[Sample]:
    duration = int(profile[-1][0])
    hpa = Autoscaler(config.behavior, config.min_replicas, config.max_replicas)
    # Each pod: (ready_at, cpu history as {second: utilisation}).
    pods: list[dict] = [{"ready_at": 0, "cpu": {}} for _ in range(config.min_replicas)]
    samples: list[Sample] = []
    rate_history: dict[int, float] = {}
    for t in range(duration + 1):
        offered = load_profile(profile, t) * config.capacity
        ready = [p for p in pods if p["ready_at"] <= t]
        if ready:
            per_pod = offered / len(ready)
            served_per_pod = min(per_pod, config.capacity)
            for p in ready:
                p["cpu"][t] = served_per_pod / config.capacity
            served = served_per_pod * len(ready)
            rate_history[t] = per_pod
        else:
            served = 0.0
        cpu = sum(p["cpu"].get(t, 0.0) for p in ready) / len(ready) if ready else 0.0
        samples.append(Sample(t, offered, served, offered - served, len(pods), len(ready), cpu))

        if t > 0 and t % config.sync_period_s == 0:
            usage, unready = [], 0
            window = range(t - config.metric_window_s + 1, t + 1)
            for p in pods:
                if p["ready_at"] > t - config.metric_window_s:
                    unready += 1
                    continue
                if scenario.metric == "cpu":
                    usage.append(sum(p["cpu"].get(s, 0.0) for s in window) / len(window))
                else:
                    # Requests per second reaching the pod, shed ones included (the server
                    # counts 503s in quarry_http_requests_total too).
                    usage.append(sum(rate_history.get(s, 0.0) for s in window) / len(window))
            raw = recommend(
                len(pods),
                usage,
                unready,
                scenario.target,
                config.tolerance,
                utilization=scenario.metric == "cpu",
            )
            desired = hpa.normalize(t, len(pods), raw)
            if desired > len(pods):
                pods += [{"ready_at": t + config.startup_s, "cpu": {}} for _ in range(desired - len(pods))]
            elif desired < len(pods):
                # The ReplicaSet removes not-ready and newest pods first.
                pods.sort(key=lambda p: p["ready_at"])
                del pods[desired:]
    return samples


# ---------------------------------------------------------------------------------------------
# Output


def write_csv(path: Path, runs: dict[str, list[Sample]]) -> None:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            ["scenario", "t_s", "offered_rps", "served_rps", "shed_rps", "replicas", "ready", "cpu_pct"]
        )
        for label, samples in runs.items():
            for s in samples[::5]:
                w.writerow(
                    [
                        label,
                        s.t,
                        round(s.offered),
                        round(s.served),
                        round(s.shed),
                        s.replicas,
                        s.ready,
                        round(100 * s.cpu, 1),
                    ]
                )


def plot(
    path: Path,
    config: FleetConfig,
    scenarios: Iterable[Scenario],
    runs: dict[str, list[Sample]],
    placeholder: bool,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(4, 1, figsize=(14, 11), sharex=True, constrained_layout=True)
    load_ax, rep_ax, cpu_ax, shed_ax = axes
    first = next(iter(runs.values()))
    minutes = [s.t / 60 for s in first]
    load_ax.plot(minutes, [s.offered / 1000 for s in first], color="black", label="offered load")
    colors = ["tab:blue", "tab:orange", "tab:green", "tab:red"]
    for color, sc in zip(colors, scenarios):
        run = runs[sc.label]
        load_ax.plot(
            minutes,
            [s.ready * config.capacity / 1000 for s in run],
            sc.style,
            color=color,
            label=f"ready capacity, {sc.label}",
        )
        rep_ax.plot(minutes, [s.replicas for s in run], sc.style, color=color, label=f"pods, {sc.label}")
        rep_ax.plot(minutes, [s.ready for s in run], ":", color=color, alpha=0.7)
        cpu_ax.plot(minutes, [100 * s.cpu for s in run], sc.style, color=color, label=sc.label)
        shed = [s.shed / 1000 for s in run]
        total = sum(s.shed for s in run) / sum(s.offered for s in run)
        shed_ax.plot(
            minutes, shed, sc.style, color=color, label=f"{sc.label}: {100 * total:.1f}% of all requests shed"
        )
    cpu_ax.axhline(80, color="grey", lw=0.8)
    cpu_ax.axhspan(72, 88, color="grey", alpha=0.15, label="80% target, 10% tolerance band")
    load_ax.set_ylabel("k req/s")
    rep_ax.set_ylabel("pods (solid: asked, dotted: ready)")
    cpu_ax.set_ylabel("per-pod CPU %")
    cpu_ax.set_ylim(0, 105)
    shed_ax.set_ylabel("shed k req/s")
    shed_ax.set_xlabel("minutes")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    cap = f"{config.capacity:,.0f} req/s per one-core pod"
    if placeholder:
        cap += " (PLACEHOLDER from hyper's ~4.8 us/request floor; replace with the measured figure from docs/bench)"
    fig.suptitle(
        f"HPA simulation: {cap}\npod startup {config.startup_s} s, sync {config.sync_period_s} s, "
        f"metric window {config.metric_window_s} s, minReplicas {config.min_replicas}, maxReplicas {config.max_replicas}",
        fontsize=10,
    )
    fig.savefig(path, dpi=110)
    plt.close(fig)


def parse_profile(text: str) -> list[tuple[float, float]]:
    points = []
    for item in text.split(","):
        t, v = item.split(":")
        points.append((float(t), float(v)))
    if any(b[0] < a[0] for a, b in itertools.pairwise(points)):
        raise argparse.ArgumentTypeError("profile times must not decrease")
    return points


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--capacity",
        type=float,
        default=PLACEHOLDER_CAPACITY,
        help="req/s one pod serves at 100%% of its core (default: 200000, a PLACEHOLDER to be "
        "replaced by the measured figure from docs/bench)",
    )
    parser.add_argument("--startup-s", type=int, default=30, help="HPA decision to pod ready (default 30)")
    parser.add_argument("--sync-period-s", type=int, default=15)
    parser.add_argument("--metric-window-s", type=int, default=15)
    parser.add_argument("--min-replicas", type=int, default=2)
    parser.add_argument("--max-replicas", type=int, default=48)
    parser.add_argument(
        "--hpa-yaml",
        type=Path,
        help="rendered manifests holding HorizontalPodAutoscaler/quarry-server: take behavior, "
        "min/maxReplicas and the CPU target from it (needs PyYAML)",
    )
    parser.add_argument(
        "--profile",
        type=parse_profile,
        default=DEFAULT_PROFILE,
        help="offered load as SECONDS:MULTIPLE_OF_CAPACITY,... (piecewise linear; repeat a time for a step)",
    )
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "docs" / "hpa" / "hpa-sim.png")
    parser.add_argument("--csv", type=Path, default=REPO_ROOT / "docs" / "hpa" / "hpa-sim.csv")
    args = parser.parse_args(argv)

    config = FleetConfig(
        capacity=args.capacity,
        startup_s=args.startup_s,
        sync_period_s=args.sync_period_s,
        metric_window_s=args.metric_window_s,
        min_replicas=args.min_replicas,
        max_replicas=args.max_replicas,
    )
    cpu_target = 0.8
    if args.hpa_yaml:
        import yaml

        docs = [d for d in yaml.safe_load_all(args.hpa_yaml.read_text()) if d]
        hpa = next(d for d in docs if d.get("kind") == "HorizontalPodAutoscaler")
        spec = hpa["spec"]
        config = replace(
            config,
            behavior=behavior_from_hpa(hpa),
            min_replicas=int(spec.get("minReplicas", 1)),
            max_replicas=int(spec["maxReplicas"]),
        )
        for m in spec.get("metrics", []):
            if m.get("type") == "Resource" and m["resource"]["name"] == "cpu":
                cpu_target = m["resource"]["target"]["averageUtilization"] / 100

    scenarios = [
        Scenario(f"CPU {cpu_target:.0%} target", "cpu", cpu_target, "-"),
        Scenario("CPU 60% target", "cpu", 0.6, "--"),
        Scenario("request rate, 0.7 x capacity per pod", "rps", 0.7 * config.capacity, "-."),
    ]
    runs = {sc.label: simulate(config, sc, args.profile) for sc in scenarios}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    plot(args.out, config, scenarios, runs, placeholder=args.capacity == PLACEHOLDER_CAPACITY)
    write_csv(args.csv, runs)
    for sc in scenarios:
        run = runs[sc.label]
        shed = sum(s.shed for s in run) / sum(s.offered for s in run)
        print(
            f"{sc.label:40s} peak pods {max(s.replicas for s in run):3d}  shed {100 * shed:5.2f}% of requests"
        )
    print(f"wrote {args.out} and {args.csv}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
