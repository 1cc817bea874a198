-- effbench store, schema version 3: long/tidy tables whose keys make every ingest idempotent.
-- Statements are split on semicolons: keep semicolons out of comments.
CREATE TABLE IF NOT EXISTS meta (
    key VARCHAR PRIMARY KEY,
    value VARCHAR NOT NULL
);

CREATE TABLE IF NOT EXISTS runs (
    run_id VARCHAR PRIMARY KEY,
    started_at TIMESTAMP,      -- UTC
    git_commit VARCHAR,
    git_branch VARCHAR,
    machine VARCHAR,
    device VARCHAR,
    gpu_name VARCHAR,
    cpu_name VARCHAR,
    num_threads INTEGER,
    python_version VARCHAR,
    torch_version VARCHAR,
    triton_version VARCHAR,
    cuda_version VARCHAR,
    effbench_version VARCHAR,
    grid VARCHAR,
    source VARCHAR,            -- 'effbench' or 'asv'
    command VARCHAR,
    ended_at TIMESTAMP,        -- UTC, when the run wrote its end (NULL: unfinished, or asv)
    peers VARCHAR,             -- JSON {package: version} of the published implementations installed
    driver_version VARCHAR,    -- the NVIDIA driver's (GPU runs)
    gpu_clocks VARCHAR         -- JSON: SM and memory clocks, current and max, MHz (GPU runs, from NVML)
);

CREATE TABLE IF NOT EXISTS results (
    run_id VARCHAR NOT NULL,
    family VARCHAR NOT NULL,
    task VARCHAR NOT NULL,     -- 'family/name'
    method VARCHAR NOT NULL,
    impl VARCHAR NOT NULL,
    point_key VARCHAR NOT NULL,
    point VARCHAR,             -- canonical JSON of the grid point
    dtype VARCHAR NOT NULL,
    device VARCHAR NOT NULL,
    seed INTEGER NOT NULL,
    metric VARCHAR NOT NULL,
    value DOUBLE,              -- NULL when the case failed or a target was not reached
    unit VARCHAR,
    status VARCHAR NOT NULL,   -- ok, error, oom, timeout, unavailable, skipped, wrong
    message VARCHAR,
    measure_method VARCHAR,
    code_hash VARCHAR,
    node VARCHAR,              -- host name of the machine that ran the case (NULL before schema 4)
    node_hardware VARCHAR,     -- that machine's GPU model (cuda cases) or CPU model (NULL before schema 4)
    PRIMARY KEY (run_id, task, method, impl, point_key, dtype, device, seed, metric)
);

CREATE TABLE IF NOT EXISTS samples (
    run_id VARCHAR NOT NULL,
    task VARCHAR NOT NULL,
    method VARCHAR NOT NULL,
    impl VARCHAR NOT NULL,
    point_key VARCHAR NOT NULL,
    dtype VARCHAR NOT NULL,
    device VARCHAR NOT NULL,
    seed INTEGER NOT NULL,
    metric VARCHAR NOT NULL,
    idx INTEGER NOT NULL,
    value DOUBLE,
    PRIMARY KEY (run_id, task, method, impl, point_key, dtype, device, seed, metric, idx)
);

CREATE TABLE IF NOT EXISTS curves (
    run_id VARCHAR NOT NULL,
    task VARCHAR NOT NULL,
    method VARCHAR NOT NULL,
    impl VARCHAR NOT NULL,
    point_key VARCHAR NOT NULL,
    dtype VARCHAR NOT NULL,
    device VARCHAR NOT NULL,
    seed INTEGER NOT NULL,
    step INTEGER NOT NULL,
    wall_s DOUBLE,
    train_loss DOUBLE,
    eval_loss DOUBLE,
    eval_metric DOUBLE,
    PRIMARY KEY (run_id, task, method, impl, point_key, dtype, device, seed, step)
);

-- How long each case took in the runner (worker start included): what `run --dry-run` estimates from.
CREATE TABLE IF NOT EXISTS cases (
    run_id VARCHAR NOT NULL,
    task VARCHAR NOT NULL,
    method VARCHAR NOT NULL,
    impl VARCHAR NOT NULL,
    point_key VARCHAR NOT NULL,
    dtype VARCHAR NOT NULL,
    device VARCHAR NOT NULL,
    seed INTEGER NOT NULL,
    status VARCHAR NOT NULL,
    wall_s DOUBLE,
    finished_at TIMESTAMP,
    PRIMARY KEY (run_id, task, method, impl, point_key, dtype, device, seed)
);

