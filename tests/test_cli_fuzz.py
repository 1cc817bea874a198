"""Property-based fuzzing of the ``effbench`` CLI: no arguments may end in a Python traceback.

Argument lists are generated from the CLI's own structure (click introspection of every command's
options and arguments), so new commands and options are fuzzed without touching this file. Values
mix real names from the registry, numbers, ``i/N`` strings, paths to hostile files inside the
temporary directory, and hostile text. Every invocation runs in-process under
``CliRunner.isolated_filesystem()``; ``effbench run`` never starts benchmark work (``run_cases``
gets an empty case list, so the shard and DB path still runs; constructing a ``Worker`` fails).

The property: exit code 0, 1, 2 (click usage error) or 130; no traceback; a non-zero exit ends
in a short ``Error: ...`` message. ``test_cli_never_ends_in_a_traceback`` fuzzes every command;
``test_ingesting_hostile_files_never_ends_in_a_traceback`` feeds mutated run shards and asv results
to the commands that read files (then reads the DB back with query, site and compare); the
``test_nasty_*`` cases are fixed inputs. ``EFFBENCH_FUZZ_EXAMPLES`` / ``EFFBENCH_FUZZ_INGEST_EXAMPLES``
raise the example counts for a longer local hunt.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import shlex
import shutil
import traceback
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import effbench.run.case
import effbench.run.executors
import effbench.run.plan
import effbench.run.session
from effbench.cli import cli
from effbench.registry import FAMILIES, discover

# ----------------------------------------------------------------------------- value pools

_REGISTRY = discover()
TASKS = sorted(_REGISTRY.tasks) + sorted({key.split("/", 1)[1] for key in _REGISTRY.tasks})
METHODS = sorted({m.name for m in _REGISTRY.methods.values()})
IMPLS = sorted({i for m in _REGISTRY.methods.values() for i in m.impls})
GRIDS = sorted(getattr(effbench.run.plan, "GRIDS", ("smoke", "cpu", "gpu")))
DEVICES = ["auto", "cpu", "cuda"]
SHARDS = ["1/1", "1/2", "2/2", "3/4", "0/3", "4/3", "-1/2", "1/0", "0/0", "1/-1", "a/b", "1/", "/2", "1/2/3",
          "1", "", "1 / 2", "1.5/3", "١/٢", "99999999999999999999/99999999999999999999"]
NUMBERS = ["0", "1", "2", "3", "-1", "-0", "0.5", "1.1", "1e-300", "1e309", "-1e309", "nan", "NaN", "-nan", "inf",
           "-inf", "Infinity", "0x10", "1_000", " 1", "1e3", "9" * 30, "-" + "9" * 30]
SQL = [
    "SELECT 1", "SELECT * FROM results", "SELECT * FROM runs", "SELECT * FROM latest", "SELECT * FROM methods",
    "SELECT count(*) FROM samples", "SELECT * FROM nope", "' OR 1=1 --", "1; DROP TABLE runs; --",
    "DROP TABLE runs", "DELETE FROM results", "INSERT INTO runs VALUES (1)", "CREATE TABLE t (x INT)",
    "SELECT 1/0", "SELECT 'a' || NULL", "SELECT [1, 2, 3]", "SELECT {'a': 1}", "SELECT NULL", "SELECT 1e309",
    "SELECT 'NaN'::DOUBLE", "SELECT repeat('x', 100000)", "SELECT ''", "SELECT '\x1b[31m'", ";", "", " ",
    "SELECT 1; SELECT 2", "PRAGMA version", "SELECT * FROM range(3)", "SELECT ?", "SELECT $1",
    "COPY (SELECT 1) TO 'copied.csv'", "SELECT * FROM read_csv('garbage.jsonl')", "SELECT * FROM 'garbage.json'",
    "SELECT 1::BLOB", "SELECT DATE '2024-01-01'", "SELECT INTERVAL 1 DAY", "SELECT 1::HUGEINT * 10^30",
    "SELECT 'é' AS \"ü\", 1 AS \"ü\"",
]
HOSTILE = [
    "--", "-", "---", "--=", "-x", "--nope", "-h", "--help", "--version", "'", '"', "`", "\\", "'; --",
    "$(echo x)", "%s%n", "{0}", "{}", "[", "]", "*", "?", ",", ",,", " , ", "a,b,,c", "\t", "\n", "\r\n",
    "line1\nline2", "ünïcödé", "日本語", "🔥", "\u202e", "\u200b", "\x1b[2J", "\x7f", "\ufeff", "ß" * 3,
    "x" * 5000, "é" * 2000, "a/b/c", "./", ".", "con", "NUL", ":memory:", "None", "null", "true", "false",
    "[]", "{}", "{\"a\": 1}", "../", "~", "$HOME", "%PATH%",
]

# Files created fresh in each example's temporary directory (relative names: the CWD is that directory).
FILES = ["empty", "empty.jsonl", "random.bin", "garbage.jsonl", "mutant.jsonl", "bigint.jsonl", "badtime.jsonl",
         "foreign.duckdb", "weird.duckdb", "garbage.json", "notduck.duckdb",
         "valid.duckdb", "valid.jsonl", "boom.py", "syntax.py", "empty.py", "binary.py", "adir", "adir/inner.jsonl",
         "asv", "asv/results/machine/abc-env.json", "asv/results/machine/mutant-env.json", "missing.duckdb",
         "missing/deeper/x.duckdb", "empty/x.duckdb",
         "random.bin/x", "newdir"]

_RANDOM_BYTES = random.Random(0).randbytes(4096)


def _sample_value(annotation: str):
    first = str(annotation).split("|")[0].strip()
    return {"str": "x", "int": 0, "float": 1.0}.get(first, "x")


def _valid_records() -> list[dict]:
    """One well-typed record of every shard record type, from the row classes' own fields (the run
    record is a real one, and the other records' fields of the same name take its values)."""
    from effbench import rows
    from effbench.run.plan import make_config
    from effbench.run.provenance import new_run

    run = json.loads(rows.to_json_line(new_run(make_config("smoke", "cpu", seeds=1), "effbench run --fuzz")))
    records = [run]
    for name, cls in rows.RECORD_TYPES.items():
        if cls is not rows.Run:
            data = {"type": name}
            data.update({f.name: run.get(f.name, _sample_value(f.type)) for f in dataclasses.fields(cls)})
            records.append(data)
    return records


