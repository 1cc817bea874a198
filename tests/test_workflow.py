"""The GPU benchmark workflow: nothing runs it before it reaches GitHub, so check what it would do here:
the shards it starts, the commands it calls (real ones of the CLI), the merge and the Pages deploy."""

import fnmatch
import json
import re
import shlex

import pytest
import yaml

from effbench.cli import cli
from tests.conftest import ROOT

WORKFLOW = ROOT / ".github" / "workflows" / "gpu-benchmarks.yml"
SHARD_SPEC = re.compile(r"EFFBENCH_SHARD[=:]\s*\$\{\{\s*matrix\.shard\s*\}\}/(\d+)")
EFFBENCH_COMMAND = re.compile(r"(?:^|[\s/])effbench\s+([a-z][\w-]*)")


@pytest.fixture(scope="module")
def workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def scripts(job: dict) -> list[str]:
    """Each step's shell script with its env, so a variable set either way is seen."""
    return ["\n".join([*(f"{k}={v}" for k, v in step.get("env", {}).items()), step["run"]])
            for step in job["steps"] if "run" in step]


def uses(job: dict, action: str) -> list[dict]:
    return [step for step in job["steps"] if step.get("uses", "").startswith(action + "@")]


def test_triggers(workflow):
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    # hours of GPU time: by hand or on a schedule, never on every push
    assert set(triggers) == {"workflow_dispatch", "schedule"} and triggers["schedule"][0]["cron"]


def test_bench_runs_every_shard_on_gpu_runners(workflow):
    bench = workflow["jobs"]["bench"]
    shards = bench["strategy"]["matrix"]["shard"]
    denominators = {int(n) for n in SHARD_SPEC.findall(WORKFLOW.read_text())}
    assert len(denominators) == 1, f"EFFBENCH_SHARD denominators disagree: {denominators}"
    assert shards == list(range(1, denominators.pop() + 1))
    assert bench["strategy"]["fail-fast"] is False
    assert {"self-hosted", "linux", "gpu"} <= set(bench["runs-on"])
    assert bench["timeout-minutes"] >= 360
    runs = [s for s in scripts(bench) if "asv run" in s]
    assert len(runs) == 1
    assert "EFFBENCH_GRID=gpu" in runs[0] and SHARD_SPEC.search(runs[0])
    assert "--python=same" in runs[0] and "--set-commit-hash" in runs[0]  # `make asv-smoke`'s form
    assert uses(bench, "actions/checkout")[0]["with"]["fetch-depth"] == 0


def test_bench_installs_real_extras_and_keeps_the_runners_torch(workflow):
    install = next(s for s in scripts(workflow["jobs"]["bench"]) if "pip install" in s)
    assert "--system-site-packages" in install
    extras = re.search(r'-e\s+"?\.\[([\w,-]+)\]', install).group(1).split(",")
    declared = re.search(r"\[project\.optional-dependencies\](.*?)\n\[", (ROOT / "pyproject.toml").read_text(),
                         re.S).group(1)
    assert all(re.search(rf"^{name}\s*=", declared, re.M) for name in extras), extras


def test_bench_ingests_and_uploads_each_shard_even_when_it_fails(workflow):
    bench = workflow["jobs"]["bench"]
    results_dir = json.loads((ROOT / "asv.conf.json").read_text())["results_dir"]
    ingest = next(step for step in bench["steps"] if "effbench ingest" in step.get("run", ""))
    assert results_dir in ingest["run"] and "shard-${{ matrix.shard }}.duckdb" in ingest["run"]
    assert ingest["if"] == "always()"
    (upload,) = uses(bench, "actions/upload-artifact")
    assert upload["uses"].endswith("@v4") and upload["if"] == "always()"
    assert "${{ matrix.shard }}" in upload["with"]["name"]
    assert results_dir in upload["with"]["path"] and "shard-${{ matrix.shard }}.duckdb" in upload["with"]["path"]


def test_publish_merges_the_shards_and_deploys_pages(workflow):
    publish = workflow["jobs"]["publish"]
    needs = publish["needs"]
    assert "bench" in ([needs] if isinstance(needs, str) else needs)
    assert "always()" in publish["if"] and publish["runs-on"] == "ubuntu-latest"
    (download,) = uses(publish, "actions/download-artifact")
    artifact = uses(workflow["jobs"]["bench"], "actions/upload-artifact")[0]["with"]["name"]
    artifact = artifact.replace("${{ matrix.shard }}", "")
    assert download["with"]["pattern"] == artifact + "*" and not download["with"].get("merge-multiple")
    text = "\n".join(scripts(publish))
    assert "download.pytorch.org/whl/cpu" in text
    merge = shlex.split(re.search(r"effbench merge --db results/effbench\.duckdb (.*)", text).group(1))
    for shard in workflow["jobs"]["bench"]["strategy"]["matrix"]["shard"]:  # where download-artifact puts it
        db = f"{download['with']['path']}/{artifact}{shard}/shard-{shard}.duckdb"
        assert any(fnmatch.fnmatch(db, source) for source in merge), (db, merge)
    assert "effbench site --db results/effbench.duckdb --out site" in text
    assert publish["permissions"]["pages"] == "write" and publish["permissions"]["id-token"] == "write"
    assert publish["environment"]["name"] == "github-pages"
    for action in ("actions/configure-pages", "actions/upload-pages-artifact", "actions/deploy-pages"):
        assert uses(publish, action), action
    assert uses(publish, "actions/upload-pages-artifact")[0]["with"]["path"] == "site"


def test_every_effbench_command_exists(workflow):
    named = {c for job in workflow["jobs"].values() for s in scripts(job) for c in EFFBENCH_COMMAND.findall(s)}
    assert {"ingest", "merge", "site"} <= named
    assert named <= set(cli.commands), f"not effbench commands: {sorted(named - set(cli.commands))}"
