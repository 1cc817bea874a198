import numpy as np
import pytest

from effbench.schedules import (
    SCHEDULES,
    constant,
    cosine,
    linear_decay,
    median_filtered,
    refined,
    refined_multipliers,
    wsd,
)


def test_known_values():
    assert constant(7, 10) == 1.0
    assert cosine(0, 10) == pytest.approx(1.0) and cosine(5, 10) == pytest.approx(0.5)
    assert cosine(10, 10) == pytest.approx(0.0, abs=1e-12)
    assert linear_decay(0, 4) == 1.0 and linear_decay(3, 4) == 0.25


def test_wsd_warms_up_holds_and_decays():
    values = [wsd(s, 100) for s in range(100)]
    assert values[0] == pytest.approx(0.2) and values[4] == 1.0  # 5 warmup steps
    assert all(v == 1.0 for v in values[5:80])
    assert values[80] == 1.0 and values[90] == pytest.approx(0.5) and values[99] == pytest.approx(0.05)


def test_every_schedule_starts_near_one_and_is_bounded():
    for name, schedule in SCHEDULES.items():
        if schedule.from_prior_run:
            continue
        values = [schedule(s, 50) for s in range(50)]
        assert all(0 <= v <= 1 for v in values), name
        assert max(values) == pytest.approx(1.0), name


def test_every_schedule_names_its_source():
    assert set(SCHEDULES) >= {"constant", "cosine", "linear_decay", "wsd", "refined"}
    for name, schedule in SCHEDULES.items():
        assert schedule.summary, name
        assert name == "constant" or schedule.arxiv, name


def test_refined_from_constant_norms_is_linear_decay():
    """w_t constant: eta_t ~ (T - 1 - t), peak 1 at t = 0, exactly 0 at the last step."""
    values = refined_multipliers([2.0] * 11)
    assert values.tolist() == pytest.approx([(10 - t) / 10 for t in range(11)])


def test_refined_by_hand_on_three_steps():
    """G = (1, 2, 1) unfiltered: w = (1, 1/4, 1), tails (5/4, 1, 0): eta = (5/4, 1/4, 0) / (5/4)."""
    values = refined_multipliers([1.0, 2.0, 1.0], width_fraction=0.0)
    assert values.tolist() == pytest.approx([1.0, 0.2, 0.0])


def test_refined_warms_up_when_norms_fall_early():
    """Large early gradient norms mean small early weights: the schedule starts low and rises."""
    norms = [10.0] * 20 + [1.0] * 80
    values = refined_multipliers(norms)
    assert values[0] < 0.05 and values.argmax() >= 15 and values[-1] == 0.0


def test_median_filter_removes_a_spike_and_keeps_the_length():
    norms = [1.0] * 50
    norms[25] = 100.0
    filtered = median_filtered(norms)
    assert len(filtered) == 50 and np.allclose(filtered, 1.0)


def test_refined_schedule_reads_other_lengths_at_the_same_fraction():
    schedule = refined([1.0] * 101)
    assert schedule(0, 101) == 1.0 and schedule(50, 101) == pytest.approx(0.5)
    assert schedule(100, 200) == pytest.approx(0.5)


def test_refined_rejects_bad_norms():
    with pytest.raises(ValueError):
        refined_multipliers([1.0])
    with pytest.raises(ValueError):
        refined_multipliers([1.0, float("nan"), 1.0], width_fraction=0.0)
    with pytest.raises(TypeError):
        SCHEDULES["refined"](0, 10)