VALID_RECORDS = _valid_records()
FIELD_NAMES = sorted({k for r in VALID_RECORDS for k in r})

json_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(), st.sampled_from([2**63, -(2**63) - 1, 2**70, -(2**100)]),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20),
    st.sampled_from(["", "ok", "error", "wrong", "x" * 3000, "\x00", "NaN", "loss/linear_cross_entropy"]),
)
json_value = st.recursive(json_leaf, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
    st.text(max_size=5), inner, max_size=3), max_leaves=5)


@st.composite
def mutated(draw, value, depth: int = 0):
    """``value`` (JSON data) with one random change somewhere inside it: replaced, dropped, or added to."""
    if depth > 3 or not isinstance(value, (dict, list)) or not value or draw(st.integers(0, 3)) == 0:
        return draw(json_value)
    value = dict(value) if isinstance(value, dict) else list(value)
    key = draw(st.sampled_from(sorted(value) if isinstance(value, dict) else range(len(value))))
    action = draw(st.integers(0, 4))
    if action == 0:
        del value[key]
    elif action == 1 and isinstance(value, dict):
        value[draw(st.sampled_from(FIELD_NAMES) | st.text(max_size=5))] = draw(json_value)
    else:
        value[key] = draw(mutated(value[key], depth + 1))
    return value


def mutations(value, most: int = 3):
    return st.integers(0, most).flatmap(lambda n: _mutate_n(value, n))


@st.composite
def _mutate_n(draw, value, n: int):
    for _ in range(n):
        value = draw(mutated(value))
    return value


@st.composite
def shard_line(draw) -> str:
    kind = draw(st.integers(0, 9))
    if kind == 0:
        return draw(st.text(max_size=40).filter(lambda s: "\n" not in s))
    if kind == 1:
        return json.dumps(draw(json_value))
    record = draw(mutations(draw(st.sampled_from(VALID_RECORDS))))
    if isinstance(record, dict) and draw(st.integers(0, 4)) == 0:
        record = {**record}  # never change VALID_RECORDS itself
        record["type"] = draw(st.sampled_from(["run", "result", "sample", "curve", "method", "", "Run"]))
    return json.dumps(record)  # NaN/Infinity stay as JSON's non-standard tokens, as a broken writer would


