import pytest

from effbench.train import crossing


def test_crossing_interpolates_first_rise():
    steps, accs = [0, 10, 20, 30], [0.1, 0.5, 0.9, 0.95]
    assert crossing(steps, accs, 0.7) == pytest.approx(15.0)
    assert crossing(steps, accs, 0.9) == pytest.approx(20.0)
    assert crossing(steps, accs, 0.99) is None
    assert crossing(steps, accs, 0.05) == 0


def test_workload_is_deterministic_per_seed(registry):
    from effbench.runner import Case, execute, make_config

    task = registry.tasks["sampler/data_selection"]
    point = task.grids["smoke"][0]
    config = make_config("smoke", "cpu")
    runs = [execute(registry, Case(task.key, "loss_rank", "reference", point, "float32", "cpu", 3), config)
            for _ in range(2)]
    assert runs[0].metrics["final_metric"] == runs[1].metrics["final_metric"]
    assert [c[4] for c in runs[0].curve] == [c[4] for c in runs[1].curve]
    other = execute(registry, Case(task.key, "loss_rank", "reference", point, "float32", "cpu", 4), config)
    assert [c[4] for c in other.curve] != [c[4] for c in runs[0].curve]
