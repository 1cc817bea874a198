import math

import pytest

from effbench.stats import performance_profile


def test_performance_profile_known_answer():
    costs = {
        "w1": {"a": 10.0, "b": 20.0},  # ratios a 1, b 2
        "w2": {"a": 30.0, "b": 15.0},  # ratios a 2, b 1
        "w3": {"a": 5.0, "b": None},  # b never reaches the target
        "w4": {"a": None, "b": None},  # nobody does
    }
    profile = performance_profile(costs, taus=[1.0, 1.5, 2.0, math.inf])
    assert profile["a"] == pytest.approx([0.5, 0.5, 0.75, 0.75])
    assert profile["b"] == pytest.approx([0.25, 0.25, 0.5, 0.5])


def test_performance_profile_empty():
    assert performance_profile({}, [1.0]) == {}


def test_profiles_from_result_rows():
    import polars as pl

    from effbench.analysis import performance_profiles

    def row(method, point, seed, value):
        return {"task": "sampler/x", "point_key": point, "device": "cpu", "method": method, "impl": "reference",
                "metric": "steps_to_target", "seed": seed, "value": value}

    frame = pl.DataFrame([
        row("a", "p1", 0, 10.0), row("a", "p1", 1, 12.0), row("b", "p1", 0, 22.0), row("b", "p1", 1, 22.0),
        row("a", "p2", 0, None), row("a", "p2", 1, 5.0), row("b", "p2", 0, 8.0), row("b", "p2", 1, 8.0),
    ])
    profile = performance_profiles(frame, taus=(1.0, 2.0))
    rho = {(r["method"], r["tau"]): r["rho"] for r in profile.iter_rows(named=True)}
    # p1: a costs 11 (best), b 22 (ratio 2); p2: a missed on one seed, b 8 (best)
    assert rho[("a/reference", 1.0)] == 0.5 and rho[("a/reference", 2.0)] == 0.5
    assert rho[("b/reference", 1.0)] == 0.5 and rho[("b/reference", 2.0)] == 1.0
    assert set(profile["task"]) == {"sampler/x"} and set(profile["workloads"]) == {2}


def test_profiles_are_per_task_never_pooled():
    import polars as pl

    from effbench.analysis import performance_profiles

    def row(task, method, value, status="ok"):
        return {"task": task, "point_key": "p", "device": "cpu", "method": method, "impl": "reference",
                "metric": "steps_to_target", "seed": 0, "value": value, "status": status}

    frame = pl.DataFrame([row("optimizer/t", "adamw", 10.0), row("optimizer/t", "lion", 20.0),
                          row("sampler/s", "uniform", 50.0), row("sampler/s", "rho_loss", 5.0, "error")])
    rho = {(r["task"], r["method"], r["tau"]): r["rho"] for r in performance_profiles(frame, taus=(1.0,)).iter_rows(
        named=True)}
    # pooled, uniform (50 steps) would be 5x worse than adamw; per task it is the best of its own
    assert rho == {("optimizer/t", "adamw/reference", 1.0): 1.0, ("optimizer/t", "lion/reference", 1.0): 0.0,
                   ("sampler/s", "uniform/reference", 1.0): 1.0, ("sampler/s", "rho_loss/reference", 1.0): 0.0}