shard_text = st.builds(
    lambda run_first, lines, newline: "\n".join(([json.dumps(VALID_RECORDS[0])] if run_first else []) + lines)
    + ("\n" if newline else ""),
    st.booleans(), st.lists(shard_line(), max_size=6), st.booleans(),
)

# An asv (format 2) result file as effbench's suites produce it, and its benchmarks.json.
ASV_BENCHMARK = "loss.LinearCrossEntropy.track_time_ms"
ASV_RESULT = {
    "version": 2, "commit_hash": "0123abc", "env_name": "virtualenv-py3.11", "date": 1764000000000,
    "python": "3.11", "params": {"machine": "fuzz", "cpu": "x", "python": "3.11", "torch": "2.13.0"},
    "result_columns": ["result", "params", "version", "started_at", "duration"],
    "results": {ASV_BENCHMARK: [[1.5, None, float("nan")], [["'chunked:reference'", "'chunked:chunked'",
                                "'chunked:x'"], ["'n=1'"], ["'float32'"], ["'cpu'"], ["'smoke'"]], "v1", 0, 1.0]},
    "durations": {},
}
ASV_BENCHMARKS = {ASV_BENCHMARK: {"unit": "ms", "params": [], "param_names": []}, "version": 2}
asv_text = st.one_of(
    mutations(ASV_RESULT, 4).map(json.dumps),
    st.text(max_size=40),
    json_value.map(json.dumps),
)


@pytest.fixture(scope="module")
def templates(tmp_path_factory):
    """A real (empty) effbench DB and a real shard, made once and copied into every example's directory."""
    import duckdb

    from effbench.run.plan import make_config
    from effbench.run.provenance import new_run
    from effbench.run.session import run_cases
    from effbench.store import Store

    tmp = tmp_path_factory.mktemp("fuzz-templates")
    Store(tmp / "valid.duckdb").close()
    with duckdb.connect(str(tmp / "foreign.duckdb")) as con:  # a DuckDB file, but not effbench's
        con.execute("CREATE TABLE results (x INTEGER)")
    with duckdb.connect(str(tmp / "weird.duckdb")) as con:  # says it is effbench's, has the wrong tables
        con.execute("CREATE TABLE meta (key VARCHAR PRIMARY KEY, value VARCHAR)")
        con.execute("INSERT INTO meta VALUES ('schema_version', '1')")
        con.execute("CREATE TABLE runs (run_id INTEGER, surprise BLOB)")
        con.execute("CREATE VIEW results AS SELECT 1 / 0 AS value")
    config = make_config("smoke", "cpu", seeds=1)
    summary = run_cases(_REGISTRY, [], config, tmp / "runs", run=new_run(config, "effbench run --fuzz"))
    return {"valid.duckdb": tmp / "valid.duckdb", "valid.jsonl": summary.shard,
            "foreign.duckdb": tmp / "foreign.duckdb", "weird.duckdb": tmp / "weird.duckdb"}


def _populate(templates: dict[str, Path], mutant: str = "", asv_mutant: str = "") -> None:
    Path("empty").write_bytes(b"")
    Path("empty.jsonl").write_bytes(b"")
    Path("random.bin").write_bytes(_RANDOM_BYTES)
    Path("garbage.jsonl").write_text('{"type": "run"\n[1, 2\nnull\n{"type": "result", "x": 1}\n\x00\xff\nNaN\n',
                                     encoding="utf-8")
    Path("mutant.jsonl").write_text(mutant, encoding="utf-8", errors="surrogatepass")
    Path("garbage.json").write_text('{"result_columns": [1, 2], "results": {"x": [[1]]}, "params": ', encoding="utf-8")
    Path("notduck.duckdb").write_text("this is not a DuckDB file\n" * 100, encoding="utf-8")
    for name, template in templates.items():
        shutil.copyfile(template, name)
    run, result = VALID_RECORDS[0], next(r for r in VALID_RECORDS if r["type"] == "result")
    Path("bigint.jsonl").write_text(f"{json.dumps(run)}\n{json.dumps({**result, 'seed': 2**70})}\n", encoding="utf-8")
    Path("badtime.jsonl").write_text(f"{json.dumps({**run, 'started_at': 'yesterday'})}\n", encoding="utf-8")
    Path("boom.py").write_text("raise RuntimeError('this plugin raises on import')\n", encoding="utf-8")
    Path("syntax.py").write_text("def broken(:\n", encoding="utf-8")
    Path("empty.py").write_text("", encoding="utf-8")
    Path("binary.py").write_bytes(_RANDOM_BYTES[:512])
    Path("adir").mkdir()
    Path("adir/inner.jsonl").write_text("not json\n", encoding="utf-8")
    Path("asv/results/machine").mkdir(parents=True)
    Path("asv/results/benchmarks.json").write_text(json.dumps(ASV_BENCHMARKS), encoding="utf-8")
    Path("asv/results/machine/machine.json").write_text("{}", encoding="utf-8")
    Path("asv/results/machine/abc-env.json").write_text(json.dumps(ASV_RESULT), encoding="utf-8")
    if asv_mutant:
        Path("asv/results/machine/mutant-env.json").write_text(asv_mutant, encoding="utf-8", errors="surrogatepass")


