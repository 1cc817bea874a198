"""The GPU benchmark workflow: nothing runs it before it reaches GitHub, so check what it would do here:
the shards it starts, the commands it calls (real ones of the CLI), the merge and the Pages deploy."""

import dataclasses
import json
import re
import shlex
import subprocess
import sys

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
    assert upload["if"] == "always()"
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
    assert download["with"]["path"] == "shards"  # where the merge step looks (run for real below)
    assert "effbench site --db results/effbench.duckdb --out site" in text
    assert publish["permissions"]["pages"] == "write" and publish["permissions"]["id-token"] == "write"
    assert publish["environment"]["name"] == "github-pages"
    for action in ("actions/configure-pages", "actions/upload-pages-artifact", "actions/deploy-pages"):
        assert uses(publish, action), action
    assert uses(publish, "actions/upload-pages-artifact")[0]["with"]["path"] == "site"


def test_every_action_is_pinned_by_commit(workflow):
    for job in workflow["jobs"].values():
        for step in job["steps"]:
            if "uses" in step:
                assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", step["uses"]), step["uses"]


def test_each_shard_sees_one_gpu(workflow):
    steps = workflow["jobs"]["bench"]["steps"]
    pin = next(i for i, s in enumerate(steps) if "CUDA_VISIBLE_DEVICES=" in s.get("run", ""))
    check = next(i for i, s in enumerate(steps) if "torch.cuda.is_available()" in s.get("run", ""))
    bench = next(i for i, s in enumerate(steps) if "asv run" in s.get("run", ""))
    assert pin < check < bench and "GITHUB_ENV" in steps[pin]["run"]
    assert "device_count() == 1" in steps[check]["run"]


@pytest.mark.parametrize("shard_dbs", [0, 2])
def test_merge_step_runs_without_a_published_db(workflow, tmp_path, shard_dbs):
    """The publish job's merge script, run as bash runs it: the artifacts as download-artifact lays them out
    (no published DB: the first deploy), with zero shard DBs (every shard failed) or two."""
    from tests.test_store import RUN, result, write_shard

    step = next(s for s in workflow["jobs"]["publish"]["steps"] if "effbench merge" in s.get("run", ""))
    artifact = uses(workflow["jobs"]["bench"], "actions/upload-artifact")[0]["with"]["name"]
    (tmp_path / "shards" / "published").mkdir(parents=True)
    (tmp_path / "results" / "runs").mkdir(parents=True)
    write_shard(tmp_path / "results" / "runs" / "r1.jsonl", [RUN, result()])
    effbench = [sys.executable, "-m", "effbench"]
    for shard in range(1, shard_dbs + 1):
        folder = tmp_path / "shards" / artifact.replace("${{ matrix.shard }}", str(shard))
        folder.mkdir()
        run_id = f"gpu{shard}"
        write_shard(tmp_path / f"{run_id}.jsonl", [dataclasses.replace(RUN, run_id=run_id),
                                                   dataclasses.replace(result(), run_id=run_id)])
        subprocess.run([*effbench, "ingest", str(tmp_path / f"{run_id}.jsonl"), "--db",
                        str(folder / f"shard-{shard}.duckdb")], check=True, capture_output=True)
    shim = tmp_path / "bin" / "effbench"
    shim.parent.mkdir()
    shim.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m effbench "$@"\n')
    shim.chmod(0o755)
    env = {"PATH": f"{shim.parent}:/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run(["bash", "-e", "-c", step["run"]], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"merging {shard_dbs} DBs" in done.stdout
    runs = subprocess.run([*effbench, "query", "SELECT run_id FROM runs ORDER BY run_id", "--db",
                           str(tmp_path / "results" / "effbench.duckdb"), "--json"], capture_output=True,
                          text=True, check=True)
    assert [r["run_id"] for r in json.loads(runs.stdout)] == [f"gpu{i}" for i in range(1, shard_dbs + 1)] + ["r1"]


def test_every_effbench_command_exists(workflow):
    named = {c for job in workflow["jobs"].values() for s in scripts(job) for c in EFFBENCH_COMMAND.findall(s)}
    assert {"ingest", "merge", "site"} <= named
    assert named <= set(cli.commands), f"not effbench commands: {sorted(named - set(cli.commands))}"
