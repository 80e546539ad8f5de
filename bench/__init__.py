"""Benchmarks: each prints its figures, compares them with a baseline measured in the same run, and writes them
to bench/results/. Run them all with `./dev bench`, or one with `./dev bench reactive_core`."""