# ----------------------------------------------------------------------------- arguments from click


def _safe(value: str) -> str:
    """Keep every generated value inside the example's directory and possible as a real argv entry."""
    value = value.replace("\x00", "")  # argv cannot hold NUL bytes
    value = value.replace("..", "__")
    if value.startswith(("/", "\\", "~")) or (len(value) > 1 and value[1] == ":"):
        value = "_" + value
    return value


hostile_text = st.one_of(
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=30),
    st.sampled_from(HOSTILE),
    st.sampled_from(SQL),
    st.text(st.characters(blacklist_categories=("Cs",)), min_size=200, max_size=600),
)
names = st.sampled_from(TASKS + METHODS + IMPLS + list(FAMILIES) + GRIDS + DEVICES)
name_lists = st.lists(names, min_size=1, max_size=3).map(",".join)
paths = st.sampled_from(FILES)
general = st.one_of(names, name_lists, st.sampled_from(NUMBERS + SHARDS), paths, hostile_text)

# Options whose name says what they take get that pool first; every other value is `general`.
HINTS = {
    "family": st.sampled_from(list(FAMILIES)), "task": st.sampled_from(TASKS),
    "method": st.one_of(st.sampled_from(METHODS), name_lists), "impl": st.one_of(st.sampled_from(IMPLS), name_lists),
    "grid": st.sampled_from(GRIDS), "device": st.sampled_from(DEVICES), "shard_spec": st.sampled_from(SHARDS),
    "sql": st.sampled_from(SQL), "db": paths, "plugins": paths, "paths": paths, "out": paths, "shard_dir": paths,
}


def _small_int(text: str) -> bool:
    try:
        return abs(int(text)) <= 60
    except ValueError:
        return True


def value_strategy(param: click.Parameter) -> st.SearchStrategy[str]:
    kind = param.type
    if isinstance(kind, click.Choice):
        first = st.sampled_from([str(c) for c in kind.choices])
    elif isinstance(kind, click.types.IntParamType):
        # Small ints only: a value like `--seeds 10**9` plans billions of cases (a hang, not a traceback).
        return st.one_of(st.integers(-5, 60).map(str), st.sampled_from(NUMBERS), hostile_text).filter(_small_int)
    elif isinstance(kind, click.types.FloatParamType):
        first = st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr), st.sampled_from(NUMBERS))
    elif isinstance(kind, click.types.BoolParamType):
        first = st.sampled_from(["true", "false", "1", "0", "yes", "maybe"])
    elif isinstance(kind, click.Path):
        first = paths
    else:
        first = HINTS.get(param.name or "", general)
    return st.one_of(first, first, general)


def _values(draw, param: click.Parameter) -> list[str]:
    count = param.nargs if param.nargs > 0 else draw(st.integers(0, 3))
    return [_safe(draw(value_strategy(param))) for _ in range(count)]


