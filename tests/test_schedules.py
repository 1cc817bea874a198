import pytest

from effbench.schedules import SCHEDULES, constant, cosine, linear_decay, wsd


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
        values = [schedule(s, 50) for s in range(50)]
        assert all(0 <= v <= 1 for v in values), name
        assert max(values) == pytest.approx(1.0), name
