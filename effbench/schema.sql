-- effbench store, schema version 2: long/tidy tables whose keys make every ingest idempotent.
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
    ended_at TIMESTAMP         -- UTC, when the run wrote its end (NULL: unfinished, or asv)
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

-- The latest run's value of every case and metric.
CREATE OR REPLACE VIEW latest AS
SELECT r.*, u.started_at, u.source, u.gpu_name
FROM results r JOIN runs u USING (run_id)
QUALIFY row_number() OVER (
    PARTITION BY r.task, r.method, r.impl, r.point_key, r.dtype, r.device, r.seed, r.metric
    ORDER BY u.started_at DESC, r.run_id DESC
) = 1;