@st.composite
def command_args(draw, group: click.Group = cli) -> list[str]:
    args: list[str] = []
    if draw(st.integers(0, 19)) == 0:  # the group's own options (--version, --help)
        args.append(draw(st.sampled_from([o for p in group.params for o in p.opts + p.secondary_opts] + ["-h"])))
    if draw(st.integers(0, 29)) == 0:
        return args + [_safe(draw(general))]  # not a command
    name = draw(st.sampled_from(sorted(group.commands)))
    command = group.commands[name]
    args.append(name)
    if isinstance(command, click.Group):
        return args + draw(command_args(command))
    options = [p for p in command.params if isinstance(p, click.Option)]
    arguments = [p for p in command.params if isinstance(p, click.Argument)]
    tokens: list[list[str]] = []
    for _ in range(draw(st.integers(0, 6))) if options else ():
        option = draw(st.sampled_from(options))
        opt = draw(st.sampled_from(option.opts + option.secondary_opts))
        if option.is_flag or option.count:
            tokens.append([opt])
            continue
        values = _values(draw, option)
        style = draw(st.integers(0, 9))
        if style == 0:
            tokens.append([opt])  # value missing
        elif style == 1 and len(values) == 1 and opt.startswith("--"):
            tokens.append([f"{opt}={values[0]}"])
        else:
            tokens.append([opt, *values])
    for argument in arguments:
        if draw(st.integers(0, 9)) or not argument.required:
            tokens.append(_values(draw, argument))
    for _ in range(draw(st.integers(0, 2))):  # stray tokens anywhere
        tokens.insert(draw(st.integers(0, len(tokens))), [_safe(draw(general))])
    if draw(st.integers(0, 24)) == 0:
        tokens.insert(draw(st.integers(0, len(tokens))), [draw(st.sampled_from(["--help", "-h", "--"]))])
    return args + [t for token in tokens for t in token]


# ----------------------------------------------------------------------------- the property


def check(result, args: list[str]) -> None:
    line = "effbench " + shlex.join(args)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        trace = "".join(traceback.format_exception(*result.exc_info))
        pytest.fail(f"{line}\nraised:\n{trace}\noutput:\n{result.output[-3000:]}")
    assert result.exit_code in (0, 1, 2, 130), f"{line}\nexit {result.exit_code}\n{result.output[-3000:]}"
    assert "Traceback (most recent call last)" not in result.output, f"{line}\n{result.output[-3000:]}"
    if result.exit_code in (1, 2):
        if result.exit_code == 1 and args[:1] == ["compare"] and "regression(s)" in result.stdout:
            return  # compare's CI gate: a regression exits 1 with its table, not an error
        lines = result.stderr.splitlines()
        starts = [i for i, text in enumerate(lines) if text.startswith("Error: ")]
        assert starts, f"{line}\nexit {result.exit_code} without 'Error: ...':\n{result.output[-3000:]}"
        message = [text for text in lines[starts[0]:] if text.strip()]
        allowed = 3 + sum(len(a.splitlines()) for a in args)  # arguments with line breaks are echoed as they are
        assert len(message) <= allowed, f"{line}\nlong error:\n{result.stderr[-3000:]}"


class _NoWorker:
    def __init__(self, *args, **kwargs):
        raise AssertionError("the fuzz test started a benchmark worker")


@pytest.fixture
def no_benchmark_work(monkeypatch):
    real = effbench.run.session.run_cases

    def empty_run_cases(registry, cases, *args, **kwargs):
        return real(registry, [], *args, **kwargs)  # writes the shard header, runs no case

    monkeypatch.setattr(effbench.run.session, "run_cases", empty_run_cases)
    monkeypatch.setattr(effbench.run.executors, "Worker", _NoWorker)
    monkeypatch.setattr(effbench.run.executors, "execute", _NoWorker)
    # per-worker resource limits must never be applied to the test process itself
    monkeypatch.setattr(effbench.run.case, "apply_memory_limit", _NoWorker, raising=False)


def invoke_all(root: Path, templates: dict[str, Path], invocations: list[list[str]], mutant: str = "",
               asv_mutant: str = "", until_error: bool = False) -> None:
    """Run the invocations one after another in one fresh directory (so a later one sees what an earlier
    one wrote); ``until_error``: stop after the first that exits non-zero."""
    runner = CliRunner()
    with runner.isolated_filesystem(temp_dir=root):
        _populate(templates, mutant, asv_mutant)
        here = Path.cwd()
        for args in invocations:
            result = runner.invoke(cli, args, catch_exceptions=True, prog_name="effbench")
            assert Path.cwd() == here
            check(result, args)
            if until_error and result.exit_code != 0:
                break