CREATE TABLE IF NOT EXISTS methods (
    family VARCHAR NOT NULL,
    task VARCHAR NOT NULL,
    method VARCHAR NOT NULL,
    impls VARCHAR,
    paper VARCHAR,
    arxiv VARCHAR,
    summary VARCHAR,
    PRIMARY KEY (task, method)
);

-- What the analysis needs of a task without the registry: the baseline (method and impl) every other
-- method is compared with, on which metrics (JSON [[metric, higher_is_better], ...]), the targets'
-- provenance, and every metric's declaration (JSON {metric: [unit, better, scope, about]}, effbench.metrics).
-- The newest description wins.
CREATE TABLE IF NOT EXISTS tasks (
    family VARCHAR NOT NULL,
    task VARCHAR PRIMARY KEY,
    kind VARCHAR NOT NULL,
    baseline VARCHAR,
    baseline_impl VARCHAR,
    compare VARCHAR,
    target VARCHAR,
    description VARCHAR,
    sizes VARCHAR,
    metrics VARCHAR
);

-- Every setting a workload case's tuning job tried, on tuning seeds disjoint from the scored seeds
-- (score: steps to the target, NULL when missed). Tuning runs outside every scored case's time and memory.
CREATE TABLE IF NOT EXISTS tuning (
    run_id VARCHAR NOT NULL,
    task VARCHAR NOT NULL,
    method VARCHAR NOT NULL,
    impl VARCHAR NOT NULL,
    point_key VARCHAR NOT NULL,
    dtype VARCHAR NOT NULL,
    device VARCHAR NOT NULL,
    seed INTEGER NOT NULL,
    param VARCHAR NOT NULL,
    value DOUBLE NOT NULL,
    score DOUBLE,
    final_metric DOUBLE,
    chosen BOOLEAN NOT NULL,
    note VARCHAR,
    PRIMARY KEY (run_id, task, method, impl, point_key, dtype, device, seed, param, value)
);

-- The hardware a result was measured on, part of every case's key so that numbers of two machines are
-- never taken for one another: the GPU model for cuda results, the CPU model otherwise, the machine's
-- name where the run did not record the model (asv runs, old rows), else 'unknown'.
CREATE OR REPLACE MACRO hardware_of(device, gpu_name, cpu_name, machine) AS coalesce(
    nullif(trim(CASE WHEN starts_with(device, 'cuda') THEN gpu_name ELSE cpu_name END), ''),
    nullif(trim(machine), ''),
    'unknown'
);

-- The latest run's value of every case and metric on each hardware (one machine's run never hides another's).
CREATE OR REPLACE VIEW latest AS
SELECT r.*, u.started_at, u.source, u.gpu_name,
       hardware_of(r.device, coalesce(r.node_hardware, u.gpu_name), coalesce(r.node_hardware, u.cpu_name),
                   coalesce(r.node, u.machine)) AS hardware
FROM results r JOIN runs u USING (run_id)
QUALIFY row_number() OVER (
    PARTITION BY r.task, r.method, r.impl, r.point_key, r.dtype, r.device, r.seed, r.metric,
                 hardware_of(r.device, coalesce(r.node_hardware, u.gpu_name), coalesce(r.node_hardware, u.cpu_name),
                             coalesce(r.node, u.machine))
    ORDER BY u.started_at DESC, r.run_id DESC
) = 1;

-- Every Triton kernel compiled for a GPU arch at each launch configuration (`effbench kernels`), without a
-- GPU: registers per thread, spilled bytes, shared memory against the arch's per-block limit. The newest
-- build of a key wins (a kernel's code may change under the same key, and code_hash says which code it was).
CREATE TABLE IF NOT EXISTS kernel_builds (
    kernel VARCHAR NOT NULL,       -- 'module.function'
    config VARCHAR NOT NULL,       -- canonical 'dtype=... CONSTEXPR=... num_warps=... num_stages=...'
    arch VARCHAR NOT NULL,         -- 'sm_80', 'sm_90'
    triton_version VARCHAR NOT NULL,
    status VARCHAR NOT NULL,       -- ok, error, overflow, over_budget (spills past the spec's declared budget)
    registers INTEGER,
    spills BIGINT,                 -- bytes of local memory per thread (spilled registers)
    spill_stores BIGINT,
    spill_loads BIGINT,
    shared_bytes BIGINT,
    shared_limit BIGINT,
    compile_s DOUBLE,
    message VARCHAR,
    methods VARCHAR,               -- comma-separated 'task:method' of the methods that launch it
    code_hash VARCHAR,
    git_commit VARCHAR,
    built_at TIMESTAMP,            -- UTC
    PRIMARY KEY (kernel, config, arch, triton_version)
);
