"""bench/bench.py split along its seams: checks, peers, timing, workload, targets, report."""