# The nastiest inputs found while writing this test, run every time as explicit examples.
NASTY = [
    ["ingest", "mutant.jsonl", "--db", "valid.duckdb"],
    ["ingest", "garbage.jsonl", "--db", "notduck.duckdb"],
    ["ingest", "garbage.json", "--db", "valid.duckdb"],
    ["ingest", "asv", "--db", "valid.duckdb"],
    ["ingest", "bigint.jsonl", "--db", "valid.duckdb"], ["ingest", "badtime.jsonl", "--db", "valid.duckdb"],
    ["ingest", "foreign.duckdb", "--db", "valid.duckdb"], ["ingest", "weird.duckdb", "--db", "fresh.duckdb"],
    ["merge", "--db", "valid.duckdb", "valid.duckdb"], ["merge", "--db", "fresh.duckdb", "weird.duckdb"],
    ["merge", "--db", "fresh.duckdb", "foreign.duckdb", "notduck.duckdb"],
    ["query", "SELECT 1", "--db", "weird.duckdb"],
    ["query", "SELECT * FROM results", "--db", "weird.duckdb"], ["site", "--db", "weird.duckdb"],
    ["compare", "a", "b", "--db", "weird.duckdb"], ["run", "--method", "adamw", "--db", "weird.duckdb"],
    ["ingest", "adir", "random.bin", "--db", "newdir/db.duckdb"],
    ["ingest", "valid.jsonl", "--db", "random.bin/x.duckdb"],
    ["ingest", "valid.jsonl", "--db", "x" * 5000], ["ingest", "x" * 300], ["merge", "--db", "out.duckdb", "x" * 300],
    ["query", "SELECT 1", "--db", "x" * 300], ["list", "--plugin", "x" * 300 + ".py"],
    ["run", "--task", "optimizer/step", "--method", "adamw", "--grid", "smoke", "--db", "random.bin/x.duckdb"],
    ["run", "--method", "adamw", "--grid", "smoke", "--shard-dir", "random.bin"],
    ["run", "--grid", "smoke", "--shard", "1/2", "--db", "valid.duckdb"],
    ["run", "--grid", "smoke", "--shard", "99999999999999999999/99999999999999999999"],
    ["run", "--timeout", "nan"], ["run", "--timeout", "-inf"], ["run", "--seeds", "-1"],
    ["run", "--plugin", "boom.py"], ["run", "--plugin", "syntax.py"], ["run", "--plugin", "binary.py"],
    ["run", "--plugin", "empty.py"], ["run", "--plugin", "adir"], ["list", "--plugin", "random.bin"],
    ["run", "--method", ",,", "--impl", " , "], ["run", "--task", "loss/"], ["run", "--family", "x" * 5000],
    ["query", "' OR 1=1 --", "--db", "valid.duckdb"], ["query", "SELECT 1; SELECT 2", "--db", "valid.duckdb"],
    ["query", "SELECT ?", "--db", "valid.duckdb", "--json"], ["query", "SELECT 1e309", "--db", "valid.duckdb", "--csv"],
    ["query", "SELECT 'é' AS \"ü\", 1 AS \"ü\"", "--db", "valid.duckdb"],
    ["query", "SELECT [1, 2, 3]", "--db", "valid.duckdb", "--csv"],
    ["query", "SELECT 1", "--db", "notduck.duckdb"], ["query", "SELECT 1", "--db", "random.bin"],
    ["query", "SELECT 1", "--db", "empty"], ["query", "DROP TABLE runs", "--db", "valid.duckdb"],
    ["compare", "x", "y", "--db", "valid.duckdb", "--threshold", "nan"],
    ["compare", "x", "y", "--db", "valid.duckdb", "--alpha", "nan"],
    ["compare", "' OR 1=1 --", "%", "--db", "valid.duckdb", "--threshold", "inf"],
    ["compare", "x", "y", "--db", "notduck.duckdb"], ["compare", "x", "y", "--metric", "'", "--db", "valid.duckdb"],
    ["site", "--db", "valid.duckdb", "--out", "random.bin/site"], ["site", "--db", "notduck.duckdb"],
    ["site", "--db", "empty", "--out", "newdir"],
]


