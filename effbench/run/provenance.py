"""Where a run's numbers come from: the machine, device, versions, peers and git commit of a run
(``new_run``), the tasks and methods it ran (``task_infos``, ``method_infos``), and the fingerprint that
makes two invocations the same run (``plan_fingerprint``).
"""

from __future__ import annotations

import hashlib
import json
import platform
import secrets
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import torch

from effbench import __version__, metrics
from effbench.registry import (
    Registry,
)
from effbench.rows import (
    MethodInfo,
    Run,
    TaskInfo,
)
from effbench.run.plan import Case, RunConfig, _config_dict
from effbench.tasks import WorkloadTask


def _git(*args: str) -> str | None:
    """git about the checkout effbench runs from (not the working directory: asv runs suites in a
    temporary one); None when effbench is not in a git checkout."""
    try:
        out = subprocess.run(["git", *args], capture_output=True, text=True, timeout=10, check=True,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _cpu_name() -> str | None:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _triton_version() -> str | None:
    try:
        import triton

        return triton.__version__
    except ImportError:
        return None


# The published implementations a run may compare against (and Triton, which ours need): their versions
# are part of every run's provenance.
PEER_PACKAGES = ("triton", "pytorch-optimizer", "schedulefree", "cut-cross-entropy", "liger-kernel", "flash-attn",
                 "xformers")


def peer_versions() -> dict[str, str]:
    """{package: version} of the peer packages installed here (absent ones left out)."""
    from importlib import metadata

    found = {}
    for name in PEER_PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def gpu_state() -> tuple[str | None, str | None]:
    """(driver version, JSON of the first GPU's SM and memory clocks in MHz) from NVML, when pynvml is there
    (``pip install effbench[gpu]``); clocks decide what a GPU time means, and a throttled GPU is slower."""
    try:
        import pynvml
    except ImportError:
        return None, None
    try:
        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        driver = pynvml.nvmlSystemGetDriverVersion()
        clocks = {
            "sm_mhz": pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_SM),
            "sm_max_mhz": pynvml.nvmlDeviceGetMaxClockInfo(handle, pynvml.NVML_CLOCK_SM),
            "mem_mhz": pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_MEM),
            "mem_max_mhz": pynvml.nvmlDeviceGetMaxClockInfo(handle, pynvml.NVML_CLOCK_MEM),
        }
    except Exception:  # noqa: BLE001 - NVML missing or refusing: provenance unknown, the run goes on
        return None, None
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:  # noqa: BLE001 - never initialised
            pass
    driver = driver.decode() if isinstance(driver, bytes) else str(driver)
    return driver, json.dumps(clocks, sort_keys=True)


def new_run(config: RunConfig, command: str, source: str = "effbench") -> Run:
    """Provenance of a run on this machine."""
    now = datetime.now(timezone.utc)
    driver, clocks = gpu_state() if config.device == "cuda" else (None, None)
    return Run(
        run_id=f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}",
        started_at=now.isoformat(timespec="seconds"),
        git_commit=_git("rev-parse", "HEAD"),
        git_branch=_git("rev-parse", "--abbrev-ref", "HEAD"),
        machine=platform.node(),
        device=config.device,
        # a Ray driver need not have the GPU its cases run on: each row names its node's (``this_node``)
        gpu_name=torch.cuda.get_device_name() if config.device == "cuda" and torch.cuda.is_available() else None,
        cpu_name=_cpu_name(),
        num_threads=torch.get_num_threads(),
        python_version=platform.python_version(),
        torch_version=torch.__version__,
        triton_version=_triton_version(),
        cuda_version=torch.version.cuda,
        effbench_version=__version__,
        grid=config.grid,
        source=source,
        command=command,
        peers=json.dumps(peer_versions(), sort_keys=True),
        driver_version=driver,
        gpu_clocks=clocks,
    )


@dataclass(frozen=True)
class Node:
    """The machine a case ran on, as its result rows record it: host name and the model of the case's device."""

    host: str
    hardware: str | None  # the GPU's name on a cuda run (the first visible GPU), else the CPU's model


def this_node(device: str) -> Node:
    """This machine, for cases on ``device`` ("cpu" or "cuda"); what each result row's ``node`` columns hold."""
    if device == "cuda" and torch.cuda.is_available():
        return Node(platform.node(), torch.cuda.get_device_name(0))
    return Node(platform.node(), _cpu_name() if device == "cpu" else None)


def task_info(registry: Registry, key: str) -> TaskInfo:
    """What the store keeps of registered task ``key``."""
    task = registry.tasks[key]
    workload = isinstance(task, WorkloadTask)
    baseline = task.baseline if workload else None
    impls = registry.methods[(key, baseline)].impls if (key, baseline) in registry.methods else {}
    baseline_impl = ("reference" if "reference" in impls else next(iter(impls))) if impls else None
    compare = [[m, task.metric(m).higher_is_better] for m in task.compare] if workload else []
    return TaskInfo(task.family, key, task.kind, baseline, baseline_impl, json.dumps(compare),
                    task.target if workload else "", task.description, json.dumps(list(task.sizes)),
                    metrics.to_json(task.metric_table))


def task_infos(registry: Registry, cases: Sequence[Case]) -> list[TaskInfo]:
    return [task_info(registry, key) for key in sorted({c.task for c in cases})]


def method_infos(registry: Registry, cases: Sequence[Case]) -> list[MethodInfo]:
    seen = sorted({(c.task, c.method) for c in cases})
    infos = []
    for key in seen:
        m = registry.methods[key]
        infos.append(MethodInfo(m.family, m.task, m.name, ",".join(m.impls), m.paper, m.arxiv, m.summary))
    return infos


def plan_fingerprint(config: RunConfig, cases: Sequence[Case], plugins: Sequence[str] = ()) -> str:
    """What makes two invocations the same run: the configuration, the cases, the plugins and the commit.
    A run is resumed only by an invocation with the same fingerprint."""
    payload = json.dumps({
        "config": _config_dict(config),
        "cases": sorted(c.key for c in cases),
        "plugins": sorted(plugins),
        "commit": _git("rev-parse", "HEAD"),
    }, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]
