"""``EFFBENCH_SHARD=i/N`` for the asv suites: the shards' cases partition the unsharded suite's, as
``effbench run --shard`` splits them, and the benchmark definitions stay the same on every shard."""

import os
import subprocess
import sys

import pytest
from asv_runner.benchmarks.mark import SkipNotImplemented

from effbench import asv_suites
from effbench.run.case import CaseResult
from effbench.run.plan import make_config, plan, shard_of
from tests.conftest import ROOT

SHARDS = 4


def labels(cases) -> list[str]:
    return [c.label() for c in cases]


def test_suite_cases_partition_every_task(registry):
    config = make_config("cpu", "cpu")
    for key in registry.tasks:
        whole = labels(asv_suites.suite_cases(registry, key, config, None))
        parts = [labels(asv_suites.suite_cases(registry, key, config, (i, SHARDS))) for i in range(1, SHARDS + 1)]
        assert sum(len(p) for p in parts) == len(whole) == len(set().union(*parts)), key  # disjoint, complete
        assert sorted(whole) == sorted(set().union(*parts)), key


def test_suite_shards_are_effbench_run_shards(registry):
    """The same split as ``effbench run --shard``: cut the whole plan, then take one task's cases."""
    config = make_config("cpu", "cpu")
    everything = plan(registry, config)
    for index in range(1, SHARDS + 1):
        of_run = shard_of(registry, everything, index, SHARDS)
        for key in registry.tasks:
            suite = labels(asv_suites.suite_cases(registry, key, config, (index, SHARDS)))
            assert suite == [c.label() for c in of_run if c.task == key]


@pytest.mark.parametrize("task_key", ["optimizer/step", "sampler/data_selection"])
def test_setup_cache_runs_only_its_shard(task_key, monkeypatch):
    """setup_cache on each shard (the session replaced by a recorder): the caches split the unsharded
    one, params never change, and a combination of another shard skips."""
    ran: list[str] = []

    def fake_run(registry, config, cases, shard_dir, on_case, **_):
        for case in cases:
            ran.append(case.label())
            on_case(case, CaseResult("ok", metrics={"time_ms": 1.0}))

    monkeypatch.setattr(asv_suites.session, "run", fake_run)
    monkeypatch.delenv("EFFBENCH_SHARD", raising=False)
    monkeypatch.setenv("EFFBENCH_GRID", "smoke")
    whole_suite = asv_suites.make_suite(task_key)
    whole_cache = whole_suite.setup_cache(whole_suite())
    whole_ran, ran[:] = list(ran), []
    caches = []
    for index in range(1, SHARDS + 1):
        monkeypatch.setenv("EFFBENCH_SHARD", f"{index}/{SHARDS}")
        suite = asv_suites.make_suite(task_key)
        assert suite.params == whole_suite.params and suite.version == whole_suite.version
        cache = suite.setup_cache(suite())
        caches.append(cache)
        for combination in whole_cache:
            if combination in cache:
                suite.setup(suite(), cache, *combination, "smoke")
            else:
                with pytest.raises(SkipNotImplemented, match=f"not in shard {index}/{SHARDS}"):
                    suite.setup(suite(), cache, *combination, "smoke")
    assert sum(len(c) for c in caches) == len(whole_cache) == len(set().union(*caches))
    assert sorted(ran) == sorted(whole_ran) and len(set(ran)) == len(ran)  # every case once, on one shard
    assert sum(1 for c in caches if c) > 1  # really split, not all on one shard


@pytest.mark.parametrize("spec", ["0/4", "5/4", "x/4", "2"])
def test_bad_shard_is_one_line(spec, monkeypatch):
    monkeypatch.setenv("EFFBENCH_SHARD", spec)
    with pytest.raises(SystemExit, match="EFFBENCH_SHARD: bad shard"):
        asv_suites.make_suite("optimizer/step")


def test_bad_shard_stops_benchmark_import_with_one_line():
    """What asv's discovery shows: the import of benchmarks/ exits with one line, no traceback."""
    proc = subprocess.run([sys.executable, "-c", "import benchmarks.optimizer"], cwd=ROOT, capture_output=True,
                          text=True, env=dict(os.environ, EFFBENCH_SHARD="3/2"), timeout=120)
    assert proc.returncode != 0
    assert proc.stderr.strip() == "EFFBENCH_SHARD: bad shard '3/2': i must be between 1 and N"
