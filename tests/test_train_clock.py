"""The step clock measures a step's device work, not its kernel launches (issue 18, item 6).

A CPU-only CI has no asynchronous device, so these tests fake one on "cpu": its kernels
(forward, backward, optimizer step) are queued device work that only finishes when the host
waits for it (``SYNCHRONIZE``), and ``effbench.train``'s ``time`` is a fake clock that moves
only when the host waits or does timed bookkeeping. A step's measured time is then exactly
the device work queued inside it: a loop that stops its clock without waiting measures 0
(kernel launches), one that waits at the wrong place charges or drops the wrong work.
"""

from __future__ import annotations

import importlib
import types
from collections.abc import Iterable, Iterator
from typing import Any

import pytest
import torch

from effbench.data import Dataset
from effbench.minimize import minimize
from effbench.plugs import Budget, Plugs
from effbench.train import StepClock, synchronizer, train

train_module = importlib.import_module("effbench.train")  # the module; `effbench.train.train` is the function

FORWARD, BACKWARD, OPTIMIZER = 0.003, 0.020, 0.005  # seconds of device work each kernel queues
NORMS, BOOKKEEPING = 0.007, 0.050  # the gradient norm's device work and host time: never the step's
STEP = FORWARD + BACKWARD + OPTIMIZER


class FakeDevice:
    """An asynchronous device on a fake clock: work runs in order after it is queued; the host
    waits (the clock jumps to the queue's end) only in ``synchronize``."""

    def __init__(self) -> None:
        self.now = 0.0  # the host's clock
        self.busy_until = 0.0  # when the queued work finishes
        self.syncs = 0

    def enqueue(self, seconds: float) -> None:
        self.busy_until = max(self.busy_until, self.now) + seconds

    def synchronize(self, device: torch.device) -> None:
        self.syncs += 1
        self.now = max(self.now, self.busy_until)

    def host(self, seconds: float) -> None:
        self.now += seconds

    def perf_counter(self) -> float:
        return self.now


class Queued(torch.autograd.Function):
    """Identity whose forward and backward each queue device work."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, device: FakeDevice) -> torch.Tensor:
        device.enqueue(FORWARD)
        ctx.device = device
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        ctx.device.enqueue(BACKWARD)
        return grad, None


class QueuedLinear(torch.nn.Module):
    def __init__(self, device: FakeDevice) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(4, 3)
        self.fake = device

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return Queued.apply(self.linear(x), self.fake)


@pytest.fixture
def device(monkeypatch: pytest.MonkeyPatch) -> FakeDevice:
    fake = FakeDevice()
    monkeypatch.setitem(train_module.SYNCHRONIZE, "cpu", fake.synchronize)
    monkeypatch.setattr(train_module, "time", types.SimpleNamespace(perf_counter=fake.perf_counter))
    original = train_module.observe_gradients

    def slow_observe(params: Iterable[torch.Tensor], norms: list[float]) -> object:
        def bookkeeping() -> Iterator[torch.Tensor]:
            # inside the norm computation: like its float() on a GPU, it waits for the queued work
            # (the backward), then takes host time and queues device work of its own
            fake.synchronize(torch.device("cpu"))
            fake.host(BOOKKEEPING)
            fake.enqueue(NORMS)
            yield from params

        return original(bookkeeping(), norms)

    monkeypatch.setattr(train_module, "observe_gradients", slow_observe)
    return fake


def queued_sgd(device: FakeDevice):
    def make(params: list[torch.nn.Parameter], lr: float) -> torch.optim.Optimizer:
        optimizer = torch.optim.SGD(params, lr=lr)
        optimizer.register_step_post_hook(lambda *_: device.enqueue(OPTIMIZER))
        return optimizer

    return make


def tiny_data() -> Dataset:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(48, 4, generator=gen)
    y = torch.randint(3, (48,), generator=gen)
    return Dataset("tiny", "classify", x[:32], y[:32], x[32:], y[32:], 3, "accuracy", "tiny")


@pytest.mark.parametrize("norms", [False, True], ids=["plain", "grad_norms"])
def test_train_step_time_is_the_device_work_queued_in_the_step(device: FakeDevice, norms: bool) -> None:
    torch.manual_seed(0)
    plugs = Plugs(optimizer=queued_sgd(device), grad_norms=[] if norms else None)
    steps = 4
    outcome = train(QueuedLinear(device), tiny_data(), plugs, Budget(steps, 8, 2), 0.1, 0.9, 0)
    # forward + backward + optimizer of every step; the evaluations' forwards and the gradient
    # norm's work and host time are outside the steps
    assert outcome.metrics["time_per_step_ms"] == pytest.approx(1e3 * STEP)
    assert [c.wall_s for c in outcome.curve] == pytest.approx([0.0, 2 * STEP, 4 * STEP])
    assert len(plugs.grad_norms or []) == (steps if norms else 0)


@pytest.mark.parametrize("norms", [False, True], ids=["plain", "grad_norms"])
def test_minimize_step_time_is_the_device_work_queued_in_the_step(device: FakeDevice, norms: bool) -> None:
    plugs = Plugs(optimizer=queued_sgd(device), grad_norms=[] if norms else None)

    def objective(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        return Queued.apply(x, device).square().sum()

    outcome = minimize(objective, torch.ones(3), plugs, steps=4, eval_every=2, lr=0.1, target=None, seed=0)
    assert outcome.metrics["time_per_step_ms"] == pytest.approx(1e3 * STEP)
    assert [c.wall_s for c in outcome.curve] == pytest.approx([0.0, 2 * STEP, 4 * STEP])


def test_excluded_block_keeps_the_queued_work_in_the_step(device: FakeDevice) -> None:
    clock = StepClock("cpu")
    clock.start()
    device.enqueue(BACKWARD)  # launched, not finished
    with clock.excluded():
        device.enqueue(NORMS)
        device.host(BOOKKEEPING)
    device.enqueue(OPTIMIZER)
    clock.stop()
    assert clock.elapsed == pytest.approx(BACKWARD + OPTIMIZER)
    assert device.syncs == 4


def test_cpu_never_waits_for_cuda_and_cuda_waits_for_its_own_device(monkeypatch: pytest.MonkeyPatch) -> None:
    waited: list[torch.device | None] = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: waited.append(device))
    synchronizer("cpu")(torch.device("cpu"))
    data = tiny_data()
    model = torch.nn.Linear(4, 3)
    outcome = train(model, data, Plugs(grad_norms=[]), Budget(2, 8, 2), 0.1, 0.9, 0)
    assert waited == [] and outcome.metrics["time_per_step_ms"] > 0
    synchronizer("cuda:1")(torch.device("cuda:1"))  # no CUDA needed: the call is recorded
    assert waited == [torch.device("cuda:1")]
