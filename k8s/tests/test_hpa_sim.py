"""Self-checks of bench/hpa_sim.py against cases worked out by hand from the HPA algorithm, and
of its built-in behavior against k8s/base/hpa.yaml."""

from __future__ import annotations

import importlib.util
import itertools
import math
import sys

import pytest
import render
import yaml

_spec = importlib.util.spec_from_file_location("hpa_sim", render.REPO_ROOT / "bench" / "hpa_sim.py")
sim = importlib.util.module_from_spec(_spec)
sys.modules["hpa_sim"] = sim
_spec.loader.exec_module(sim)


# --- replica calculation ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "utilisation,expected",
    [
        (0.88, 10),  # ratio 1.10: on the tolerance edge, no change
        (0.72, 10),  # ratio 0.90: on the other edge, no change
        (0.80, 10),
        (0.89, 12),  # ratio 1.1125 -> ceil(11.125)
        (0.71, 9),  # ratio 0.8875 -> ceil(8.875)
        (0.40, 5),
        (0.889, 10),  # truncated to 88%: inside the band although 88.9 / 80 = 1.111
    ],
)
def test_tolerance_band_at_80_percent(utilisation, expected) -> None:
    assert sim.recommend(10, [utilisation] * 10, 0, 0.8) == expected


@pytest.mark.parametrize("pods,expected", [(2, 3), (4, 5), (8, 10), (10, 13), (12, 15), (40, 50)])
def test_saturated_one_core_pods_grow_at_most_x1_25(pods, expected) -> None:
    # CPU of a one-core pod cannot exceed 100% of its request: ratio = 1.0 / 0.8 = 1.25.
    assert sim.recommend(pods, [1.0] * pods, 0, 0.8) == expected
    assert expected == math.ceil(pods * 1.25)


def test_unready_pods_count_as_idle_while_scaling_up() -> None:
    # 4 ready at 100% + 1 starting: (4 x 1.0) / (5 x 0.8) = 1.0 -> inside tolerance, keep 5.
    assert sim.recommend(5, [1.0] * 4, 1, 0.8) == 5
    # 4 ready at 100% + 1 starting, target 60%: 4 / (5 x 0.6) = 1.333 -> ceil(6.67) = 7.
    assert sim.recommend(5, [1.0] * 4, 1, 0.6) == 7


def test_unready_pods_are_ignored_when_scaling_down() -> None:
    # ratio 0.5 / 0.8 = 0.625 over the 4 ready pods -> ceil(2.5) = 3.
    assert sim.recommend(5, [0.5] * 4, 1, 0.8) == 3


def test_plain_metric_is_not_truncated() -> None:
    # Request rate: 10 pods at 889 req/s against 800: 1.111 > 1.1 -> ceil(11.11) = 12.
    assert sim.recommend(10, [889.0] * 10, 0, 800.0, utilization=False) == 12
    assert sim.recommend(10, [880.0] * 10, 0, 800.0, utilization=False) == 10


# --- behavior: rate policies and stabilisation -----------------------------------------------


def autoscaler(up: sim.Rules, down: sim.Rules, lo: int = 1, hi: int = 100) -> sim.Autoscaler:
    return sim.Autoscaler(sim.Behavior(up, down), lo, hi)


UP = (sim.Policy("Percent", 100, 15), sim.Policy("Pods", 4, 15))
DOWN_NONE = sim.Rules(0, "Max", (sim.Policy("Percent", 100, 15),))


@pytest.mark.parametrize("select,expected", [("Max", 20), ("Min", 14), ("Disabled", 10)])
def test_scale_up_select_policy(select, expected) -> None:
    a = autoscaler(sim.Rules(0, select, UP), DOWN_NONE)
    # Percent 100 -> 20, Pods 4 -> 14: Max takes the larger change, Min the smaller.
    assert a.normalize(0, 10, 30) == expected


def test_scale_up_limited_by_max_replicas() -> None:
    a = autoscaler(sim.Rules(0, "Max", UP), DOWN_NONE, hi=16)
    assert a.normalize(0, 10, 30) == 16


