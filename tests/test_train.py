import math

import pytest
import torch

from effbench.data import copying, digits, teacher_student
from effbench.evaluation import crossing, outcome_from_curve
from effbench.methods.losses.linear_cross_entropy import chunked
from effbench.plugs import Budget, Plugs, adamw
from effbench.tasks import CurveRecord
from effbench.train import train, tune_lr
from effbench.workloads import build_model


def test_crossing_interpolates_first_rise():
    steps, accs = [0, 10, 20, 30], [0.1, 0.5, 0.9, 0.95]
    assert crossing(steps, accs, 0.7) == pytest.approx(15.0)
    assert crossing(steps, accs, 0.9) == pytest.approx(20.0)
    assert crossing(steps, accs, 0.99) is None
    assert crossing(steps, accs, 0.05) == 0


def test_missed_target_is_recorded_as_missing():
    curve = [CurveRecord(0, 0.0, None, 2.0, 0.1), CurveRecord(10, 1.0, 1.0, 1.5, 0.4)]
    outcome = outcome_from_curve(curve, target=0.9, steps=10)
    assert outcome.metrics["steps_to_target"] is None and outcome.metrics["time_to_target_s"] is None
    assert "not reached" in outcome.notes["steps_to_target"]
    assert outcome.metrics["final_metric"] == 0.4


def run(data, model_name, seed=0, plugs=None, steps=30, lr=0.05, **kw):
    model = build_model(model_name, data, seed, hidden=kw.pop("hidden", 32))
    return train(model, data, plugs or Plugs(), Budget(steps, 16, 10, kw.pop("pool", None)), lr, 0.5, seed)


def test_same_seed_same_curve_and_separate_seeds():
    data = digits()
    a, b = run(data, "mlp", seed=3), run(data, "mlp", seed=3)
    assert [(c.step, c.train_loss, c.eval_loss, c.eval_metric) for c in a.curve] == \
           [(c.step, c.train_loss, c.eval_loss, c.eval_metric) for c in b.curve]
    c = run(data, "mlp", seed=4)
    assert [x.eval_metric for x in c.curve] != [x.eval_metric for x in a.curve]
    assert [x.step for x in a.curve] == [0, 10, 20, 30]


def test_regression_and_lm_workloads_learn():
    reg = run(teacher_student(n_train=256, n_eval=64, dim=8, hidden=16, noise=0.0), "mlp", steps=60, lr=0.05)
    assert reg.curve[-1].eval_metric > reg.curve[0].eval_metric  # R^2 rises
    data = copying(length=4, vocab=5, n_train=256, n_eval=64)
    lm = run(data, "lm_nano", steps=40, lr=3e-3, plugs=Plugs(optimizer=adamw))
    assert lm.curve[-1].eval_loss < lm.curve[0].eval_loss


def test_lm_head_plug_gets_hidden_states_and_matches_the_reference_loss():
    data = copying(length=4, vocab=5, n_train=64, n_eval=16)
    seen = []

    def fused_head(hidden, weight, targets, ignore_index):
        seen.append((hidden.shape, weight.shape))
        return chunked(hidden, weight, targets, ignore_index=ignore_index)

    with_plug = run(data, "lm_nano", steps=10, lr=3e-3, plugs=Plugs(loss=fused_head, optimizer=adamw))
    reference = run(data, "lm_nano", steps=10, lr=3e-3, plugs=Plugs(optimizer=adamw))
    assert seen and seen[0] == ((16 * 8, 64), (6, 64))  # (B*T, D) and the tied (V, D) head
    # per-sequence-mean vs token-mean differ only by weighting; both train the same model
    assert with_plug.curve[-1].eval_loss == pytest.approx(reference.curve[-1].eval_loss, rel=0.05)


def test_schedule_and_optimizer_plugs_are_applied():
    lrs = []

    class Spy(torch.optim.SGD):
        def step(self, closure=None):
            lrs.append(self.param_groups[0]["lr"])
            return super().step(closure)

    plugs = Plugs(optimizer=lambda params, lr: Spy(params, lr=lr), schedule=lambda step, total: 1 - step / total)
    run(digits(), "logreg", steps=4, lr=0.1, plugs=plugs)
    assert lrs == pytest.approx([0.1, 0.075, 0.05, 0.025])


def test_selection_plug_sees_the_pool_and_weights_count():
    pools = []

    def first_half_weighted(pool, k, generator):
        pools.append(pool.size)
        losses = pool.losses()  # scoring is counted
        return torch.arange(k), torch.linspace(1, 2, k) * (losses[:k] > -1)

    outcome = run(digits(), "mlp", steps=5, pool=64, plugs=Plugs(select=first_half_weighted))
    assert pools == [64] * 5
    assert outcome.metrics["examples_seen"] == 5 * 16 and outcome.metrics["examples_scored"] == 5 * 64


def test_tuning_picks_the_fastest_lr_on_one_seed():
    calls = []

    def fake(lr, seed):
        calls.append((lr, seed))
        steps = {0.01: None, 0.1: 50.0, 1.0: 20.0}[lr]
        curve = [CurveRecord(0, 0.0, None, 1.0, 0.0), CurveRecord(100, 1.0, 0.5, 0.5, 0.9 if steps else 0.3)]
        out = outcome_from_curve(curve, 0.5, 100)
        out.metrics["steps_to_target"] = steps
        return out

    best, trials = tune_lr(fake, [0.01, 0.1, 1.0], seed=0)
    assert best == 1.0 and [c[1] for c in calls] == [0, 0, 0] and len(trials) == 3


def test_tuned_workload_records_its_lr(registry):
    from effbench.run.case import execute
    from effbench.run.plan import Case, make_config

    point = dict(registry.tasks["sampler/data_selection"].grids["smoke"][0])
    point.pop("lr")
    point["lrs"] = "0.01,0.1"
    case = Case("sampler/data_selection", "uniform", "reference", point, "float32", "cpu", 1)
    result = execute(registry, case, make_config("smoke", "cpu"))
    assert result.status == "ok", result.message
    assert result.metrics["lr"] in (0.01, 0.1)
    assert "best of 2 lrs on tuning seed 10000" in result.notes["lr"]  # inline, outside the runner
    assert math.isfinite(result.metrics["final_metric"])
