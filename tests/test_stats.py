import math

import pytest

from effbench.stats import compare, performance_profile


def test_welch_known_answer():
    # a: mean 2, var 1; b: mean 5, var 1; n = 3 each -> t = -3 / sqrt(2/3) = -3.674, df = 4
    result = compare([1.0, 2.0, 3.0], [4.0, 5.0, 6.0])
    assert result.delta == pytest.approx(-3.0)
    assert result.p_value == pytest.approx(0.021311641128756723, rel=1e-9)
    assert result.significant and not result.better  # significantly worse when higher is better
    assert compare([1.0, 2.0, 3.0], [4.0, 5.0, 6.0], higher_is_better=False).better


def test_no_difference_is_not_significant():
    result = compare([1.0, 2.0, 3.0], [1.5, 2.0, 2.5])
    assert result.p_value == pytest.approx(1.0)
    assert not result.significant and not result.better


def test_zero_variance_cases():
    assert compare([2.0, 2.0], [2.0, 2.0]).p_value == 1.0
    different = compare([3.0, 3.0], [2.0, 2.0])
    assert different.p_value == 0.0 and different.better


def test_too_few_seeds():
    with pytest.raises(ValueError, match="at least 2"):
        compare([1.0], [1.0, 2.0])


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