@pytest.mark.filterwarnings("ignore:.isolated_filesystem. is deprecated:DeprecationWarning")
@pytest.mark.parametrize("args", NASTY, ids=lambda a: shlex.join(a)[:60])
def test_nasty_inputs_end_in_a_short_error(args, templates, no_benchmark_work, tmp_path):
    invoke_all(tmp_path, templates, [args])


@pytest.mark.filterwarnings("ignore:.isolated_filesystem. is deprecated:DeprecationWarning")
@settings(max_examples=int(os.environ.get("EFFBENCH_FUZZ_EXAMPLES", "400")), deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large, HealthCheck.filter_too_much])
@given(invocations=st.lists(command_args(), min_size=1, max_size=3), mutant=shard_text, asv_mutant=asv_text)
def test_cli_never_ends_in_a_traceback(templates, no_benchmark_work, tmp_path, invocations, mutant, asv_mutant):
    invoke_all(tmp_path, templates, invocations, mutant, asv_mutant)


ENTRY = ASV_RESULT["results"][ASV_BENCHMARK]
NASTY_ASV = {  # changes to a valid asv result file
    "date is text": {"date": "x"}, "date is an object": {"date": {}}, "date is huge": {"date": 10**30},
    "date is NaN": {"date": float("nan")}, "params is a list": {"params": [1]},
    "cpu is an object": {"params": {"cpu": {}}},
    "a column name is an object": {"result_columns": [{}]}, "an entry is a number": {"results": {ASV_BENCHMARK: 5}},
    "a value is text": {"results": {ASV_BENCHMARK: [["fast", 1.0, 2.0], *ENTRY[1:]]}},
    "params are numbers": {"results": {ASV_BENCHMARK: [ENTRY[0], [1, 2, 3, 4, 5], *ENTRY[2:]]}},
    "the version is an object": {"results": {ASV_BENCHMARK: [*ENTRY[:2], {}, *ENTRY[3:]]}},
    "the whole file is a list": None,
}


@pytest.mark.filterwarnings("ignore:.isolated_filesystem. is deprecated:DeprecationWarning")
@pytest.mark.parametrize("change", NASTY_ASV.values(), ids=NASTY_ASV.keys())
def test_nasty_asv_results_end_in_a_short_error(change, templates, no_benchmark_work, tmp_path):
    result = [ASV_RESULT] if change is None else {**ASV_RESULT, **change}
    invoke_all(tmp_path, templates, [["ingest", "asv/results/machine/mutant-env.json", "--db", "valid.duckdb"]],
               asv_mutant=json.dumps(result))


# Commands that read files named as arguments (ingest, merge, ...), found by introspection.
INGESTING = sorted(name for name, command in cli.commands.items() if any(
    isinstance(p, click.Argument) and isinstance(p.type, click.Path) for p in command.params))
SOURCES = ["mutant.jsonl", "asv", "asv/results/machine/mutant-env.json", "valid.jsonl", "valid.duckdb",
           "foreign.duckdb", "weird.duckdb", "garbage.jsonl"]  # bigint.jsonl, badtime.jsonl: in NASTY


@pytest.mark.filterwarnings("ignore:.isolated_filesystem. is deprecated:DeprecationWarning")
@settings(max_examples=int(os.environ.get("EFFBENCH_FUZZ_INGEST_EXAMPLES", "100")), deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(command=st.sampled_from(INGESTING), sources=st.lists(st.sampled_from(SOURCES), min_size=1, max_size=3),
       db=st.sampled_from(["valid.duckdb", "fresh.duckdb", "newdir/x.duckdb"]), mutant=shard_text,
       asv_mutant=asv_text)
def test_ingesting_hostile_files_never_ends_in_a_traceback(templates, no_benchmark_work, tmp_path, command, sources,
                                                           db, mutant, asv_mutant):
    """Mutated shards and asv results go in; what got in is read back by everything that reads the DB."""
    invocations = [
        [command, *sources, "--db", db],
        ["query", "SELECT * FROM latest", "--db", db, "--json"],
        ["site", "--db", db, "--out", "site"],
        ["compare", "0123abc", VALID_RECORDS[0]["run_id"], "--db", db],
    ]
    invoke_all(tmp_path, templates, invocations, mutant, asv_mutant, until_error=True)