def test_scale_up_period_counts_earlier_events() -> None:
    a = autoscaler(sim.Rules(0, "Min", UP), DOWN_NONE)
    assert a.normalize(0, 10, 30) == 14  # +4 at t=0
    # At t=10 the period began at 14 - 4 = 10 replicas: Pods 4 allows 14 again, no growth.
    assert a.normalize(10, 14, 30) == 14
    # At t=16 the t=0 event left the 15 s period: 14 + 4 = 18.
    assert a.normalize(16, 14, 30) == 18


def test_scale_down_waits_for_the_stabilisation_window() -> None:
    down = sim.Rules(300, "Max", (sim.Policy("Percent", 20, 60),))
    a = autoscaler(sim.Rules(0, "Max", UP), down)
    assert a.normalize(0, 10, 10) == 10
    # The t=0 recommendation of 10 is inside the 300 s window: keep 10.
    assert a.normalize(100, 10, 6) == 10
    assert a.normalize(200, 10, 6) == 10
    # At t=301 it has left the window; the 20%/60 s policy allows int(10 x 0.8) = 8.
    assert a.normalize(301, 10, 6) == 8
    # 40 s later the period still counts the -2: start 10 -> 8 again, no further step.
    assert a.normalize(341, 8, 6) == 8
    assert a.normalize(362, 8, 6) == 6  # start 8 -> int(6.4) = 6


@pytest.mark.parametrize("select,expected", [("Max", 8), ("Min", 9)])
def test_scale_down_select_policy(select, expected) -> None:
    down = sim.Rules(0, select, (sim.Policy("Percent", 20, 60), sim.Policy("Pods", 1, 60)))
    a = autoscaler(sim.Rules(0, "Max", UP), down)
    # Percent 20 -> 8, Pods 1 -> 9: Max takes the larger change (8), Min the smaller (9).
    assert a.normalize(0, 10, 2) == expected


def test_scale_down_respects_min_replicas() -> None:
    a = autoscaler(sim.Rules(0, "Max", UP), DOWN_NONE, lo=2)
    assert a.normalize(0, 4, 1) == 2


# --- the simulation as a whole ----------------------------------------------------------------


def run(metric: str, target: float, profile) -> list:
    config = sim.FleetConfig(capacity=1000.0, startup_s=30)
    return sim.simulate(config, sim.Scenario("t", metric, target), profile)


def test_load_is_served_or_shed_never_lost() -> None:
    for s in run("cpu", 0.8, sim.DEFAULT_PROFILE):
        assert s.served + s.shed == pytest.approx(s.offered)
        assert s.served <= s.ready * 1000.0 + 1e-6
        assert 0.0 <= s.cpu <= 1.0


def test_cpu_scaled_fleet_grows_at_most_x1_25_per_decision() -> None:
    samples = run("cpu", 0.8, sim.DEFAULT_PROFILE)
    for before, after in itertools.pairwise(samples):
        if after.replicas > before.replicas:
            assert after.replicas <= math.ceil(before.replicas * 1.25)


def test_steady_load_inside_tolerance_keeps_the_fleet() -> None:
    # 1.7 pods' worth over 2 pods = 85%: inside 72-88%, so nothing moves.
    samples = run("cpu", 0.8, [(0, 1.7), (600, 1.7)])
    assert {s.replicas for s in samples} == {2}
    assert sum(s.shed for s in samples) == 0


def test_request_rate_metric_follows_a_burst_in_one_step() -> None:
    # From 2 pods at 50% to 8 pods' worth of load: the rate metric sees 4 pods' worth per pod,
    # i.e. a ratio far above the x1.25 a saturated CPU metric can show.
    profile = [(0, 1.0), (60, 1.0), (60, 8.0), (600, 8.0)]
    by_rate = run("rps", 700.0, profile)
    by_cpu = run("cpu", 0.8, profile)
    first_change = next(s for s in by_rate if s.replicas > 2)
    assert first_change.replicas >= 6  # capped by the Pods 4 / Percent 100 policies (Max)
    assert sum(s.shed for s in by_rate) < sum(s.shed for s in by_cpu)


# --- the simulator's behavior is the manifest's ----------------------------------------------


def test_builtin_behavior_matches_base_manifest() -> None:
    doc = yaml.safe_load((render.K8S_DIR / "base" / "hpa.yaml").read_text())
    assert sim.behavior_from_hpa(doc) == sim.QUARRY_BEHAVIOR
    assert doc["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 80
