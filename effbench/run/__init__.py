"""Running a plan: registry -> cases -> worker -> rows -> shard (the store ingests the shard afterwards).

- ``plan``: grids, the case, the run configuration, the plan and its shards (``--shard i/N``);
- ``case``: one case inside the worker (kernel: truth, verdict, timing, memory; workload: a training run);
- ``worker``: the isolated worker process and its parent-side handle;
- ``provenance``: the run's machine, versions and commit, its tasks and methods, its fingerprint;
- ``shards``: the run's JSONL shard, written case by case and verified on reading (torch-free);
- ``session``: a run end to end (``run_cases``), whatever executes its cases;
- ``ray_executor``: its case groups as tasks on a Ray cluster (``--executor ray``; Ray is optional).

Import from the modules; this package's ``__init__`` stays empty so that the store can read shards
without importing torch.
"""
