"""`effbench run --shard i/N`: a deterministic partition of the plan that keeps comparisons together."""

import pytest
from click.testing import CliRunner

from effbench.cli import cli
from effbench.registry import UsageError
from effbench.run.plan import make_config, parse_shard, plan, shard_of


def test_shards_partition_the_plan_and_keep_groups_together(registry):
    cases = plan(registry, make_config("cpu", "cpu", seeds=3))
    shards = [shard_of(registry, cases, i, 4) for i in range(1, 5)]
    keys = [{c.label() + str(c.seed) for c in s} for s in shards]
    assert sum(len(k) for k in keys) == len(cases) == len(set().union(*keys))  # disjoint, complete
    assert all(len(s) > 0.1 * len(cases) for s in shards)  # roughly balanced
    assert [c.label() for c in shard_of(registry, list(reversed(cases)), 2, 4)] == \
        [c.label() for c in reversed(shards[1])]  # by hash, not by position
    where = {}
    for i, s in enumerate(shards):
        for c in s:
            kernel = registry.tasks[c.task].kind == "kernel"
            group = (c.task, c.method if kernel else "", c.point_key, c.dtype, c.device)
            assert where.setdefault(group, i) == i, group  # seeds, impls (and a workload point's methods) together


@pytest.mark.parametrize("spec", ["0/3", "4/3", "a/b", "3", "1/0", "-1/2"])
def test_bad_shard_specs_are_one_line(spec):
    with pytest.raises(UsageError):
        parse_shard(spec)
    result = CliRunner().invoke(cli, ["run", "--grid", "smoke", "--shard", spec])
    assert result.exit_code != 0 and "bad shard" in result.output and "Traceback" not in result.output


def test_parse():
    assert parse_shard("2/4") == (2, 4) and parse_shard("1/1") == (1, 1)
