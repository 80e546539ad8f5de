"""Everything between a run request and stored cells, one module per phase.

- `uniform`: plans shared by many rows (rows with the same step statuses get one plan).
- `fused`: the formula pass, all formula columns of a scope in one statement.
- `verdicts`: what becomes of each cell of one step column (run, keep, wait, skip, ...) and its outcome.
- `executor`: one transaction's cells: claims paid ones, computes free ones, writes both.
- `paid`: the paid phase loop (claim, call through `engine.runner`'s pool, write back, repeat).
- `writeback`: paid results into cells, cache and activity.
- `lifecycle`: the only writer of the `runs` table (open, heartbeat, stop, close, reclaim, requeue).
- `selection`: what a person asks a run to compute (RunSelection), turned into a Request and a Scope.
- `reports`: what a run returns and reports while it goes.
"""
